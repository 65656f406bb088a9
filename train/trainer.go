// Package train is the training loop: each step runs the sampled subnets on one batch (the
// teacher from labels, the others from labels and the teacher's soft predictions), sums
// their gradients into the shared weights and takes one AdamW step. Evaluation,
// checkpoints, progress and metrics attach as hooks.
package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/cluster"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/sampler"
	"github.com/ofa-go/ofa/supernet"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ErrNonFinite is returned when a loss or gradient becomes NaN or infinite. The weights are
// left as they were before the failing step.
var ErrNonFinite = errors.New("non-finite loss")

// ErrInterrupted is returned when the context is cancelled (SIGINT/SIGTERM) after the
// current step finished.
var ErrInterrupted = errors.New("training interrupted")

// Named is a subnet with a display name ("largest", "smallest", ...).
type Named struct {
	Name   string      `json:"name"`
	Subnet arch.Subnet `json:"subnet"`
}

// Teacher is an external model whose soft predictions students learn from (fine-tuning an
// extracted model from its supernet). Its input must be the student's.
type Teacher struct {
	Arch   arch.Arch
	Params *supernet.Params
	Subnet arch.Subnet
}

// Setup is everything a Trainer needs.
type Setup struct {
	Arch   arch.Arch
	Params *supernet.Params // float32, trained in place
	// Sampler draws the subnets of each step; without an external Teacher the first one is
	// the teacher of the others (in-place distillation).
	Sampler sampler.Sampler
	Teacher *Teacher
	Train   data.Batcher
	// Eval (optional) is iterated in order for evaluation; its batches must be EvalBatch long.
	Eval        data.Batcher
	EvalSubnets []Named
	Ops         nn.Ops
	Config      Config
	// World (nil: one process) is the data-parallel run this trainer is a rank of. The
	// batch is split into Config.Shards shards whatever the world; each rank reads the
	// whole batch and runs Shards/Size of them, and the shards' gradients of all ranks are
	// summed in shard order, so the weights do not depend on the number of ranks, bit for
	// bit: N ranks of S shards each train what one process with N*S shards trains.
	World cluster.World
}

// Trainer runs the loop. It is not safe for concurrent use.
type Trainer struct {
	s      Setup
	cfg    Config
	opt    *AdamW
	sched  Schedule
	total  int
	step   int
	shards []*shard
	world  cluster.World
	first  int // global index of this rank's first shard
	global int // shards over all ranks
	gather gatherBufs
	batch  data.Batch
	values [][]float32 // parameter values, in parameter order
	grads  [][]float32 // summed gradients of the current step
	// with train.project_conflicts: the first subnet's gradient and one other's, per step
	teacherGrads, studentGrads [][]float32
	eval                       *evaluator
	// work done by this trainer (not before a resume): subnets trained, summed over steps,
	// and their MACs per example
	subnetsTrained int
	macsTrained    int64
}

