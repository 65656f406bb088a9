package extract

import (
	"fmt"
	"sort"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/supernet"
)

// Order is a permutation of every layer's heads and neurons: Heads[l][i] is the current
// index of the unit that moves to position i.
type Order struct {
	Heads   [][]int `json:"heads"`
	Neurons [][]int `json:"neurons"`
}

// Identity is the order that moves nothing.
func Identity(a arch.Arch) Order {
	o := Order{Heads: make([][]int, len(a.Layers)), Neurons: make([][]int, len(a.Layers))}
	for l, ly := range a.Layers {
		o.Heads[l], o.Neurons[l] = identityPerm(ly.Heads), identityPerm(ly.MLP)
	}
	return o
}

func identityPerm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// ByImportance orders every layer's units by decreasing score (ties keep the lower index
// first, so the order is deterministic).
func ByImportance(s *Scores) Order {
	o := Order{Heads: make([][]int, len(s.Heads)), Neurons: make([][]int, len(s.Neurons))}
	for l := range s.Heads {
		o.Heads[l], o.Neurons[l] = argsortDesc(s.Heads[l]), argsortDesc(s.Neurons[l])
	}
	return o
}

func argsortDesc(v []float64) []int {
	p := identityPerm(len(v))
	sort.SliceStable(p, func(i, j int) bool { return v[p[i]] > v[p[j]] })
	return p
}

// Apply returns scores permuted by o (the scores of the reordered model).
func (o Order) Apply(s *Scores) *Scores {
	out := &Scores{Layers: append([]float64(nil), s.Layers...)}
	for l := range s.Heads {
		out.Heads = append(out.Heads, permute(s.Heads[l], o.Heads[l]))
		out.Neurons = append(out.Neurons, permute(s.Neurons[l], o.Neurons[l]))
	}
	return out
}

func permute[T any](v []T, p []int) []T {
	out := make([]T, len(p))
	for i, j := range p {
		out[i] = v[j]
	}
	return out
}

// Compose returns the order "first o, then next": indices of next refer to o's result.
func (o Order) Compose(next Order) Order {
	out := Order{}
	for l := range o.Heads {
		out.Heads = append(out.Heads, permute(o.Heads[l], next.Heads[l]))
		out.Neurons = append(out.Neurons, permute(o.Neurons[l], next.Neurons[l]))
	}
	return out
}

// Validate checks that o is a permutation of a's units.
func (o Order) Validate(a arch.Arch) error {
	if len(o.Heads) != len(a.Layers) || len(o.Neurons) != len(a.Layers) {
		return fmt.Errorf("%w: order covers %d/%d layers, the model has %d", ErrExtract, len(o.Heads), len(o.Neurons), len(a.Layers))
	}
	for l, ly := range a.Layers {
		if !isPerm(o.Heads[l], ly.Heads) || !isPerm(o.Neurons[l], ly.MLP) {
			return fmt.Errorf("%w: order of layer %d is not a permutation of its %d heads and %d neurons", ErrExtract, l, ly.Heads, ly.MLP)
		}
	}
	return nil
}

func isPerm(p []int, n int) bool {
	if len(p) != n {
		return false
	}
	seen := make([]bool, n)
	for _, i := range p {
		if i < 0 || i >= n || seen[i] {
			return false
		}
		seen[i] = true
	}
	return true
}

// Reorder permutes the units of every layer of p in place ("rewiring"): each head's query,
// key and value rows and bias entries, its output-projection columns; each neuron's fc1 row
// and bias and fc2 column. The network computes exactly the same function afterwards (up to
// floating-point summation order); only which units the leading slices select changes.
// extra holds tensors shaped like the weights (AdamW moments, keyed by weight name) that
// must follow the same permutation.
func Reorder(a arch.Arch, p *supernet.Params, o Order, extra ...map[string][]float32) error {
	if a.Expanded() {
		return fmt.Errorf("%w: reordering an expanded model is not supported", ErrExtract)
	}
	if err := o.Validate(a); err != nil {
		return err
	}
	if err := supernet.Permute(a, p, o.Heads, o.Neurons, extra...); err != nil {
		return fmt.Errorf("%w: reordering: %w", ErrExtract, err)
	}
	return nil
}
