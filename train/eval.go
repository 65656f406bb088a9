package train

import (
	"errors"
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

// NewEvaluator prepares an evaluator; batches of d must be batch examples long. Graphs are
// built at the first Evaluate, for min(batch, examples in the split) examples, so a batch
// larger than the split costs no more than the split; graphs over EvalMemoryBudget are
// refused there (check the batch earlier with CheckEvalBatch).
func NewEvaluator(a arch.Arch, p *supernet.Params, ops nn.Ops, d data.Batcher, batch int) *Evaluator {
	if p.Dtype() != tensor.Float32 {
		p = p.Convert(tensor.Float32)
	}
	return &Evaluator{e: newEvaluator(a, p, ops, d, batch, 4)}
}

// Evaluate returns the accuracy and mean cross-entropy of subnet s over the whole split.
// Non-finite logits give an error wrapping ErrNonFinite.
func (e *Evaluator) Evaluate(s arch.Subnet) (accuracy, loss float64, err error) {
	acc, l, _, err := e.e.evaluate("", s)
	return acc, l, err
}

// GraphBatch is the number of examples the evaluation graphs were built for: the batch
// size, or the split's size when that is smaller; 0 before the first Evaluate.
func (e *Evaluator) GraphBatch() int { return e.e.graphBS }

// Close releases the graphs.
func (e *Evaluator) Close() { e.e.close() }

// EvalMemoryBudget is the most activation memory, in bytes, that one evaluation graph may
// take (1 GiB): CheckEvalBatch refuses batches whose estimate (EvalBytesPerExample times
// the batch) exceeds it. An evaluator keeps up to its cache capacity of such graphs (2 for
// Evaluate, graph_cache for a trainer; fused ops share one graph between subnets of the same
// depth). For the reference architecture (arch.Default) the budget allows 2,525 examples,
// ten times the default eval_batch; the old bound of 65,536 took 22.7 GB.
const EvalMemoryBudget int64 = 1 << 30

// EvalBytesPerExample estimates the activation memory one example takes in a forward-only
// evaluation graph of architecture a with fused ops and float32 values. The formula counts
// float32 values per example: for the input, patches and embedding 2·C·H·W + 8·T·D, and per
// block T·(8·D + 2·MLP + heads·(5·head_dim + T)), plus T·(6·D + rank) for a position with
// affine or low-rank transforms and 2·heads·T² for head mixing (T tokens, D the width). Its
// constants were fitted on the heap growth (runtime.MemStats) of evaluations that varied the
// width, MLP width, heads, depth, tokens (17 to 197) and transforms; it overestimates each
// of them by 5 to 25%. Composed ops take about 3.6 times as much.
func EvalBytesPerExample(a arch.Arch) int64 {
	t, d, hd := float64(a.Tokens()), float64(a.Dim), float64(a.HeadDim)
	floats := 2*float64(a.InChannels)*float64(a.InHeight)*float64(a.InWidth) + 8*t*d
	block := func(l arch.Layer) float64 {
		return t * (8*d + 2*float64(l.MLP) + float64(l.Heads)*(5*hd+t))
	}
	if a.Expanded() {
		for _, p := range a.Positions {
			if p.Layer < 0 || p.Layer >= len(a.Layers) {
				continue // arch.Validate rejects it
			}
			l := a.Layers[p.Layer]
			floats += block(l)
			if p.Affine || p.LowRank > 0 {
				floats += t * (6*d + float64(p.LowRank))
			}
			if p.HeadMix {
				floats += 2 * float64(l.Heads) * t * t
			}
		}
	} else {
		for _, l := range a.Layers {
			floats += block(l)
		}
	}
	b := math.Ceil(4 * floats)
	if b >= math.MaxInt64 {
		return math.MaxInt64
	}
	return max(int64(b), 1)
}

// MaxEvalBatch is the largest evaluation batch of architecture a within EvalMemoryBudget
// (0 when not even one example fits).
func MaxEvalBatch(a arch.Arch) int {
	return int(min(EvalMemoryBudget/EvalBytesPerExample(a), math.MaxInt32))
}

// ErrEvalBatch is wrapped by CheckEvalBatch's errors and by an evaluation whose graphs
// would exceed EvalMemoryBudget.
var ErrEvalBatch = errors.New("invalid evaluation batch")

// CheckEvalBatch checks an evaluation batch size for architecture a against
// EvalMemoryBudget; the error names key, the flag or configuration key the value came from
// ("train.eval_batch", "--batch"), and the largest batch allowed.
func CheckEvalBatch(a arch.Arch, batch int, key string) error {
	limit := MaxEvalBatch(a)
	switch {
	case limit < 1:
		return fmt.Errorf("%w: %s: got %d, but one example of this architecture takes about %s to evaluate, over the %s budget of an evaluation graph",
			ErrEvalBatch, key, batch, formatBytes(EvalBytesPerExample(a)), formatBytes(EvalMemoryBudget))
	case batch < 1 || batch > limit:
		return fmt.Errorf("%w: %s: got %d, want 1..%d (evaluating this architecture takes about %s per example, and one evaluation graph may use at most %s)",
			ErrEvalBatch, key, batch, limit, formatBytes(EvalBytesPerExample(a)), formatBytes(EvalMemoryBudget))
	}
	return nil
}

// formatBytes writes n in binary units ("425.2 KiB", "1 GiB").
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 5 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.4g %ciB", v, "KMGTPE"[i])
}