// New checks the setup and prepares a trainer at step 0.
func New(s Setup) (*Trainer, error) {
	cfg := s.Config
	if err := cfg.Validate("train"); err != nil {
		return nil, err
	}
	if err := s.Arch.Validate(); err != nil {
		return nil, err
	}
	if s.Eval != nil {
		if err := cfg.ValidateFor("train", s.Arch); err != nil {
			return nil, err
		}
	}
	if s.Params.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("train: weights must be float32 for training, got %v", s.Params.Dtype())
	}
	if s.Sampler == nil || s.Train == nil || s.Ops == nil {
		return nil, errors.New("train: setup needs a sampler, training data and ops")
	}
	if s.Train.BatchesPerEpoch() < 1 {
		return nil, errors.New("train: the training set has no complete batch")
	}
	if s.Teacher != nil {
		ta := s.Teacher.Arch
		if ta.Classes != s.Arch.Classes || ta.InChannels != s.Arch.InChannels || ta.InHeight != s.Arch.InHeight ||
			ta.InWidth != s.Arch.InWidth || ta.PatchHeight != s.Arch.PatchHeight || ta.PatchWidth != s.Arch.PatchWidth {
			return nil, fmt.Errorf("train: the teacher's input (%dx%dx%d, patch %dx%d) or classes (%d) differ from the student's (%dx%dx%d, patch %dx%d, %d classes)",
				ta.InChannels, ta.InHeight, ta.InWidth, ta.PatchHeight, ta.PatchWidth, ta.Classes,
				s.Arch.InChannels, s.Arch.InHeight, s.Arch.InWidth, s.Arch.PatchHeight, s.Arch.PatchWidth, s.Arch.Classes)
		}
		if err := s.Teacher.Subnet.Validate(ta); err != nil {
			return nil, fmt.Errorf("train: teacher subnet: %w", err)
		}
	}
	t := &Trainer{s: s, cfg: cfg}
	t.total = cfg.TotalSteps(s.Train.BatchesPerEpoch())
	t.sched = Schedule{Peak: cfg.LR, Min: cfg.MinLR, Warmup: cfg.WarmupSteps, Total: t.total}
	var sizes []int
	var decay []bool
	specs := map[string]supernet.TensorSpec{}
	for _, sp := range supernet.Spec(s.Arch) {
		specs[sp.Name] = sp
	}
	for _, name := range s.Params.Names() {
		v := s.Params.Get(name).Data().([]float32)
		t.values = append(t.values, v)
		t.grads = append(t.grads, make([]float32, len(v)))
		sizes = append(sizes, len(v))
		decay = append(decay, specs[name].Decay)
		if cfg.ProjectConflicts {
			t.teacherGrads = append(t.teacherGrads, make([]float32, len(v)))
			t.studentGrads = append(t.studentGrads, make([]float32, len(v)))
		}
	}
	t.opt = NewAdamW(sizes, decay, cfg.Beta1, cfg.Beta2, cfg.Eps, cfg.WeightDecay)
	if cfg.TransformLRScale != 1 {
		t.opt.LRScale = transformLRScales(s.Arch, s.Params.Names(), cfg.TransformLRScale)
	}
	global, ops := shardOps(s.Ops, cfg.Shards)
	t.world = cluster.OrNone(s.World)
	if size := t.world.Size(); global%size != 0 {
		return nil, fmt.Errorf("%w: shards: the batch's %d shards cannot be spread evenly over %d ranks (with fused ops, set train.shards to a multiple of the rank count)",
			ErrConfig, global, size)
	}
	n := global / t.world.Size() // this rank's shards
	t.global, t.first = global, n*t.world.Rank()
	c := s.Arch.Classes
	per := cfg.BatchSize / t.global
	// each shard's loss is its mean times 1/global, so the summed gradients are the full batch's
	loss := lossSpec{temperature: cfg.Temperature, alpha: cfg.Alpha, scale: 1 / float64(t.global)}
	if cfg.HiddenDistill > 0 {
		if s.Teacher == nil {
			return nil, fmt.Errorf("%w: hidden_distill %g needs an external teacher (fine-tuning from a supernet)", ErrConfig, cfg.HiddenDistill)
		}
		if s.Teacher.Arch.Dim != s.Arch.Dim {
			return nil, fmt.Errorf("%w: hidden_distill: the teacher's width %d differs from the student's %d", ErrConfig, s.Teacher.Arch.Dim, s.Arch.Dim)
		}
		loss.hidden = cfg.HiddenDistill
	}
	for i := 0; i < n; i++ {
		in := graphInputs{
			patches: supernet.NewPatches(s.Arch, per, tensor.Float32),
			labels:  tensor.New(tensor.WithShape(per, c), tensor.Of(tensor.Float32)),
			soft:    tensor.New(tensor.WithShape(per, c), tensor.Of(tensor.Float32)),
		}
		if s.Teacher == nil && cfg.LargestLabelSmoothing > 0 {
			in.teacherLabels = tensor.New(tensor.WithShape(per, c), tensor.Of(tensor.Float32))
		}
		if loss.hidden > 0 {
			for range teacherBlocks(*s.Teacher) {
				in.hidden = append(in.hidden, tensor.New(tensor.WithShape(per*s.Arch.Tokens(), s.Arch.Dim), tensor.Of(tensor.Float32)))
			}
		}
		sh := &shard{in: in, cache: newGraphCache(s.Arch, s.Params, ops, in, loss, cfg.GraphCache)}
		if s.Teacher != nil {
			sh.teacher = newGraphCache(s.Teacher.Arch, s.Teacher.Params, ops, in, loss, 1)
		}
		t.shards = append(t.shards, sh)
	}
	if s.Eval != nil {
		t.eval = newEvaluator(s.Arch, s.Params, s.Ops, s.Eval, cfg.EvalBatch, cfg.GraphCache)
	}
	return t, nil
}

