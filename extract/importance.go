// Package extract derives smaller models from a trained supernet: it scores every attention
// head, MLP neuron and layer on calibration data, reorders the supernet's weights so that
// every leading slice holds the most important units, chooses per-layer sizes (compression
// ratios, importance thresholds or a budget met by search) and exports a physically
// smaller model whose weights are a subset of the supernet's.
package extract

import (
	"errors"
	"fmt"
	"math"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ErrExtract is wrapped by errors about extraction settings and inputs.
var ErrExtract = errors.New("extract")

// Head criteria.
const (
	// HeadTaylor: |dLoss/dg_h| for a gate g_h = 1 scaling the head's output (Michel et al.,
	// "Are Sixteen Heads Really Better than One?"): the first-order loss change from
	// removing the head, summed over calibration batches.
	HeadTaylor = "taylor"
	// HeadAttnOut: the mean norm of the head's contribution to the residual stream,
	// ‖W_proj[:, h] · softmax(q_h k_hᵀ/√dh) v_h‖ per token: built on the head's queries,
	// keys and values through its attention output.
	HeadAttnOut = "attn_out"
	// HeadQKV: the mean over tokens of ‖q_h‖·‖k_h‖·‖v_h‖ (a head whose queries, keys or
	// values vanish contributes nothing).
	HeadQKV = "qkv"
	// HeadWeight: ‖W_v,h‖·‖W_proj[:, h]‖ (Frobenius norms), data-free.
	HeadWeight = "weight"
)

// Neuron criteria.
const (
	// NeuronTaylor: |dLoss/dg_j| for a gate on the neuron's activation.
	NeuronTaylor = "taylor"
	// NeuronActivation: mean |GELU activation| times ‖fc2[:, j]‖: the neuron's mean
	// contribution to the residual stream.
	NeuronActivation = "activation"
	// NeuronWeight: ‖fc1[j, :]‖·‖fc2[:, j]‖, data-free.
	NeuronWeight = "weight"
)

// Layer criteria.
const (
	// LayerDrop: the increase of calibration loss when the layer is skipped.
	LayerDrop = "drop"
	// LayerUpdate: the mean relative size of the layer's residual update ‖out−in‖/‖in‖.
	LayerUpdate = "update"
)

// Criteria selects how units are scored.
type Criteria struct {
	// Heads scores attention heads: "taylor" (the first-order loss change from removing
	// the head), "attn_out" (the norm of its output), "qkv" (its queries', keys' and
	// values' norms) or "weight" (data-free weight norms).
	Heads string `mapstructure:"heads" json:"heads"`
	// Neurons scores MLP neurons: "taylor", "activation" (mean activation times the
	// output weights' norm) or "weight" (data-free).
	Neurons string `mapstructure:"neurons" json:"neurons"`
	// Layers scores layers: "drop" (the calibration loss increase when the layer is
	// skipped) or "update" (the relative size of its residual update).
	Layers string `mapstructure:"layers" json:"layers"`
}

// DefaultCriteria are the Taylor scores for heads and neurons and the loss increase for
// layers: gradient-based scores measure what the loss actually loses, which is what
// accuracy after extraction depends on (docs/EXTRACT.md compares the criteria).
func DefaultCriteria() Criteria {
	return Criteria{Heads: HeadTaylor, Neurons: NeuronTaylor, Layers: LayerDrop}
}

// Validate checks the names; errors name the key.
func (c Criteria) Validate() error {
	switch c.Heads {
	case HeadTaylor, HeadAttnOut, HeadQKV, HeadWeight:
	default:
		return fmt.Errorf("%w: extract.criteria.heads: got %q, want taylor, attn_out, qkv or weight", ErrExtract, c.Heads)
	}
	switch c.Neurons {
	case NeuronTaylor, NeuronActivation, NeuronWeight:
	default:
		return fmt.Errorf("%w: extract.criteria.neurons: got %q, want taylor, activation or weight", ErrExtract, c.Neurons)
	}
	switch c.Layers {
	case LayerDrop, LayerUpdate:
	default:
		return fmt.Errorf("%w: extract.criteria.layers: got %q, want drop or update", ErrExtract, c.Layers)
	}
	return nil
}

// Scores holds an importance score per head and MLP neuron of every stored layer, and per
// layer, in the supernet's current unit order. Higher is more important.
type Scores struct {
	Heads   [][]float64 `json:"heads"`
	Neurons [][]float64 `json:"neurons"`
	Layers  []float64   `json:"layers"`
}

// Calibration is the data importance is measured on: batches of a (training-split) loader
// without augmentation.
type Calibration struct {
	Data    data.Batcher
	Batches int // how many batches (epoch 0, indices 0..Batches-1)
}

// Score measures the importance of every head, neuron and layer of the model's largest
// subnet on the calibration batches.
func Score(a arch.Arch, p *supernet.Params, c Calibration, crit Criteria) (*Scores, error) {
	if err := crit.Validate(); err != nil {
		return nil, err
	}
	if a.Expanded() {
		return nil, fmt.Errorf("%w: cannot score an expanded model", ErrExtract)
	}
	if c.Batches < 1 || c.Batches > c.Data.BatchesPerEpoch() {
		return nil, fmt.Errorf("%w: extract.calibration_batches: got %d, the calibration data has %d batches", ErrExtract, c.Batches, c.Data.BatchesPerEpoch())
	}
	if p.Dtype() != tensor.Float32 {
		p = p.Convert(tensor.Float32)
	}
	sc := &Scores{Heads: make([][]float64, len(a.Layers)), Neurons: make([][]float64, len(a.Layers)), Layers: make([]float64, len(a.Layers))}
	for i, l := range a.Layers {
		sc.Heads[i] = make([]float64, l.Heads)
		sc.Neurons[i] = make([]float64, l.MLP)
	}
	var b data.Batch
	c.Data.Batch(0, 0, &b)
	batch := len(b.Labels)
	pr, err := newProbedGraph(a, p, arch.Largest(a), batch)
	if err != nil {
		return nil, err
	}
	defer pr.close()
	tokens := 0
	full := 0.0
	for i := 0; i < c.Batches; i++ {
		c.Data.Batch(0, i, &b)
		loss, err := pr.run(b)
		if err != nil {
			return nil, err
		}
		full += loss
		tokens += b.Size * a.Tokens()
		for li, probe := range pr.probes {
			accumulate(a, p, probe, crit, sc.Heads[li], sc.Neurons[li], &sc.Layers[li], b.Size)
		}
	}
	for li := range a.Layers {
		norm := 1.0
		if crit.Heads != HeadTaylor && crit.Heads != HeadWeight {
			norm = float64(tokens)
		}
		scale(sc.Heads[li], norm)
		norm = 1.0
		if crit.Neurons == NeuronActivation {
			norm = float64(tokens)
		}
		scale(sc.Neurons[li], norm)
		sc.Layers[li] /= float64(tokens)
	}
	if crit.Heads == HeadWeight || crit.Neurons == NeuronWeight {
		weightScores(a, p, crit, sc)
	}
	if crit.Layers == LayerDrop {
		if err := dropScores(a, p, c, batch, full/float64(c.Batches), sc); err != nil {
			return nil, err
		}
	}
	return sc, nil
}

func scale(v []float64, by float64) {
	for i := range v {
		v[i] /= by
	}
}

// probedGraph runs a subnet with gates and probes and a cross-entropy loss.
type probedGraph struct {
	a      arch.Arch
	net    *supernet.Net
	probes []*supernet.LayerProbe
	loss   *G.Node
	hg, ng G.Nodes // gradients of the head and neuron gates, per probe
	labels *tensor.Dense
	vm     G.VM
}

func newProbedGraph(a arch.Arch, p *supernet.Params, s arch.Subnet, batch int) (*probedGraph, error) {
	g := G.NewGraph()
	net, probes, err := supernet.BuildProbed(g, a, p, s, supernet.NewPatches(a, batch, tensor.Float32), nn.Fused{})
	if err != nil {
		return nil, err
	}
	pg := &probedGraph{a: a, net: net, probes: probes,
		labels: tensor.New(tensor.WithShape(batch, a.Classes), tensor.Of(tensor.Float32))}
	pg.loss, err = nn.Fused{}.SoftCrossEntropy(net.Logits, G.NodeFromAny(g, pg.labels, G.WithName("labels")), 1, 1)
	if err != nil {
		return nil, err
	}
	var gates G.Nodes
	for _, pr := range probes {
		gates = append(gates, pr.HeadGates, pr.NeuronGates)
	}
	grads, err := G.Grad(pg.loss, gates...)
	if err != nil {
		return nil, fmt.Errorf("extract: gate gradients: %w", err)
	}
	for i := range probes {
		pg.hg = append(pg.hg, grads[2*i])
		pg.ng = append(pg.ng, grads[2*i+1])
	}
	pg.vm = G.NewTapeMachine(g)
	return pg, nil
}

func (pg *probedGraph) close() { pg.vm.Close() }

// run executes one batch and returns the mean loss over its real examples. Padding
// examples (label -1) get all-zero targets, so they add nothing to loss or gradients.
func (pg *probedGraph) run(b data.Batch) (float64, error) {
	if err := supernet.Patchify(pg.a, b.X, b.Size, pg.net.Patches); err != nil {
		return 0, err
	}
	l := pg.labels.Data().([]float32)
	clear(l)
	for i, y := range b.Labels {
		if y >= 0 {
			l[i*pg.a.Classes+y] = 1
		}
	}
	pg.vm.Reset()
	if err := pg.vm.RunAll(); err != nil {
		return 0, fmt.Errorf("extract: calibration: %w", err)
	}
	v := float64(pg.loss.Value().Data().(float32))
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w: calibration loss is %v", ErrExtract, v)
	}
	return v * float64(len(b.Labels)) / float64(b.Size), nil
}

