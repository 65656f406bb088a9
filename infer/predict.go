package infer

import (
	"fmt"
	"math"
	"slices"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
	"gorgonia.org/tensor"
)

// Score is one class's probability for one input.
type Score struct {
	Label       int     `json:"label"`
	Class       string  `json:"class"`
	Probability float64 `json:"probability"`
}

// Prediction is the model's answer for one input.
type Prediction struct {
	Input string `json:"input"`
	// Logits are the model's outputs, Probabilities their softmax (in float64).
	Logits        []float32 `json:"logits"`
	Probabilities []float64 `json:"probabilities"`
	// Top are the most probable classes, most probable first (ties: lower label first).
	Top []Score `json:"top"`
}

// maxBatch is the most examples one prediction graph runs at once.
const maxBatch = 64

// Predict runs subnet s of model m (arch.Largest for anything but a supernet) on the inputs
// and returns, per input, the logits, the probabilities and the top classes (at most top),
// named by the model's class names (modelfile.Model.ClassNames).
func Predict(m *modelfile.Model, s arch.Subnet, ops nn.Ops, inputs []Input, top int) ([]Prediction, error) {
	a := m.Arch
	if err := s.Validate(a); err != nil {
		return nil, err
	}
	names, err := m.ClassNames()
	if err != nil {
		return nil, err
	}
	size := a.InChannels * a.InHeight * a.InWidth
	x := make([]float32, 0, len(inputs)*size)
	for _, in := range inputs {
		if len(in.X) != size {
			return nil, fmt.Errorf("%s: %w: %d input values, the model takes %dx%dx%d = %d", in.Name, ErrInput, len(in.X), a.InChannels, a.InHeight, a.InWidth, size)
		}
		x = append(x, in.X...)
	}
	z, err := Logits(a, m.Params, s, ops, x, len(inputs))
	if err != nil {
		return nil, err
	}
	c := a.Classes
	out := make([]Prediction, len(inputs))
	for i, in := range inputs {
		row := z[i*c : (i+1)*c : (i+1)*c]
		for j, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%s: logit %d is %v", in.Name, j, v)
			}
		}
		p := make([]float64, c)
		train.Softmax(p, row, 1)
		order := make([]int, c)
		for j := range order {
			order[j] = j
		}
		slices.SortStableFunc(order, func(u, v int) int {
			switch {
			case p[u] > p[v]:
				return -1
			case p[u] < p[v]:
				return 1
			}
			return 0
		})
		pr := Prediction{Input: in.Name, Logits: row, Probabilities: p}
		for _, j := range order[:min(top, c)] {
			pr.Top = append(pr.Top, Score{Label: j, Class: names[j], Probability: p[j]})
		}
		out[i] = pr
	}
	return out, nil
}

// Logits runs subnet s of the model (a, p) on n normalised examples x (n*C*H*W values) and
// returns n*classes logits, example-major. It compiles one supernet.Runner of at most 64
// examples (fewer if the architecture's evaluation memory budget asks for it) and runs the
// examples through it in order.
func Logits(a arch.Arch, p *supernet.Params, s arch.Subnet, ops nn.Ops, x []float32, n int) ([]float32, error) {
	size := a.InChannels * a.InHeight * a.InWidth
	if n < 1 || len(x) != n*size {
		return nil, fmt.Errorf("%w: %d input values for %d examples of %d", ErrInput, len(x), n, size)
	}
	if p.Dtype() != tensor.Float32 {
		p = p.Convert(tensor.Float32)
	}
	batch := min(n, maxBatch, train.MaxEvalBatch(a))
	if batch < 1 {
		return nil, fmt.Errorf("%w: one example of this architecture does not fit the evaluation memory budget", ErrInput)
	}
	r, err := supernet.NewRunner(a, p, s, batch, ops)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	c := a.Classes
	out := make([]float32, 0, n*c)
	for lo := 0; lo < n; lo += batch {
		k := min(batch, n-lo)
		z, err := r.Logits(x[lo*size:(lo+k)*size], k) // (batch, classes), rows past k are padding
		if err != nil {
			return nil, err
		}
		out = append(out, z[:k*c]...)
	}
	return out, nil
}