// stepMACs is the forward MACs per example of subnet s of a: an expanded model runs as a
// whole, every position counted.
func stepMACs(a arch.Arch, s arch.Subnet) int64 {
	if a.Expanded() {
		return a.ModelCost().MACs
	}
	return a.SubnetCost(s).MACs
}

// teacherBlocks is the number of block runs of the teacher's graph (len(Net.Blocks)).
func teacherBlocks(t Teacher) int {
	if t.Arch.Expanded() {
		return len(t.Arch.Positions)
	}
	return t.Subnet.Positions()
}

// transformLRScales is the learning-rate scale of each named weight: scale for the feature
// transforms of a's positions, 1 for everything else.
func transformLRScales(a arch.Arch, names []string, scale float64) []float64 {
	transform := map[string]bool{}
	for i := range a.Positions {
		n := supernet.Position(i)
		for _, name := range []string{n.AffineInScale, n.AffineInShift, n.AffineAttnScale, n.AffineAttnShift,
			n.AffineMLPScale, n.AffineMLPShift, n.LowRankDown, n.LowRankUp, n.HeadMixPre, n.HeadMixPost} {
			transform[name] = true
		}
	}
	out := make([]float64, len(names))
	for i, name := range names {
		out[i] = 1
		if transform[name] {
			out[i] = scale
		}
	}
	return out
}

// Close releases the compiled graphs.
func (t *Trainer) Close() {
	for _, sh := range t.shards {
		sh.cache.close()
		if sh.teacher != nil {
			sh.teacher.close()
		}
	}
	if t.eval != nil {
		t.eval.close()
	}
}

// Step is the number of steps done.
func (t *Trainer) Step() int { return t.step }

// TotalSteps is the number of steps of the whole run.
func (t *Trainer) TotalSteps() int { return t.total }

// BatchesPerEpoch of the training data.
func (t *Trainer) BatchesPerEpoch() int { return t.s.Train.BatchesPerEpoch() }

// Optimizer exposes the optimizer state (for checkpoints).
func (t *Trainer) Optimizer() *AdamW { return t.opt }

// Params are the weights being trained.
func (t *Trainer) Params() *supernet.Params { return t.s.Params }

// Arch is the model's architecture.
func (t *Trainer) Arch() arch.Arch { return t.s.Arch }

// Config is the training configuration.
func (t *Trainer) Config() Config { return t.cfg }

// SetStep moves the trainer to a step (resuming); the optimizer state must be restored too.
func (t *Trainer) SetStep(step int) { t.step = step }

// Work is what this trainer has trained since it was made (a resumed run counts from the
// resume): subnets summed over steps, and their forward MACs per example summed likewise
// (a step's cost is about 3x its MACs times the batch size, backward included).
func (t *Trainer) Work() (subnets int, macs int64) { return t.subnetsTrained, t.macsTrained }

// GraphsBuilt counts the training graphs compiled so far.
func (t *Trainer) GraphsBuilt() int { return t.shards[0].cache.builds }

// shard is one slice of every batch with its own graphs: the shards of a step run side by
// side, one per core, and their gradients are summed in shard order.
type shard struct {
	in      graphInputs
	cache   *graphCache
	teacher *graphCache
	lo, n   int // the shard's examples in the batch
}

