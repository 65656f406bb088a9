package train

import (
	"fmt"
	"math"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	"gorgonia.org/tensor"
)

// SubnetEval is one subnet's result on the evaluation split.
type SubnetEval struct {
	Name     string  `json:"name"`
	Key      string  `json:"subnet"`
	Accuracy float64 `json:"accuracy"`
	Loss     float64 `json:"loss"` // mean cross-entropy with the labels
	Params   int64   `json:"params"`
	MACs     int64   `json:"macs"`
	Examples int     `json:"examples"`
}

// EvalStats is one evaluation.
type EvalStats struct {
	Step    int          `json:"step"`
	Epoch   float64      `json:"epoch"`
	Subnets []SubnetEval `json:"subnets"`
	Seconds float64      `json:"seconds"`
}

// Evaluator measures subnets of one model on an ordered split, keeping compiled graphs
// (resized between subnets of the same depth) across calls.
type Evaluator struct{ e *evaluator }

// NewEvaluator prepares an evaluator; batches of d must be batch examples long.
func NewEvaluator(a arch.Arch, p *supernet.Params, ops nn.Ops, d data.Batcher, batch int) *Evaluator {
	if p.Dtype() != tensor.Float32 {
		p = p.Convert(tensor.Float32)
	}
	return &Evaluator{e: newEvaluator(a, p, ops, d, batch, 4)}
}

// Evaluate returns the accuracy and mean cross-entropy of subnet s over the whole split.
func (e *Evaluator) Evaluate(s arch.Subnet) (accuracy, loss float64, err error) {
	acc, l, _, err := e.e.evaluate(s)
	return acc, l, err
}

// Close releases the graphs.
func (e *Evaluator) Close() { e.e.close() }

// evaluator runs forward-only graphs (a separate graph per subnet: gorgonia's TapeMachine
// cannot run a training graph forward-only) over an ordered split. Like training, each
// batch is cut into shards that run side by side.
type evaluator struct {
	arch   arch.Arch
	data   data.Batcher
	shards []*shard
	batch  data.Batch
	evalBS int
}

// evalShards is how many shards evaluation uses when the batch allows it.
const evalShards = 2

func newEvaluator(a arch.Arch, p *supernet.Params, ops nn.Ops, d data.Batcher, batch, capacity int) *evaluator {
	want := evalShards
	if batch%want != 0 {
		want = 1
	}
	n, sops := shardOps(ops, want)
	e := &evaluator{arch: a, data: d, evalBS: batch}
	for i := 0; i < n; i++ {
		in := graphInputs{patches: supernet.NewPatches(a, batch/n, p.Dtype())}
		e.shards = append(e.shards, &shard{in: in, lo: i * batch / n, n: batch / n,
			cache: newGraphCache(a, p, sops, in, lossSpec{}, capacity)})
	}
	return e
}

func (e *evaluator) close() {
	for _, sh := range e.shards {
		sh.cache.close()
	}
}

// evaluate computes accuracy and loss of subnet s over every batch of the split.
func (e *evaluator) evaluate(s arch.Subnet) (acc, loss float64, n int, err error) {
	graphs := make([]*subnetGraph, len(e.shards))
	for i, sh := range e.shards {
		if graphs[i], err = sh.cache.get(s, roleForward); err != nil {
			return 0, 0, 0, err
		}
	}
	c := e.arch.Classes
	correct := 0
	var total float64
	for i := 0; i < e.data.BatchesPerEpoch(); i++ {
		e.data.Batch(0, i, &e.batch)
		if len(e.batch.Labels) != e.evalBS {
			return 0, 0, 0, fmt.Errorf("train: evaluation batches hold %d examples, graphs expect %d", len(e.batch.Labels), e.evalBS)
		}
		size := len(e.batch.X) / len(e.batch.Labels)
		err := runShards(e.shards, func(k int, sh *shard) error {
			real := min(sh.n, max(0, e.batch.Size-sh.lo)) // padding examples are zero
			if err := supernet.Patchify(e.arch, e.batch.X[sh.lo*size:], real, sh.in.patches); err != nil {
				return err
			}
			if err := graphs[k].run(); err != nil {
				return fmt.Errorf("train: evaluating %s: %w", s.Key(), err)
			}
			return nil
		})
		if err != nil {
			return 0, 0, 0, err
		}
		for k, sh := range e.shards {
			z := floats32(graphs[k].net.Logits.Value().Data())
			for b := 0; b < sh.n && sh.lo+b < e.batch.Size; b++ {
				row := z[b*c : (b+1)*c]
				y := e.batch.Labels[sh.lo+b]
				if argmax(row) == y {
					correct++
				}
				total += crossEntropy(row, y)
			}
		}
		n += e.batch.Size
	}
	if n == 0 {
		return 0, 0, 0, fmt.Errorf("train: the evaluation split is empty")
	}
	return float64(correct) / float64(n), total / float64(n), n, nil
}

func floats32(d interface{}) []float32 {
	switch v := d.(type) {
	case []float32:
		return v
	case []float64:
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out
	}
	return nil
}

// crossEntropy is -log softmax(z)[y].
func crossEntropy(z []float32, y int) float64 {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, float64(v))
	}
	var s float64
	for _, v := range z {
		s += math.Exp(float64(v) - m)
	}
	return -(float64(z[y]) - m - math.Log(s))
}

// Evaluate measures each named subnet on the evaluation split.
func (t *Trainer) Evaluate(subnets []Named) (EvalStats, error) {
	if t.eval == nil {
		return EvalStats{}, fmt.Errorf("train: no evaluation data")
	}
	start := time.Now()
	ev := EvalStats{Step: t.step, Epoch: float64(t.step) / float64(t.s.Train.BatchesPerEpoch())}
	for _, s := range subnets {
		acc, loss, n, err := t.eval.evaluate(s.Subnet)
		if err != nil {
			return ev, err
		}
		cost := costOf(t.s.Arch, s.Subnet)
		ev.Subnets = append(ev.Subnets, SubnetEval{Name: s.Name, Key: s.Subnet.Key(), Accuracy: acc, Loss: loss,
			Params: cost.Params, MACs: cost.MACs, Examples: n})
	}
	ev.Seconds = time.Since(start).Seconds()
	return ev, nil
}

func costOf(a arch.Arch, s arch.Subnet) arch.Cost {
	if a.Expanded() {
		return a.ModelCost()
	}
	return a.SubnetCost(s)
}

// Evaluate measures subnets of a model on an ordered split without a trainer (for `ofa eval`
// and the lifecycle reports).
func Evaluate(a arch.Arch, p *supernet.Params, ops nn.Ops, d data.Batcher, batch int, subnets []Named) ([]SubnetEval, error) {
	if p.Dtype() != tensor.Float32 {
		p = p.Convert(tensor.Float32)
	}
	e := newEvaluator(a, p, ops, d, batch, 2)
	defer e.close()
	var out []SubnetEval
	for _, s := range subnets {
		acc, loss, n, err := e.evaluate(s.Subnet)
		if err != nil {
			return nil, err
		}
		cost := costOf(a, s.Subnet)
		out = append(out, SubnetEval{Name: s.Name, Key: s.Subnet.Key(), Accuracy: acc, Loss: loss,
			Params: cost.Params, MACs: cost.MACs, Examples: n})
	}
	return out, nil
}
