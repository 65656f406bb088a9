package nn

import (
	"fmt"
	asm "github.com/ofa-go/ofa/nn/internal/kernel"
	"math"
	"unsafe"

	"gorgonia.org/tensor"
)

// AttentionSpec describes multi-head self-attention over a batch of sequences whose
// projected queries, keys and values arrive as one matrix qkv (B*T, 3*Heads*HeadDim): per
// token the Heads*HeadDim query features, then the key features, then the value features,
// each head's features contiguous. The result is (B*T, Heads*HeadDim), head-major per token.
type AttentionSpec struct {
	Tokens  int
	Heads   int
	HeadDim int
	// HeadMix adds two (Heads, Heads) inputs that mix the heads' attention logits before the
	// softmax and their probabilities after it (MiniViT's transformations).
	HeadMix bool
}

func (s AttentionSpec) scale() float64 { return 1 / math.Sqrt(float64(s.HeadDim)) }

// attentionKernel computes, for every example b and head i,
// O_i = A_i V_i with A_i = Σ_j Mpost[i,j] softmax(Σ_j Mpre[i,j] S_j), S_j = Q_j K_jᵀ/√dh
// (without mixing, A_i = softmax(S_i)). Each example is handled by one goroutine, which
// gathers a head's Q, K and V rows into small contiguous blocks and works there.
type attentionKernel struct {
	s     *AttentionSpec // read at every run
	par   int            // goroutines (see parallelRows)
	state any            // *attentionState[T], saved by forward for backward
}

// attentionState holds per-example (H, T, T) blocks.
type attentionState[T Float] struct {
	logits []T // S before mixing (only with HeadMix)
	probs  []T // P = softmax(mixed S)
	attn   []T // A = mixed P (only with HeadMix; else probs)
	dMix   []T // per-example partial gradients of the mixing matrices, (B, 2, H, H)
}

func (k *attentionKernel) name() string {
	return fmt.Sprintf("Attention{T=%d,h=%d,dh=%d,mix=%t}", k.s.Tokens, k.s.Heads, k.s.HeadDim, k.s.HeadMix)
}

func (k *attentionKernel) inputDims() []int {
	if k.s.HeadMix {
		return []int{2, 2, 2}
	}
	return []int{2}
}

func (k *attentionKernel) outDims() int { return 2 }

func (k *attentionKernel) diffWRT() []bool {
	if k.s.HeadMix {
		return []bool{true, true, true}
	}
	return []bool{true}
}

func (k *attentionKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	hd := k.s.Heads * k.s.HeadDim
	if in[0][1] != 3*hd || in[0][0]%k.s.Tokens != 0 {
		return nil, fmt.Errorf("%w: %s: qkv %v, want (B*%d, %d)", ErrShape, k.name(), in[0], k.s.Tokens, 3*hd)
	}
	if k.s.HeadMix {
		for _, m := range in[1:] {
			if m[0] != k.s.Heads || m[1] != k.s.Heads {
				return nil, fmt.Errorf("%w: %s: mixing matrix %v, want (%d, %d)", ErrShape, k.name(), m, k.s.Heads, k.s.Heads)
			}
		}
	}
	return tensor.Shape{in[0][0], hd}, nil
}