// shardOps returns how many shards to use and the ops their graphs use: fused ops run
// serially inside each shard (the shards are the parallelism); other ops are not sharded.
func shardOps(ops nn.Ops, shards int) (int, nn.Ops) {
	if f, ok := ops.(nn.Fused); ok && shards > 1 {
		f.Serial = true
		return shards, f
	}
	return 1, ops
}

// runShards runs f for every shard, concurrently when there are several, and returns the
// first error in shard order.
func runShards(shards []*shard, f func(i int, sh *shard) error) error {
	if len(shards) == 1 {
		return f(0, shards[0])
	}
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, sh := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i, sh)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// SubnetLoss is one subnet's result in a step.
type SubnetLoss struct {
	Key  string  `json:"subnet"`
	Loss float64 `json:"loss"`
}

// StepStats describes one finished step.
type StepStats struct {
	Step     int          `json:"step"` // 1-based: steps done after this one
	Epoch    float64      `json:"epoch"`
	LR       float64      `json:"lr"`
	Losses   []SubnetLoss `json:"losses"`
	Loss     float64      `json:"loss"`      // the first subnet's (the teacher's) loss
	TrainAcc float64      `json:"train_acc"` // the first subnet's accuracy on this batch
	GradNorm float64      `json:"grad_norm"`
	// Projected counts the subnets whose gradient conflicted with the teacher's and was
	// projected (train.project_conflicts).
	Projected int `json:"projected,omitempty"`
	// MACs sums the MACs per example of the subnets trained in this step (forward only).
	MACs    int64   `json:"macs"`
	Seconds float64 `json:"seconds"`
	// CommSeconds is the part of Seconds spent summing gradients across ranks (with
	// several ranks; waiting for a slower rank included).
	CommSeconds float64 `json:"comm_seconds,omitempty"`
	Samples     int     `json:"samples"`
}

