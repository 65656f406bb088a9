package kernel

// GELU constants (tanh form): 0.5x(1 + tanh(GeluC(x + GeluA x³))).
const (
	GeluC = 0.7978845608028654 // sqrt(2/pi)
	GeluA = 0.044715
)

// geluClampX bounds x: beyond ±5.2 GELU is x or 0, and its derivative 1 or 0, to within
// 5e-7; the kernels continue them so (the forward pass adds max(x - 5.2, 0)).
const geluClampX = 5.2

// geluClampU bounds tanh's argument: beyond it the rational approximation is ±1 to float32
// precision (Eigen's bound).
const geluClampU = 7.90531110763549805

// geluScalars are the constants GeluForward8 and GeluBackward8 read, in the order of
// gelu_amd64.s's offsets: a, c, the clamp of u and its negative, Eigen's rational tanh
// (numerator a13..a1, denominator b6..b0), 3a, c/2, 1/2, 1, and the clamp of x (±geluClampX).
var geluScalars = [...]float32{
	GeluA, GeluC, geluClampU, -geluClampU,
	-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
	1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03,
	1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03,
	3 * GeluA, GeluC / 2, 0.5, 1, geluClampX, -geluClampX,
}

// GeluConsts holds each of geluScalars 8 times (one ymm vector each), for the kernels' k.
var GeluConsts = func() (v [len(geluScalars)][8]float32) {
	for i, s := range geluScalars {
		for j := range v[i] {
			v[i][j] = s
		}
	}
	return v
}()