func f32(n *G.Node) []float32 { return n.Value().Data().([]float32) }

// accumulate adds one batch's statistics for one layer.
func accumulate(a arch.Arch, p *supernet.Params, pr *supernet.LayerProbe, crit Criteria, heads, neurons []float64, layer *float64, size int) {
	d, dh := a.Dim, a.HeadDim
	h, m := len(heads), len(neurons)
	rows := size * a.Tokens() // real examples only: padding rows come last
	names := supernet.Layer(pr.Layer)
	switch crit.Heads {
	case HeadTaylor:
		for i, v := range f32(pr.HeadGates.Deriv()) {
			heads[i] += math.Abs(float64(v))
		}
	case HeadAttnOut:
		ctx := f32(pr.Context)
		proj := p.Float32(names.ProjWeight) // (D, H*dh)
		ld := len(proj) / d
		for r := 0; r < rows; r++ {
			for hi := 0; hi < h; hi++ {
				c := ctx[r*h*dh+hi*dh : r*h*dh+hi*dh+dh]
				var ss float64
				for o := 0; o < d; o++ {
					w := proj[o*ld+hi*dh : o*ld+hi*dh+dh]
					var s float32
					for j, v := range c {
						s += v * w[j]
					}
					ss += float64(s) * float64(s)
				}
				heads[hi] += math.Sqrt(ss)
			}
		}
	case HeadQKV:
		qkv := f32(pr.QKV)
		hd := h * dh
		for r := 0; r < rows; r++ {
			row := qkv[r*3*hd : (r+1)*3*hd]
			for hi := 0; hi < h; hi++ {
				heads[hi] += norm(row[hi*dh:hi*dh+dh]) * norm(row[hd+hi*dh:hd+hi*dh+dh]) * norm(row[2*hd+hi*dh:2*hd+hi*dh+dh])
			}
		}
	}
	switch crit.Neurons {
	case NeuronTaylor:
		for i, v := range f32(pr.NeuronGates.Deriv()) {
			neurons[i] += math.Abs(float64(v))
		}
	case NeuronActivation:
		act := f32(pr.Hidden)
		fc2 := p.Float32(names.FC2Weight) // (D, M)
		ld := len(fc2) / d
		col := make([]float64, m)
		for j := range col {
			var ss float64
			for o := 0; o < d; o++ {
				ss += float64(fc2[o*ld+j]) * float64(fc2[o*ld+j])
			}
			col[j] = math.Sqrt(ss)
		}
		for r := 0; r < rows; r++ {
			for j, v := range act[r*m : (r+1)*m] {
				neurons[j] += math.Abs(float64(v)) * col[j]
			}
		}
	}
	in, out := f32(pr.In), f32(pr.Out)
	for r := 0; r < rows; r++ {
		x, y := in[r*d:(r+1)*d], out[r*d:(r+1)*d]
		var dd, xx float64
		for j := range x {
			diff := float64(y[j] - x[j])
			dd += diff * diff
			xx += float64(x[j]) * float64(x[j])
		}
		*layer += math.Sqrt(dd) / math.Max(math.Sqrt(xx), 1e-12)
	}
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// weightScores fills the data-free criteria.
func weightScores(a arch.Arch, p *supernet.Params, crit Criteria, sc *Scores) {
	d, dh := a.Dim, a.HeadDim
	for li, l := range a.Layers {
		names := supernet.Layer(li)
		if crit.Heads == HeadWeight {
			qkv := p.Float32(names.QKVWeight)   // (3*H*dh, D)
			proj := p.Float32(names.ProjWeight) // (D, H*dh)
			hd := l.Heads * dh
			for h := 0; h < l.Heads; h++ {
				var vv, pp float64
				for r := 2*hd + h*dh; r < 2*hd+(h+1)*dh; r++ {
					for _, x := range qkv[r*d : (r+1)*d] {
						vv += float64(x) * float64(x)
					}
				}
				for o := 0; o < d; o++ {
					for _, x := range proj[o*hd+h*dh : o*hd+(h+1)*dh] {
						pp += float64(x) * float64(x)
					}
				}
				sc.Heads[li][h] = math.Sqrt(vv) * math.Sqrt(pp)
			}
		}
		if crit.Neurons == NeuronWeight {
			fc1 := p.Float32(names.FC1Weight) // (M, D)
			fc2 := p.Float32(names.FC2Weight) // (D, M)
			for j := 0; j < l.MLP; j++ {
				var r1, r2 float64
				for _, x := range fc1[j*d : (j+1)*d] {
					r1 += float64(x) * float64(x)
				}
				for o := 0; o < d; o++ {
					x := fc2[o*l.MLP+j]
					r2 += float64(x) * float64(x)
				}
				sc.Neurons[li][j] = math.Sqrt(r1) * math.Sqrt(r2)
			}
		}
	}
}

// dropScores sets each layer's score to the calibration loss increase when it is skipped.
func dropScores(a arch.Arch, p *supernet.Params, c Calibration, batch int, full float64, sc *Scores) error {
	if len(a.Layers) == 1 {
		sc.Layers[0] = math.Inf(1) // the only layer cannot be dropped
		return nil
	}
	var b data.Batch
	for skip := range a.Layers {
		s := arch.Largest(a)
		s.Layers = append(s.Layers[:skip:skip], s.Layers[skip+1:]...)
		pg, err := newProbedGraph(a, p, s, batch)
		if err != nil {
			return err
		}
		total := 0.0
		for i := 0; i < c.Batches; i++ {
			c.Data.Batch(0, i, &b)
			l, err := pg.run(b)
			if err != nil {
				pg.close()
				return err
			}
			total += l
		}
		pg.close()
		sc.Layers[skip] = total/float64(c.Batches) - full
	}
	return nil
}