// TrainStep runs one step: sample, forward/backward every subnet, clip, update.
func (t *Trainer) TrainStep() (StepStats, error) {
	start := time.Now()
	bpe := t.s.Train.BatchesPerEpoch()
	epoch, index := t.step/bpe, t.step%bpe
	t.s.Train.Batch(epoch, index, &t.batch)
	if t.batch.Size != t.cfg.BatchSize {
		return StepStats{}, fmt.Errorf("train: batch %d of epoch %d has %d examples, want %d (use drop_last for training)",
			index, epoch, t.batch.Size, t.cfg.BatchSize)
	}
	size := len(t.batch.X) / len(t.batch.Labels)
	per := t.batch.Size / t.global
	for i, sh := range t.shards {
		sh.lo, sh.n = (t.first+i)*per, per
		if err := supernet.Patchify(t.s.Arch, t.batch.X[sh.lo*size:], per, sh.in.patches); err != nil {
			return StepStats{}, err
		}
		t.fillLabels(sh)
	}
	for _, g := range t.grads {
		clear(g)
	}
	subnets := t.s.Sampler.Sample(t.step)
	st := StepStats{Step: t.step + 1, Epoch: float64(t.step+1) / float64(bpe), LR: t.sched.At(t.step), Samples: t.batch.Size}
	if t.s.Teacher != nil {
		graphs := make([]*subnetGraph, len(t.shards))
		for i, sh := range t.shards { // graphs are built on this goroutine, run in parallel
			g, err := sh.teacher.get(t.s.Teacher.Subnet, roleForward)
			if err != nil {
				return st, err
			}
			graphs[i] = g
		}
		if err := runShards(t.shards, func(i int, sh *shard) error {
			if err := graphs[i].run(); err != nil {
				return fmt.Errorf("train: teacher forward: %w", err)
			}
			t.softTargets(sh, graphs[i])
			for j, h := range sh.in.hidden {
				copy(h.Float32s(), graphs[i].net.Blocks[j].Value().Data().([]float32))
			}
			return nil
		}); err != nil {
			return st, err
		}
	}
	graphs := make([]*subnetGraph, len(t.shards))
	for i, s := range subnets {
		r := roleStudent
		if i == 0 && t.s.Teacher == nil {
			r = roleTeacher
		}
		for k, sh := range t.shards {
			g, err := sh.cache.get(s, r)
			if err != nil {
				return st, err
			}
			graphs[k] = g
		}
		if err := runShards(t.shards, func(k int, sh *shard) error {
			if err := graphs[k].run(); err != nil {
				return fmt.Errorf("train: step %d, subnet %s: %w", t.step+1, s.Key(), err)
			}
			if r == roleTeacher {
				t.softTargets(sh, graphs[k])
			}
			return nil
		}); err != nil {
			return st, err
		}
		sum := t.grads
		project := t.teacherGrads != nil && i > 0
		if project {
			sum = t.studentGrads
			for _, g := range sum {
				clear(g)
			}
		}
		loss, correct, comm, err := t.sumShards(graphs, sum)
		st.CommSeconds += comm
		if err != nil {
			return st, fmt.Errorf("train: step %d, subnet %s: %w", t.step+1, s.Key(), err)
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return st, fmt.Errorf("%w: loss %v at step %d (subnet %s); weights kept from step %d",
				ErrNonFinite, loss, t.step+1, s.Key(), t.step)
		}
		st.Losses = append(st.Losses, SubnetLoss{Key: s.Key(), Loss: loss})
		st.MACs += stepMACs(t.s.Arch, s)
		if i == 0 {
			st.Loss = loss
			st.TrainAcc = float64(correct) / float64(t.batch.Size)
		}
		switch {
		case project:
			if projectConflict(t.studentGrads, t.teacherGrads) {
				st.Projected++
			}
			for k, g := range t.studentGrads {
				nn.AddTo(t.grads[k], g)
			}
		case t.teacherGrads != nil:
			for k, g := range t.grads {
				copy(t.teacherGrads[k], g)
			}
		}
	}
	st.GradNorm = ClipGlobalNorm(t.grads, t.cfg.ClipNorm)
	if math.IsNaN(st.GradNorm) || math.IsInf(st.GradNorm, 0) {
		return st, fmt.Errorf("%w: gradient norm %v at step %d; weights kept from step %d", ErrNonFinite, st.GradNorm, t.step+1, t.step)
	}
	if err := t.opt.Step(t.values, t.grads, st.LR); err != nil {
		return st, err
	}
	t.step++
	t.subnetsTrained += len(subnets)
	t.macsTrained += st.MACs
	st.Seconds = time.Since(start).Seconds()
	return st, nil
}

// scalar reads a scalar node's value.
func scalar(n *G.Node) float64 {
	switch v := n.Value().Data().(type) {
	case float32:
		return float64(v)
	case float64:
		return v
	}
	return math.NaN()
}

// projectConflict removes from g its component along ref when they conflict (negative dot
// product), leaving g orthogonal to ref, and reports whether it did. Sums are in float64
// and in parameter order, so the result is deterministic.
func projectConflict(g, ref [][]float32) bool {
	var dot, norm2 float64
	for k, r := range ref {
		for j, v := range r {
			dot += float64(g[k][j]) * float64(v)
			norm2 += float64(v) * float64(v)
		}
	}
	if dot >= 0 || norm2 == 0 {
		return false
	}
	c := dot / norm2
	for k, r := range ref {
		gk := g[k]
		for j, v := range r {
			gk[j] = float32(float64(gk[j]) - c*float64(v))
		}
	}
	return true
}

// fillLabels writes the (smoothed) one-hot labels of a shard's examples, and the teacher's
// own when it has a label smoothing of its own.
func (t *Trainer) fillLabels(sh *shard) {
	fillOneHot(sh.in.labels.Float32s(), t.batch.Labels[sh.lo:sh.lo+sh.n], t.s.Arch.Classes, t.cfg.LabelSmoothing)
	if sh.in.teacherLabels != nil {
		fillOneHot(sh.in.teacherLabels.Float32s(), t.batch.Labels[sh.lo:sh.lo+sh.n], t.s.Arch.Classes, t.cfg.LargestLabelSmoothing)
	}
}

