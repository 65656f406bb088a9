package nn

import (
	"fmt"
	"math"

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
// (without mixing, A_i = softmax(S_i)). Nothing is transposed or copied: Q, K, V and O are
// read and written in place through their row strides.
type attentionKernel struct {
	s AttentionSpec
	// saved by forward, each (B, H, T, T)
	logits []float64 // S, pre-mix (only with HeadMix)
	probs  []float64 // softmax output P
	attn   []float64 // A = mixed P (only with HeadMix; else probs)
	// backward scratch, (B, H, T, T) each, and per-example mixing-gradient partials
	dA, dP  []float64
	dMixPre []float64 // (B, H, H)
	dMixPos []float64
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

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
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
	k.probs = grow(k.probs, b*h*tt)
	var mixPre, mixPost []T
	if k.s.HeadMix {
		mixPre, mixPost = data[T](in[1]), data[T](in[2])
		k.logits = grow(k.logits, b*h*tt)
		k.attn = grow(k.attn, b*h*tt)
	} else {
		k.attn = k.probs
	}
	scale := k.s.scale()
	parallelRows(b, h*tt*dh*4, func(lo, hi int) {
		for bi := lo; bi < hi; bi++ {
			base := bi * t * ld
			probs := k.probs[bi*h*tt : (bi+1)*h*tt]
			logits := probs // without mixing, logits are computed in place
			if k.s.HeadMix {
				logits = k.logits[bi*h*tt : (bi+1)*h*tt]
			}
			// S_i[r][c] = q_i(r)·k_i(c) * scale
			for i := 0; i < h; i++ {
				s := logits[i*tt : (i+1)*tt]
				for r := 0; r < t; r++ {
					q := qkv[base+r*ld+i*dh : base+r*ld+i*dh+dh]
					for c := 0; c < t; c++ {
						kk := qkv[base+c*ld+hd+i*dh : base+c*ld+hd+i*dh+dh]
						var acc T
						for j, v := range q {
							acc += v * kk[j]
						}
						s[r*t+c] = float64(acc) * scale
					}
				}
			}
			if k.s.HeadMix {
				mixHeads(mixPre, logits, probs, h, tt)
			}
			for row := 0; row < h*t; row++ {
				softmaxRow(probs[row*t : (row+1)*t])
			}
			attn := probs
			if k.s.HeadMix {
				attn = k.attn[bi*h*tt : (bi+1)*h*tt]
				mixHeads(mixPost, probs, attn, h, tt)
			}
			// O_i[r] = Σ_c A_i[r][c] v_i(c)
			for i := 0; i < h; i++ {
				a := attn[i*tt : (i+1)*tt]
				for r := 0; r < t; r++ {
					dst := o[(bi*t+r)*hd+i*dh : (bi*t+r)*hd+i*dh+dh]
					clear(dst)
					for c := 0; c < t; c++ {
						w := T(a[r*t+c])
						v := qkv[base+c*ld+2*hd+i*dh : base+c*ld+2*hd+i*dh+dh]
						for j := range dst {
							dst[j] += w * v[j]
						}
					}
				}
			}
		}
	})
}

// mixHeads writes dst_i = Σ_j m[i,j] src_j for h blocks of n values.
func mixHeads[T Float](m []T, src, dst []float64, h, n int) {
	for i := 0; i < h; i++ {
		d := dst[i*n : (i+1)*n]
		clear(d)
		for j := 0; j < h; j++ {
			w := float64(m[i*h+j])
			if w == 0 {
				continue
			}
			for x, v := range src[j*n : (j+1)*n] {
				d[x] += w * v
			}
		}
	}
}

// mixHeadsT writes dst_j = Σ_i m[i,j] src_i (the transpose mix, for gradients).
func mixHeadsT[T Float](m []T, src, dst []float64, h, n int) {
	for j := 0; j < h; j++ {
		d := dst[j*n : (j+1)*n]
		clear(d)
		for i := 0; i < h; i++ {
			w := float64(m[i*h+j])
			if w == 0 {
				continue
			}
			for x, v := range src[i*n : (i+1)*n] {
				d[x] += w * v
			}
		}
	}
}

func softmaxRow(x []float64) {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, v)
	}
	var s float64
	for i, v := range x {
		e := math.Exp(v - m)
		x[i] = e
		s += e
	}
	inv := 1 / s
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
	k.dA = grow(k.dA, b*h*tt)
	k.dP = grow(k.dP, b*h*tt)
	var mixPre, mixPost []T
	if k.s.HeadMix {
		mixPre, mixPost = data[T](in[1]), data[T](in[2])
		k.dMixPre = grow(k.dMixPre, b*h*h)
		k.dMixPos = grow(k.dMixPos, b*h*h)
	}
	scale := k.s.scale()
	parallelRows(b, h*tt*dh*8, func(lo, hi int) {
		for bi := lo; bi < hi; bi++ {
			base := bi * t * ld
			probs := k.probs[bi*h*tt : (bi+1)*h*tt]
			attn := k.attn[bi*h*tt : (bi+1)*h*tt]
			dA := k.dA[bi*h*tt : (bi+1)*h*tt]
			dP := k.dP[bi*h*tt : (bi+1)*h*tt]
			// clear this example's dq, dk, dv
			clear(dqkv[base : base+t*ld])
			// dA_i[r][c] = do_i(r)·v_i(c); dv_i(c) += Σ_r A_i[r][c] do_i(r)
			for i := 0; i < h; i++ {
				a := attn[i*tt : (i+1)*tt]
				for r := 0; r < t; r++ {
					g := do[(bi*t+r)*hd+i*dh : (bi*t+r)*hd+i*dh+dh]
					for c := 0; c < t; c++ {
						off := base + c*ld + 2*hd + i*dh
						v, dv := qkv[off:off+dh], dqkv[off:off+dh]
						w := T(a[r*t+c])
						var acc T
						for j, gv := range g {
							acc += gv * v[j]
							dv[j] += w * gv
						}
						dA[i*tt+r*t+c] = float64(acc)
					}
				}
			}
			if k.s.HeadMix {
				// dMpost[i,j] = <dA_i, P_j>; dP_j = Σ_i Mpost[i,j] dA_i
				mixGrad(k.dMixPos[bi*h*h:(bi+1)*h*h], dA, probs, h, tt)
				mixHeadsT(mixPost, dA, dP, h, tt)
			} else {
				copy(dP, dA)
			}
			// softmax backward, in place in dP: dL = P ⊙ (dP - Σ P dP)
			for row := 0; row < h*t; row++ {
				p, g := probs[row*t:(row+1)*t], dP[row*t:(row+1)*t]
				var dot float64
				for c, pv := range p {
					dot += pv * g[c]
				}
				for c, pv := range p {
					g[c] = pv * (g[c] - dot)
				}
			}
			dS := dP
			if k.s.HeadMix {
				// dMpre[i,j] = <dL_i, S_j>; dS_j = Σ_i Mpre[i,j] dL_i (dA is free now)
				mixGrad(k.dMixPre[bi*h*h:(bi+1)*h*h], dP, k.logits[bi*h*tt:(bi+1)*h*tt], h, tt)
				mixHeadsT(mixPre, dP, dA, h, tt)
				dS = dA
			}
			// dq_i(r) = scale Σ_c dS[r][c] k_i(c); dk_i(c) = scale Σ_r dS[r][c] q_i(r)
			for i := 0; i < h; i++ {
				s := dS[i*tt : (i+1)*tt]
				for r := 0; r < t; r++ {
					qo := base + r*ld + i*dh
					q, dq := qkv[qo:qo+dh], dqkv[qo:qo+dh]
					for c := 0; c < t; c++ {
						w := T(s[r*t+c] * scale)
						if w == 0 {
							continue
						}
						ko := base + c*ld + hd + i*dh
						kk, dk := qkv[ko:ko+dh], dqkv[ko:ko+dh]
						for j := range q {
							dq[j] += w * kk[j]
							dk[j] += w * q[j]
						}
					}
				}
			}
		}
	})
	if k.s.HeadMix {
		sumPartials(data[T](grads[1]), k.dMixPre, h*h, b)
		sumPartials(data[T](grads[2]), k.dMixPos, h*h, b)
	}
}

// mixGrad writes g[i,j] = <a_i, b_j> for h blocks of n values.
func mixGrad(g, a, b []float64, h, n int) {
	for i := 0; i < h; i++ {
		for j := 0; j < h; j++ {
			var s float64
			ai, bj := a[i*n:(i+1)*n], b[j*n:(j+1)*n]
			for x, v := range ai {
				s += v * bj[x]
			}
			g[i*h+j] = s
		}
	}
}

// sumPartials adds count partial vectors of length n in order (deterministic for any
// number of threads) into dst.
func sumPartials[T Float](dst []T, parts []float64, n, count int) {
	for x := 0; x < n; x++ {
		var s float64
		for c := 0; c < count; c++ {
			s += parts[c*n+x]
		}
		dst[x] = T(s)
	}
}