func growT[T Float](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

func stateOf[T Float](k *attentionKernel) *attentionState[T] {
	if st, ok := k.state.(*attentionState[T]); ok {
		return st
	}
	st := &attentionState[T]{}
	k.state = st
	return st
}

func (k *attentionKernel) forward(in []*tensor.Dense, out *tensor.Dense) error {
	if isF32(out) {
		attentionForward[float32](k, in, out)
	} else {
		attentionForward[float64](k, in, out)
	}
	return nil
}

func (k *attentionKernel) backward(in []*tensor.Dense, out, dOut *tensor.Dense, grads []*tensor.Dense) error {
	if isF32(out) {
		attentionBackward[float32](k, in, dOut, grads)
	} else {
		attentionBackward[float64](k, in, dOut, grads)
	}
	return nil
}

func attentionForward[T Float](k *attentionKernel, in []*tensor.Dense, out *tensor.Dense) {
	qkv, o := data[T](in[0]), data[T](out)
	t, h, dh := k.s.Tokens, k.s.Heads, k.s.HeadDim
	hd := h * dh
	ld := 3 * hd
	b := len(qkv) / (t * ld)
	tt := t * t
	st := stateOf[T](k)
	st.probs = growT(st.probs, b*h*tt)
	var mixPre, mixPost []T
	if k.s.HeadMix {
		mixPre, mixPost = data[T](in[1]), data[T](in[2])
		st.logits = growT(st.logits, b*h*tt)
		st.attn = growT(st.attn, b*h*tt)
	} else {
		st.attn = st.probs
	}
	scale := T(k.s.scale())
	parallelRows(k.par, b, h*tt*dh*4, func(lo, hi int) {
		for bi := lo; bi < hi; bi++ {
			blk := qkv[bi*t*ld : (bi+1)*t*ld] // this example's (T, 3hd) rows
			probs := st.probs[bi*h*tt : (bi+1)*h*tt]
			logits := probs // without mixing, logits are computed in place
			if k.s.HeadMix {
				logits = st.logits[bi*h*tt : (bi+1)*h*tt]
			}
			for i := 0; i < h; i++ {
				// S_i = Q_i K_iᵀ·scale: (T, dh) x (dh, T) -> (T, T), Q and K read through row stride ld
				smallGemm(false, true, t, t, dh, scale, blk[i*dh:], ld, blk[hd+i*dh:], ld, 0, logits[i*tt:], t)
			}
			if k.s.HeadMix {
				mixHeads(mixPre, logits, probs, h, tt)
			}
			softmaxRows(probs, h*t, t)
			attn := probs
			if k.s.HeadMix {
				attn = st.attn[bi*h*tt : (bi+1)*h*tt]
				mixHeads(mixPost, probs, attn, h, tt)
			}
			for i := 0; i < h; i++ {
				// O_i = A_i V_i: (T, T) x (T, dh) -> (T, dh), written into o's rows at stride hd
				smallGemm(false, false, t, dh, t, 1, attn[i*tt:], t, blk[2*hd+i*dh:], ld, 0, o[bi*t*hd+i*dh:], hd)
			}
		}
	})
}

// softmaxBackwardRows replaces each of the rows of g (t values each) by the softmax's input
// gradient P ⊙ (g - Σ P g), p holding the rows of P. Four rows at a time, each row's dot
// product still summed in its own order (the same result bit for bit, overlapping chains).
func softmaxBackwardRows[T Float](p, g []T, rows, t int) {
	r := 0
	for ; r+4 <= rows; r += 4 {
		p0, p1, p2, p3 := p[r*t:(r+1)*t], p[(r+1)*t:(r+2)*t], p[(r+2)*t:(r+3)*t], p[(r+3)*t:(r+4)*t]
		g0, g1, g2, g3 := g[r*t:(r+1)*t], g[(r+1)*t:(r+2)*t], g[(r+2)*t:(r+3)*t], g[(r+3)*t:(r+4)*t]
		p1, p2, p3 = p1[:len(p0)], p2[:len(p0)], p3[:len(p0)] // bounds hints for the loops
		g0, g1, g2, g3 = g0[:len(p0)], g1[:len(p0)], g2[:len(p0)], g3[:len(p0)]
		var d0, d1, d2, d3 T
		for c := range p0 {
			d0 += p0[c] * g0[c]
			d1 += p1[c] * g1[c]
			d2 += p2[c] * g2[c]
			d3 += p3[c] * g3[c]
		}
		for c := range p0 {
			g0[c] = p0[c] * (g0[c] - d0)
			g1[c] = p1[c] * (g1[c] - d1)
			g2[c] = p2[c] * (g2[c] - d2)
			g3[c] = p3[c] * (g3[c] - d3)
		}
	}
	for ; r < rows; r++ {
		pr, gr := p[r*t:(r+1)*t], g[r*t:(r+1)*t]
		gr = gr[:len(pr)]
		var dot T
		for c, pv := range pr {
			dot += pv * gr[c]
		}
		for c, pv := range pr {
			gr[c] = pv * (gr[c] - dot)
		}
	}
}

// mixHeads writes dst_i = Σ_j m[i,j] src_j for h blocks of n values.
func mixHeads[T Float](m, src, dst []T, h, n int) {
	for i := 0; i < h; i++ {
		d := dst[i*n : (i+1)*n]
		clear(d)
		for j := 0; j < h; j++ {
			w := m[i*h+j]
			if w == 0 {
				continue
			}
			s := src[j*n : (j+1)*n]
			for x := range d {
				d[x] += w * s[x]
			}
		}
	}
}

// mixHeadsT writes dst_j = Σ_i m[i,j] src_i (the transposed mix, for gradients).
func mixHeadsT[T Float](m, src, dst []T, h, n int) {
	for j := 0; j < h; j++ {
		d := dst[j*n : (j+1)*n]
		clear(d)
		for i := 0; i < h; i++ {
			w := m[i*h+j]
			if w == 0 {
				continue
			}
			s := src[i*n : (i+1)*n]
			for x := range d {
				d[x] += w * s[x]
			}
		}
	}
}

// softmaxRows replaces each of the rows of x (t values each) by its softmax. In float32
// with the AVX2 kernel the exponentials of all rows are one Exp8 pass (the last len%8
// values through a padded buffer, so every value is computed the same way wherever
// a parallel split falls); otherwise row by row with softmaxRow.
func softmaxRows[T Float](x []T, rows, t int) {
	x = x[:rows*t]
	if unsafe.Sizeof(x[0]) != 4 || !asm.Available {
		for r := 0; r < rows; r++ {
			softmaxRow(x[r*t : (r+1)*t])
		}
		return
	}
	x32 := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(x))), len(x)) // T is float32
	// Four rows at a time: each row's maximum and sum are still taken in its own order, so
	// the result is the same bit for bit, but the four dependency chains overlap.
	r := 0
	for ; r+4 <= rows; r += 4 {
		r0, r1, r2, r3 := x32[r*t:(r+1)*t], x32[(r+1)*t:(r+2)*t], x32[(r+2)*t:(r+3)*t], x32[(r+3)*t:(r+4)*t]
		r1, r2, r3 = r1[:len(r0)], r2[:len(r0)], r3[:len(r0)] // bounds hints for the loops
		m0, m1, m2, m3 := r0[0], r1[0], r2[0], r3[0]
		for i := range r0 {
			if r0[i] > m0 {
				m0 = r0[i]
			}
			if r1[i] > m1 {
				m1 = r1[i]
			}
			if r2[i] > m2 {
				m2 = r2[i]
			}
			if r3[i] > m3 {
				m3 = r3[i]
			}
		}
		for i := range r0 {
			r0[i] -= m0
			r1[i] -= m1
			r2[i] -= m2
			r3[i] -= m3
		}
	}
	for ; r < rows; r++ {
		row := x32[r*t : (r+1)*t]
		m := row[0]
		for _, v := range row {
			if v > m {
				m = v
			}
		}
		for i := range row {
			row[i] -= m
		}
	}
	exp8(x32)
	r = 0
	for ; r+4 <= rows; r += 4 {
		r0, r1, r2, r3 := x32[r*t:(r+1)*t], x32[(r+1)*t:(r+2)*t], x32[(r+2)*t:(r+3)*t], x32[(r+3)*t:(r+4)*t]
		r1, r2, r3 = r1[:len(r0)], r2[:len(r0)], r3[:len(r0)]
		var s0, s1, s2, s3 float64
		for i := range r0 {
			s0 += float64(r0[i])
			s1 += float64(r1[i])
			s2 += float64(r2[i])
			s3 += float64(r3[i])
		}
		i0, i1, i2, i3 := float32(1/s0), float32(1/s1), float32(1/s2), float32(1/s3)
		for i := range r0 {
			r0[i] *= i0
			r1[i] *= i1
			r2[i] *= i2
			r3[i] *= i3
		}
	}
	for ; r < rows; r++ {
		row := x32[r*t : (r+1)*t]
		var s float64
		for _, v := range row {
			s += float64(v)
		}
		inv := float32(1 / s)
		for i := range row {
			row[i] *= inv
		}
	}
}

