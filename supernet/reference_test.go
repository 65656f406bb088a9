package supernet

import (
	"math"
	"strconv"

	"github.com/ofa-go/ofa/arch"
)

// refModel is a plain-Go float64 ViT written independently of the graph code: loops over
// tokens, heads and features, no slicing tricks. Tests compare the graph against it.
type refModel struct {
	a arch.Arch
	w func(name string) []float64 // row-major values of a weight
}

func (m refModel) forward(images []float32, n int, s arch.Subnet) [][]float64 {
	a := m.a
	d, t, np, ps := a.Dim, a.Tokens(), a.Patches(), a.PatchSize()
	out := make([][]float64, n)
	for b := 0; b < n; b++ {
		patches := make([]float32, np*ps)
		patchify(images[b*a.InChannels*a.InHeight*a.InWidth:], patches, 1, a.InChannels, a.InHeight, a.InWidth, a.PatchHeight, a.PatchWidth)
		x := make([][]float64, t)
		pe, pb, cls, pos := m.w("patch_embed.weight"), m.w("patch_embed.bias"), m.w("cls_token"), m.w("pos_embed")
		for tok := 0; tok < t; tok++ {
			x[tok] = make([]float64, d)
			for j := 0; j < d; j++ {
				if tok == 0 {
					x[tok][j] = cls[j]
				} else {
					v := pb[j]
					for k := 0; k < ps; k++ {
						v += pe[j*ps+k] * float64(patches[(tok-1)*ps+k])
					}
					x[tok][j] = v
				}
				x[tok][j] += pos[tok*d+j]
			}
		}
		if a.Expanded() {
			for i, p := range a.Positions {
				l := a.Layers[p.Layer]
				x = m.block(x, "blocks."+strconv.Itoa(p.Layer)+".", "positions."+strconv.Itoa(i)+".", l.Heads, l.MLP, l.Heads, l.MLP, p)
			}
		} else {
			for _, l := range s.Layers {
				pre := "blocks." + strconv.Itoa(l.Layer) + "."
				full := a.Layers[l.Layer]
				x = m.block(x, pre, pre, l.Heads, l.MLP, full.Heads, full.MLP, arch.Position{})
			}
		}
		h := layerNorm(x[0], m.w("norm.weight"), m.w("norm.bias"), a.NormEps)
		out[b] = linear(h, m.w("head.weight"), m.w("head.bias"), a.Classes, d, d)
	}
	return out
}