// evaluator runs forward-only graphs (a separate graph per subnet: gorgonia's TapeMachine
// cannot run a training graph forward-only) over an ordered split. Like training, each
// batch is cut into shards that run side by side.
type evaluator struct {
	arch     arch.Arch
	params   *supernet.Params
	ops      nn.Ops
	capacity int
	data     data.Batcher
	shards   []*shard // built by prepare
	batch    data.Batch
	evalBS   int // examples in each batch of data
	graphBS  int // examples in each graph run: evalBS, or the split's size if smaller
}

// evalShards is how many shards evaluation uses when the batch allows it.
const evalShards = 2

func newEvaluator(a arch.Arch, p *supernet.Params, ops nn.Ops, d data.Batcher, batch, capacity int) *evaluator {
	return &evaluator{arch: a, params: p, ops: ops, capacity: capacity, data: d, evalBS: batch}
}

// prepare sizes the graphs' inputs once: for the whole batch, or for the split when it is
// a single batch holding fewer real examples (the rest would be padding).
func (e *evaluator) prepare() error {
	if e.shards != nil {
		return nil
	}
	if e.data.BatchesPerEpoch() < 1 {
		return errors.New("the evaluation split is empty")
	}
	gb := e.evalBS
	if e.data.BatchesPerEpoch() == 1 {
		e.data.Batch(0, 0, &e.batch)
		if len(e.batch.Labels) != e.evalBS {
			return fmt.Errorf("evaluation batches hold %d examples, graphs expect %d", len(e.batch.Labels), e.evalBS)
		}
		gb = min(gb, e.batch.Size)
	}
	if gb < 1 {
		return errors.New("the evaluation split is empty")
	}
	if limit := MaxEvalBatch(e.arch); gb > limit {
		return fmt.Errorf("%w: graphs of %d examples would take about %s, over the %s budget of an evaluation graph (at most %d examples for this architecture)",
			ErrEvalBatch, gb, formatBytes(int64(gb)*EvalBytesPerExample(e.arch)), formatBytes(EvalMemoryBudget), limit)
	}
	want := evalShards
	if gb%want != 0 {
		want = 1
	}
	n, sops := shardOps(e.ops, want)
	for i := 0; i < n; i++ {
		in := graphInputs{patches: supernet.NewPatches(e.arch, gb/n, e.params.Dtype())}
		e.shards = append(e.shards, &shard{in: in, lo: i * gb / n, n: gb / n,
			cache: newGraphCache(e.arch, e.params, sops, in, lossSpec{}, e.capacity)})
	}
	e.graphBS = gb
	return nil
}

func (e *evaluator) close() {
	for _, sh := range e.shards {
		sh.cache.close()
	}
}

// evaluate computes accuracy and loss of subnet s (called name in errors, if not empty)
// over every batch of the split. Non-finite logits or losses are errors wrapping
// ErrNonFinite: a mean over them would be printed as a result.
func (e *evaluator) evaluate(name string, s arch.Subnet) (acc, loss float64, n int, err error) {
	what := "subnet " + s.Key()
	if name != "" {
		what = fmt.Sprintf("subnet %s (%s)", name, s.Key())
	}
	if err := e.prepare(); err != nil {
		return 0, 0, 0, fmt.Errorf("train: evaluating %s: %w", what, err)
	}
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
				return fmt.Errorf("train: evaluating %s: %w", what, err)
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
				for j, v := range row {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						return 0, 0, 0, fmt.Errorf("train: evaluating %s: %w: logit %d of example %d of the split is %v",
							what, ErrNonFinite, j, i*e.evalBS+sh.lo+b, v)
					}
				}
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
	if math.IsNaN(total) || math.IsInf(total, 0) {
		return 0, 0, 0, fmt.Errorf("train: evaluating %s: %w: mean cross-entropy %v", what, ErrNonFinite, total/float64(n))
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
		acc, loss, n, err := t.eval.evaluate(s.Name, s.Subnet)
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
		acc, loss, n, err := e.evaluate(s.Name, s.Subnet)
		if err != nil {
			return nil, err
		}
		cost := costOf(a, s.Subnet)
		out = append(out, SubnetEval{Name: s.Name, Key: s.Subnet.Key(), Accuracy: acc, Loss: loss,
			Params: cost.Params, MACs: cost.MACs, Examples: n})
	}
	return out, nil
}