// exp8 replaces x by e^max(x, -87.33654) with the Exp8 kernel.
func exp8(x []float32) {
	k := unsafe.Pointer(&asm.ExpConsts)
	n := len(x) &^ 7
	if n > 0 {
		asm.Exp8(unsafe.Pointer(&x[0]), unsafe.Pointer(&x[0]), n, k)
	}
	if n < len(x) {
		var b [8]float32
		copy(b[:], x[n:])
		asm.Exp8(unsafe.Pointer(&b[0]), unsafe.Pointer(&b[0]), 8, k)
		copy(x[n:], b[:])
	}
}

// softmaxRow replaces x by softmax(x), accumulating in float64. float32 rows use
// expShift32 (within 2 float32 ulps of exp); float64 rows use math.Exp.
func softmaxRow[T Float](x []T) {
	m := x[0]
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	var s float64
	if unsafe.Sizeof(m) == 4 {
		x32 := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(x))), len(x)) // T is float32
		s = expShift32(x32, x32, float32(m))
	} else {
		for i, v := range x {
			e := math.Exp(float64(v - m))
			x[i] = T(e)
			s += e
		}
	}
	inv := T(1 / s)
	for i := range x {
		x[i] *= inv
	}
}

func attentionBackward[T Float](k *attentionKernel, in []*tensor.Dense, dOut *tensor.Dense, grads []*tensor.Dense) {
	qkv, do, dqkv := data[T](in[0]), data[T](dOut), data[T](grads[0])
	t, h, dh := k.s.Tokens, k.s.Heads, k.s.HeadDim
	hd := h * dh
	ld := 3 * hd
	b := len(qkv) / (t * ld)
	tt := t * t
	st := stateOf[T](k)
	var mixPre, mixPost []T
	if k.s.HeadMix {
		mixPre, mixPost = data[T](in[1]), data[T](in[2])
		st.dMix = growT(st.dMix, b*2*h*h)
	}
	scale := T(k.s.scale())
	parallelRows(k.par, b, h*tt*dh*8, func(lo, hi int) {
		dA, dP := make([]T, h*tt), make([]T, h*tt)
		for bi := lo; bi < hi; bi++ {
			blk := qkv[bi*t*ld : (bi+1)*t*ld]
			dblk := dqkv[bi*t*ld : (bi+1)*t*ld] // every element is written below (beta 0)
			dob := do[bi*t*hd : (bi+1)*t*hd]
			probs := st.probs[bi*h*tt : (bi+1)*h*tt]
			attn := st.attn[bi*h*tt : (bi+1)*h*tt]
			for i := 0; i < h; i++ {
				// dA_i = dO_i V_iᵀ: (T, dh) x (dh, T) -> (T, T)
				smallGemm(false, true, t, t, dh, 1, dob[i*dh:], hd, blk[2*hd+i*dh:], ld, 0, dA[i*tt:], t)
				// dV_i = A_iᵀ dO_i: (T, T)ᵀ x (T, dh) -> (T, dh)
				smallGemm(true, false, t, dh, t, 1, attn[i*tt:], t, dob[i*dh:], hd, 0, dblk[2*hd+i*dh:], ld)
			}
			if k.s.HeadMix {
				// dMpost[i,j] = <dA_i, P_j>; dP_j = Σ_i Mpost[i,j] dA_i
				mixGrad(st.dMix[(bi*2+1)*h*h:(bi*2+2)*h*h], dA, probs, h, tt)
				mixHeadsT(mixPost, dA, dP, h, tt)
			} else {
				copy(dP, dA)
			}
			// softmax backward, in place in dP: dL = P ⊙ (dP - Σ P dP)
			softmaxBackwardRows(probs, dP, h*t, t)
			dS := dP
			if k.s.HeadMix {
				// dMpre[i,j] = <dL_i, S_j>; dS_j = Σ_i Mpre[i,j] dL_i (dA is free now)
				mixGrad(st.dMix[bi*2*h*h:(bi*2+1)*h*h], dP, st.logits[bi*h*tt:(bi+1)*h*tt], h, tt)
				mixHeadsT(mixPre, dP, dA, h, tt)
				dS = dA
			}
			for i := 0; i < h; i++ {
				// dQ_i = dS_i K_i·scale: (T, T) x (T, dh) -> (T, dh)
				smallGemm(false, false, t, dh, t, scale, dS[i*tt:], t, blk[hd+i*dh:], ld, 0, dblk[i*dh:], ld)
				// dK_i = dS_iᵀ Q_i·scale: (T, T)ᵀ x (T, dh) -> (T, dh)
				smallGemm(true, false, t, dh, t, scale, dS[i*tt:], t, blk[i*dh:], ld, 0, dblk[hd+i*dh:], ld)
			}
		}
	})
	if k.s.HeadMix {
		// sum the per-example partials in example order: the same result for any thread count
		dPre, dPost := data[T](grads[1]), data[T](grads[2])
		for x := 0; x < h*h; x++ {
			var a, c float64
			for bi := 0; bi < b; bi++ {
				a += float64(st.dMix[bi*2*h*h+x])
				c += float64(st.dMix[(bi*2+1)*h*h+x])
			}
			dPre[x], dPost[x] = T(a), T(c)
		}
	}
}