// fillOneHot writes labels as rows of c one-hot values mixed with the uniform distribution.
func fillOneHot(l []float32, labels []int, c int, smoothing float64) {
	off := float32(smoothing / float64(c))
	on := float32(1-smoothing) + off
	for b, y := range labels {
		row := l[b*c : (b+1)*c]
		for j := range row {
			row[j] = off
		}
		row[y] = on
	}
}

// softTargets writes softmax(logits/τ) of a teacher graph into the shard's soft targets.
func (t *Trainer) softTargets(sh *shard, g *subnetGraph) {
	c := t.s.Arch.Classes
	z := g.net.Logits.Value().(*tensor.Dense).Float32s()
	dst := sh.in.soft.Float32s()
	tau := t.cfg.Temperature
	for b := 0; b < len(z)/c; b++ {
		Softmax(dst[b*c:(b+1)*c], z[b*c:(b+1)*c], tau)
	}
}

// Softmax writes softmax(z/tau) to dst (as long as z), computed in float64: each
// exponential is stored in dst's type and divided by the float64 sum. Distillation's soft
// targets (float32) and predictions' probabilities (float64, tau 1) both come from it.
func Softmax[T float32 | float64](dst []T, z []float32, tau float64) {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, float64(v)/tau)
	}
	var s float64
	for j, v := range z {
		e := math.Exp(float64(v)/tau - m)
		dst[j] = T(e)
		s += e
	}
	for j := range dst {
		dst[j] = T(float64(dst[j]) / s)
	}
}

// correct counts the examples of shard k whose logits in g pick the label.
func (t *Trainer) correct(k int, g *subnetGraph) int {
	c := t.s.Arch.Classes
	z := g.net.Logits.Value().(*tensor.Dense).Float32s()
	sh := t.shards[k]
	n := 0
	for b := 0; b < sh.n; b++ {
		if argmax(z[b*c:(b+1)*c]) == t.batch.Labels[sh.lo+b] {
			n++
		}
	}
	return n
}

func argmax(z []float32) int {
	best := 0
	for j, v := range z {
		if v > z[best] {
			best = j
		}
	}
	return best
}

// Hook observes the run. Methods are called on the training goroutine.
type Hook interface {
	// OnStep is called after every step.
	OnStep(t *Trainer, s StepStats) error
	// OnEval is called after every evaluation.
	OnEval(t *Trainer, e EvalStats) error
}

// Run trains until the last step, evaluating every EvalEvery steps (or each epoch) and at
// the end. A cancelled context stops the run after the current step with ErrInterrupted;
// hooks (checkpointing) see the state first through OnInterrupt if they implement it.
func (t *Trainer) Run(ctx context.Context, hooks ...Hook) error {
	evalEvery := t.cfg.EvalEvery
	if evalEvery == 0 {
		evalEvery = t.s.Train.BatchesPerEpoch()
	}
	for t.step < t.total {
		stop := ctx.Err() != nil
		if t.world.Size() > 1 { // a signal may reach some ranks a step before the others
			var err error
			if stop, err = cluster.Any(t.world, stop); err != nil {
				return fmt.Errorf("train: step %d: %w", t.step+1, err)
			}
		}
		if stop {
			for _, h := range hooks {
				if ih, ok := h.(interface{ OnInterrupt(*Trainer) error }); ok {
					if herr := ih.OnInterrupt(t); herr != nil {
						return herr
					}
				}
			}
			return fmt.Errorf("%w at step %d", ErrInterrupted, t.step)
		}
		st, err := t.TrainStep()
		if err != nil {
			return err
		}
		for _, h := range hooks {
			if err := h.OnStep(t, st); err != nil {
				return err
			}
		}
		if t.eval != nil && (t.step%evalEvery == 0 || t.step == t.total) {
			ev, err := t.Evaluate(t.s.EvalSubnets)
			if err != nil {
				return err
			}
			if err := t.CheckRanks(); err != nil {
				return err
			}
			for _, h := range hooks {
				if err := h.OnEval(t, ev); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
