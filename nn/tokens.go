package nn

import (
	"fmt"

	"gorgonia.org/tensor"
)

// tokensKernel assembles the token matrix (B*T, D), T = P+1, from patch embeddings
// (B*P, D), the class token (D) and the learned positions (T, D): row b*T is cls+pos[0],
// row b*T+1+p is patch b*P+p plus pos[1+p].
type tokensKernel struct{ patches int }

func (k *tokensKernel) name() string     { return fmt.Sprintf("Tokens{P=%d}", k.patches) }
func (k *tokensKernel) inputDims() []int { return []int{2, 1, 2} }
func (k *tokensKernel) outDims() int     { return 2 }
func (k *tokensKernel) diffWRT() []bool  { return []bool{true, true, true} }
func (k *tokensKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	p, c, pos := in[0], in[1], in[2]
	d := p[1]
	if p[0]%k.patches != 0 || c[0] != d || pos[0] != k.patches+1 || pos[1] != d {
		return nil, fmt.Errorf("%w: %s: patches %v, cls %v, pos %v", ErrShape, k.name(), p, c, pos)
	}
	return tensor.Shape{p[0] / k.patches * (k.patches + 1), d}, nil
}

func (k *tokensKernel) forward(in []*tensor.Dense, out *tensor.Dense) error {
	if isF32(out) {
		tokensForward[float32](k.patches, in, out)
	} else {
		tokensForward[float64](k.patches, in, out)
	}
	return nil
}

func (k *tokensKernel) backward(in []*tensor.Dense, out, dOut *tensor.Dense, grads []*tensor.Dense) error {
	if isF32(out) {
		tokensBackward[float32](k.patches, in, dOut, grads)
	} else {
		tokensBackward[float64](k.patches, in, dOut, grads)
	}
	return nil
}

func tokensForward[T Float](p int, in []*tensor.Dense, out *tensor.Dense) {
	x, cls, pos, y := data[T](in[0]), data[T](in[1]), data[T](in[2]), data[T](out)
	d, t := len(cls), p+1
	b := len(x) / (p * d)
	for bi := 0; bi < b; bi++ {
		row := y[bi*t*d:]
		for j := 0; j < d; j++ {
			row[j] = cls[j] + pos[j]
		}
		for pi := 0; pi < p; pi++ {
			dst, src, ps := row[(pi+1)*d:(pi+2)*d], x[(bi*p+pi)*d:], pos[(pi+1)*d:]
			for j := range dst {
				dst[j] = src[j] + ps[j]
			}
		}
	}
}

func tokensBackward[T Float](p int, in []*tensor.Dense, dOut *tensor.Dense, grads []*tensor.Dense) {
	dy := data[T](dOut)
	dx, dcls, dpos := data[T](grads[0]), data[T](grads[1]), data[T](grads[2])
	d, t := len(dcls), p+1
	b := len(dy) / (t * d)
	clear(dcls)
	clear(dpos)
	for bi := 0; bi < b; bi++ {
		row := dy[bi*t*d : (bi+1)*t*d]
		for j := 0; j < d; j++ {
			dcls[j] += row[j]
		}
		for j, v := range row {
			dpos[j] += v
		}
		copy(dx[bi*p*d:(bi+1)*p*d], row[d:])
	}
}

// classTokenKernel picks row b*T of (B*T, D) for every example: the class token's final
// state, (B, D).
type classTokenKernel struct{ tokens int }

func (k *classTokenKernel) name() string     { return fmt.Sprintf("ClassToken{T=%d}", k.tokens) }
func (k *classTokenKernel) inputDims() []int { return []int{2} }
func (k *classTokenKernel) outDims() int     { return 2 }
func (k *classTokenKernel) diffWRT() []bool  { return []bool{true} }
func (k *classTokenKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	if in[0][0]%k.tokens != 0 {
		return nil, fmt.Errorf("%w: %s: input %v rows are not a multiple of %d", ErrShape, k.name(), in[0], k.tokens)
	}
	return tensor.Shape{in[0][0] / k.tokens, in[0][1]}, nil
}

func (k *classTokenKernel) forward(in []*tensor.Dense, out *tensor.Dense) error {
	if isF32(out) {
		classTokenForward(k.tokens, out.Shape()[1], data[float32](in[0]), data[float32](out))
	} else {
		classTokenForward(k.tokens, out.Shape()[1], data[float64](in[0]), data[float64](out))
	}
	return nil
}

func (k *classTokenKernel) backward(in []*tensor.Dense, out, dOut *tensor.Dense, grads []*tensor.Dense) error {
	if isF32(out) {
		classTokenBackward(k.tokens, out.Shape()[1], data[float32](dOut), data[float32](grads[0]))
	} else {
		classTokenBackward(k.tokens, out.Shape()[1], data[float64](dOut), data[float64](grads[0]))
	}
	return nil
}

func classTokenForward[T Float](t, d int, x, y []T) {
	for b := 0; b < len(y)/d; b++ {
		copy(y[b*d:(b+1)*d], x[b*t*d:])
	}
}

func classTokenBackward[T Float](t, d int, dy, dx []T) {
	clear(dx)
	for b := 0; b < len(dy)/d; b++ {
		copy(dx[b*t*d:b*t*d+d], dy[b*d:(b+1)*d])
	}
}