// mixGrad writes g[i,j] = <a_i, b_j> for h blocks of n values.
func mixGrad[T Float](g, a, b []T, h, n int) {
	for i := 0; i < h; i++ {
		for j := 0; j < h; j++ {
			var s float64
			ai, bj := a[i*n:(i+1)*n], b[j*n:(j+1)*n]
			for x, v := range ai {
				s += float64(v * bj[x])
			}
			g[i*h+j] = T(s)
		}
	}
}

// expShift32 writes y[i] = e^(x[i]-m) and returns Σ y[i] in float64, for softmax rows
// (m is the row's maximum, so every argument is ≤ 0). x - m = n·ln2 + r with
// |r| ≤ ln2/2; e^r comes from Cephes' expf polynomial and 2^n from the exponent bits.
// Within 2 float32 ulps of exp; arguments below -87.3 give about the smallest normal
// float32 (1.2e-38) instead of underflowing further; NaN stays NaN. One loop without calls, so
// the compiler keeps everything in registers.
func expShift32(x, y []float32, m float32) float64 {
	const (
		log2e = 1.44269504088896341
		c1    = 0.693359375
		c2    = -2.12194440e-4
		lo    = -87.33654
		round = 1 << 23 * 1.5 // adding and subtracting it rounds to an integer
	)
	y = y[:len(x)]
	var s float64
	for i, v := range x {
		v = max(v-m, lo)
		fn := (v*log2e + round) - round // n = round(v·log2 e)
		r := v - fn*c1 - fn*c2
		p := float32(1.9875691500e-4)
		p = p*r + 1.3981999507e-3
		p = p*r + 8.3334519073e-3
		p = p*r + 4.1665795894e-2
		p = p*r + 1.6666665459e-1
		p = p*r + 5.0000001201e-1
		e := (p*r*r + r + 1) * math.Float32frombits(uint32(int32(fn)+127)<<23)
		y[i] = e
		s += float64(e)
	}
	return s
}