// block runs one pre-LN block using the first heads/mlp units of a layer stored with
// fullHeads/fullMLP units.
func (m refModel) block(x [][]float64, w, n string, heads, mlp, fullHeads, fullMLP int, p arch.Position) [][]float64 {
	a := m.a
	d, dh, t := a.Dim, a.HeadDim, len(x)
	fhd := fullHeads * dh
	qkvW, qkvB := m.w(w+"attn.qkv.weight"), m.w(w+"attn.qkv.bias")
	projW, projB := m.w(w+"attn.proj.weight"), m.w(w+"attn.proj.bias")
	// per token: q, k, v for each used head
	q := make([][][]float64, heads)
	k := make([][][]float64, heads)
	v := make([][][]float64, heads)
	for hi := 0; hi < heads; hi++ {
		q[hi], k[hi], v[hi] = make([][]float64, t), make([][]float64, t), make([][]float64, t)
	}
	for tok := 0; tok < t; tok++ {
		h := layerNorm(x[tok], m.w(n+"norm1.weight"), m.w(n+"norm1.bias"), a.NormEps)
		if p.Affine {
			h = affine(h, m.w(n+"affine.in_scale"), m.w(n+"affine.in_shift"))
		}
		for hi := 0; hi < heads; hi++ {
			for part, dst := range [][][]float64{q[hi], k[hi], v[hi]} {
				vec := make([]float64, dh)
				for j := 0; j < dh; j++ {
					row := part*fhd + hi*dh + j
					s := qkvB[row]
					for c := 0; c < d; c++ {
						s += qkvW[row*d+c] * h[c]
					}
					vec[j] = s
				}
				dst[tok] = vec
			}
		}
	}
	// logits[h][r][c]
	logits := make([][][]float64, heads)
	for hi := range logits {
		logits[hi] = make([][]float64, t)
		for r := 0; r < t; r++ {
			logits[hi][r] = make([]float64, t)
			for c := 0; c < t; c++ {
				var s float64
				for j := 0; j < dh; j++ {
					s += q[hi][r][j] * k[hi][c][j]
				}
				logits[hi][r][c] = s / math.Sqrt(float64(dh))
			}
		}
	}
	if p.HeadMix {
		logits = mix(logits, m.w(n+"headmix.pre"), heads)
	}
	for hi := range logits {
		for r := range logits[hi] {
			softmax(logits[hi][r])
		}
	}
	if p.HeadMix {
		logits = mix(logits, m.w(n+"headmix.post"), heads)
	}
	out := make([][]float64, t)
	for tok := 0; tok < t; tok++ {
		ctx := make([]float64, heads*dh)
		for hi := 0; hi < heads; hi++ {
			for c := 0; c < t; c++ {
				for j := 0; j < dh; j++ {
					ctx[hi*dh+j] += logits[hi][tok][c] * v[hi][c][j]
				}
			}
		}
		att := linear(ctx, projW, projB, d, heads*dh, fhd)
		if p.Affine {
			att = affine(att, m.w(n+"affine.attn_scale"), m.w(n+"affine.attn_shift"))
		}
		y := make([]float64, d)
		for j := range y {
			y[j] = x[tok][j] + att[j]
		}
		h := layerNorm(y, m.w(n+"norm2.weight"), m.w(n+"norm2.bias"), a.NormEps)
		h = linear(h, m.w(w+"mlp.fc1.weight"), m.w(w+"mlp.fc1.bias"), mlp, d, d)
		for j := range h {
			u := h[j]
			h[j] = 0.5 * u * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(u+0.044715*u*u*u)))
		}
		h = linear(h, m.w(w+"mlp.fc2.weight"), m.w(w+"mlp.fc2.bias"), d, mlp, fullMLP)
		if p.Affine {
			h = affine(h, m.w(n+"affine.mlp_scale"), m.w(n+"affine.mlp_shift"))
		}
		for j := range y {
			y[j] += h[j]
		}
		if p.LowRank > 0 {
			down, up := m.w(n+"lowrank.down"), m.w(n+"lowrank.up")
			z := linear(y, down, nil, p.LowRank, d, d)
			z = linear(z, up, nil, d, p.LowRank, p.LowRank)
			for j := range y {
				y[j] += z[j]
			}
		}
		out[tok] = y
	}
	return out
}

// linear computes W[:out, :in] x + b[:out] for W stored with row length ld.
func linear(x, w, b []float64, out, in, ld int) []float64 {
	y := make([]float64, out)
	for o := 0; o < out; o++ {
		var s float64
		if b != nil {
			s = b[o]
		}
		for i := 0; i < in; i++ {
			s += w[o*ld+i] * x[i]
		}
		y[o] = s
	}
	return y
}

func layerNorm(x, g, b []float64, eps float64) []float64 {
	var mean, v float64
	for _, u := range x {
		mean += u
	}
	mean /= float64(len(x))
	for _, u := range x {
		v += (u - mean) * (u - mean)
	}
	v /= float64(len(x))
	y := make([]float64, len(x))
	for i, u := range x {
		y[i] = (u-mean)/math.Sqrt(v+eps)*g[i] + b[i]
	}
	return y
}

func affine(x, s, b []float64) []float64 {
	y := make([]float64, len(x))
	for i := range x {
		y[i] = x[i]*s[i] + b[i]
	}
	return y
}

func softmax(x []float64) {
	mx := math.Inf(-1)
	for _, u := range x {
		mx = math.Max(mx, u)
	}
	var s float64
	for i, u := range x {
		x[i] = math.Exp(u - mx)
		s += x[i]
	}
	for i := range x {
		x[i] /= s
	}
}

func mix(x [][][]float64, m []float64, h int) [][][]float64 {
	out := make([][][]float64, h)
	for i := 0; i < h; i++ {
		out[i] = make([][]float64, len(x[0]))
		for r := range x[0] {
			out[i][r] = make([]float64, len(x[0][r]))
			for j := 0; j < h; j++ {
				for c := range x[j][r] {
					out[i][r][c] += m[i*h+j] * x[j][r][c]
				}
			}
		}
	}
	return out
}
