package kernel

import "math"

// expScalars are the constants Exp8 reads, in the order of exp_amd64.s's offsets: the
// clamp, log2 e, the rounding constant 1.5·2^23, ln 2 in two parts, Cephes' expf
// polynomial (highest degree first) and 1; ExpConsts adds the exponent bias 127 (int32).
var expScalars = [...]float32{
	-87.33654, 1.44269504088896341, 1 << 23 * 1.5, 0.693359375, -2.12194440e-4,
	1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1,
	1,
}

// ExpConsts holds each of expScalars 8 times (one ymm vector each), then 8 copies of the
// int32 127, for Exp8's k.
var ExpConsts = func() (v [len(expScalars) + 1][8]float32) {
	for i, s := range expScalars {
		for j := range v[i] {
			v[i][j] = s
		}
	}
	for j := range v[len(expScalars)] {
		v[len(expScalars)][j] = math.Float32frombits(127)
	}
	return v
}()
