package train

import (
	"errors"
	"fmt"
	"math"

	"github.com/ofa-go/ofa/arch"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid training configuration")

// Config is the training loop's configuration (viper fills it from YAML, environment and
// flags under the "train" key).
type Config struct {
	// Epochs of training; Steps, if > 0, overrides it.
	Epochs int `mapstructure:"epochs" json:"epochs"`
	Steps  int `mapstructure:"steps" json:"steps"`
	// BatchSize is the number of examples per step (every sampled subnet sees the same batch).
	BatchSize int `mapstructure:"batch_size" json:"batch_size"`
	// LR is the peak learning rate, reached after WarmupSteps and decayed to MinLR by a cosine.
	LR          float64 `mapstructure:"lr" json:"lr"`
	MinLR       float64 `mapstructure:"min_lr" json:"min_lr"`
	WarmupSteps int     `mapstructure:"warmup_steps" json:"warmup_steps"`
	// WeightDecay is AdamW's decoupled decay, applied to matrices only (not to norms, biases,
	// the class token, positions or transforms).
	WeightDecay float64 `mapstructure:"weight_decay" json:"weight_decay"`
	// Beta1, Beta2 and Eps are AdamW's moment decay rates and its denominator's epsilon.
	Beta1 float64 `mapstructure:"beta1" json:"beta1"`
	Beta2 float64 `mapstructure:"beta2" json:"beta2"`
	Eps   float64 `mapstructure:"eps" json:"eps"`
	// ClipNorm bounds the global L2 norm of the summed gradients (0: no clipping).
	ClipNorm float64 `mapstructure:"clip_norm" json:"clip_norm"`
	// LabelSmoothing mixes the one-hot labels with the uniform distribution.
	LabelSmoothing float64 `mapstructure:"label_smoothing" json:"label_smoothing"`
	// LargestLabelSmoothing, when above 0, is the label smoothing of the in-place teacher
	// (the largest subnet) instead of LabelSmoothing, so that the largest subnet alone is
	// regularised (BigNAS); 0 means LabelSmoothing. With Alpha = 1 the other subnets never
	// see the labels, so LabelSmoothing already acts on the largest alone.
	LargestLabelSmoothing float64 `mapstructure:"largest_label_smoothing" json:"largest_label_smoothing,omitempty"`
	// ProjectConflicts removes from each other subnet's gradient its component along the
	// first subnet's gradient (the largest: the in-place teacher, or with an external
	// teacher the largest student) when the two point against each other (negative dot
	// product), as NASViT's gradient projection does, so smaller subnets cannot undo the
	// largest subnet's step.
	ProjectConflicts bool `mapstructure:"project_conflicts" json:"project_conflicts,omitempty"`
	// Temperature and Alpha configure distillation: students minimise
	// (1-Alpha)·CE(labels) + Alpha·τ²·KL(teacher_τ || student_τ).
	Temperature float64 `mapstructure:"temperature" json:"temperature"`
	Alpha       float64 `mapstructure:"alpha" json:"alpha"`
	// HiddenDistill, when above 0, adds hidden-state distillation from an external teacher
	// (fine-tuning): HiddenDistill times the mean over the student's block positions of the
	// mean squared difference between its residual stream after position i and the
	// teacher's after block ⌈(i+1)·Pt/Ps⌉ (Ps student positions, Pt teacher blocks;
	// MiniViT's and TinyBERT's uniform position-to-layer map). Student and teacher share
	// the embedding width. 0: logits only.
	HiddenDistill float64 `mapstructure:"hidden_distill" json:"hidden_distill,omitempty"`
	// EvalEvery evaluates every this many steps (0: at the end of every epoch).
	EvalEvery int `mapstructure:"eval_every" json:"eval_every"`
	// EvalBatch is the batch size of evaluation graphs: 1..MaxEvalBatchAny, and within the
	// architecture's memory budget (CheckEvalBatch, applied by ValidateFor and New). Graphs
	// never hold more examples than the evaluation split.
	EvalBatch int `mapstructure:"eval_batch" json:"eval_batch"`
	// CheckpointEvery saves the resume state every this many steps (0: at every evaluation).
	CheckpointEvery int `mapstructure:"checkpoint_every" json:"checkpoint_every"`
	// GraphCache is how many compiled subnet graphs are kept.
	GraphCache int `mapstructure:"graph_cache" json:"graph_cache"`
	// Seed drives data order and augmentation (the sampler has its own seed).
	Seed uint64 `mapstructure:"seed" json:"seed"`
	// TransformLRScale multiplies the learning rate (and so the decay) of an expanded
	// model's feature transforms: the affine maps that carry the reused positions' branch
	// gates, the low-rank maps and the head mixing. 1 leaves them at the rate of every
	// other weight; models without positions have no transforms.
	TransformLRScale float64 `mapstructure:"transform_lr_scale" json:"transform_lr_scale"`
	// Shards splits every batch into this many slices that run side by side (one per core)
	// with single-threaded kernels; their gradients are summed in a fixed order. Results
	// depend on the shard count (float summation order), not on the machine. 0 means 1.
	// Under MPI the shards are spread over the ranks (Shards/ranks each, so Shards must be
	// a multiple of the rank count): the rank count changes where they run, not the result.
	Shards int `mapstructure:"shards" json:"shards"`
}

// Default returns the configuration used by `ofa train` without overrides. Alpha 0.5 (the
// smaller subnets learn from the labels and the largest equally) won the recipe grid of
// docs/RECIPES.md over pure distillation.
func Default() Config {
	return Config{
		Epochs: 10, BatchSize: 64, LR: 2e-3, MinLR: 1e-5, WarmupSteps: 200, WeightDecay: 0.05,
		Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, ClipNorm: 1, LabelSmoothing: 0,
		Temperature: 1, Alpha: 0.5, EvalBatch: 250, GraphCache: 8, Seed: 1, Shards: 2, TransformLRScale: 1,
	}
}

// Validate checks ranges; errors name the key as it appears in a config file, under the
// section the configuration came from (section "train" or "finetune").
func (c Config) Validate(section string) error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: %s.%s: %s", ErrConfig, section, key, fmt.Sprintf(format, args...))
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch {
	case c.Epochs < 0:
		return bad("epochs", "got %d, want >= 0", c.Epochs)
	case c.Steps < 0:
		return bad("steps", "got %d, want >= 0", c.Steps)
	case c.Epochs == 0 && c.Steps == 0:
		return bad("epochs", "both epochs and steps are 0: nothing to train")
	case c.BatchSize < 1 || c.BatchSize > 1<<16:
		return bad("batch_size", "got %d, want 1..65536", c.BatchSize)
	case !finite(c.LR) || c.LR <= 0 || c.LR > 1:
		return bad("lr", "got %g, want in (0, 1]", c.LR)
	case !finite(c.MinLR) || c.MinLR < 0 || c.MinLR > c.LR:
		return bad("min_lr", "got %g, want in [0, lr=%g]", c.MinLR, c.LR)
	case c.WarmupSteps < 0:
		return bad("warmup_steps", "got %d, want >= 0", c.WarmupSteps)
	case !finite(c.WeightDecay) || c.WeightDecay < 0 || c.WeightDecay >= 1:
		return bad("weight_decay", "got %g, want in [0, 1)", c.WeightDecay)
	case !(c.Beta1 >= 0 && c.Beta1 < 1):
		return bad("beta1", "got %g, want in [0, 1)", c.Beta1)
	case !(c.Beta2 >= 0 && c.Beta2 < 1):
		return bad("beta2", "got %g, want in [0, 1)", c.Beta2)
	case !(c.Eps > 0 && c.Eps < 1):
		return bad("eps", "got %g, want in (0, 1)", c.Eps)
	case !finite(c.ClipNorm) || c.ClipNorm < 0:
		return bad("clip_norm", "got %g, want >= 0", c.ClipNorm)
	case !(c.LabelSmoothing >= 0 && c.LabelSmoothing < 1):
		return bad("label_smoothing", "got %g, want in [0, 1)", c.LabelSmoothing)
	case !(c.LargestLabelSmoothing >= 0 && c.LargestLabelSmoothing < 1):
		return bad("largest_label_smoothing", "got %g, want in [0, 1)", c.LargestLabelSmoothing)
	case !(c.Temperature > 0 && c.Temperature <= 100):
		return bad("temperature", "got %g, want in (0, 100]", c.Temperature)
	case !(c.Alpha >= 0 && c.Alpha <= 1):
		return bad("alpha", "got %g, want in [0, 1]", c.Alpha)
	case !(c.HiddenDistill >= 0 && c.HiddenDistill <= 100):
		return bad("hidden_distill", "got %g, want in [0, 100]", c.HiddenDistill)
	case c.EvalEvery < 0:
		return bad("eval_every", "got %d, want >= 0", c.EvalEvery)
	case c.EvalBatch < 1 || c.EvalBatch > MaxEvalBatchAny:
		return bad("eval_batch", "got %d, want 1..%d (and within the architecture's memory budget)", c.EvalBatch, MaxEvalBatchAny)
	case c.CheckpointEvery < 0:
		return bad("checkpoint_every", "got %d, want >= 0", c.CheckpointEvery)
	case c.GraphCache < 1 || c.GraphCache > 1024:
		return bad("graph_cache", "got %d, want 1..1024", c.GraphCache)
	case !(c.TransformLRScale > 0 && c.TransformLRScale <= 1000):
		return bad("transform_lr_scale", "got %g, want in (0, 1000]", c.TransformLRScale)
	case c.Shards < 1 || c.Shards > 64:
		return bad("shards", "got %d, want 1..64", c.Shards)
	case c.Shards > 1 && c.BatchSize%c.Shards != 0:
		return bad("shards", "%d shards do not divide batch_size %d", c.Shards, c.BatchSize)
	}
	return nil
}

// MaxEvalBatchAny bounds train.eval_batch before the architecture is known. The bound that
// matters is the architecture's (MaxEvalBatch: EvalMemoryBudget over the estimated
// activation memory of one example), which ValidateFor applies; for the reference
// architecture it is 2,525, and no architecture may go beyond this ceiling.
const MaxEvalBatchAny = 4096

// ValidateFor is Validate followed by the checks that depend on the architecture a: the
// evaluation batch must fit EvalMemoryBudget (CheckEvalBatch with key section.eval_batch).
func (c Config) ValidateFor(section string, a arch.Arch) error {
	if err := c.Validate(section); err != nil {
		return err
	}
	if err := CheckEvalBatch(a, c.EvalBatch, section+".eval_batch"); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// TotalSteps is the length of the run for an epoch of batchesPerEpoch batches.
func (c Config) TotalSteps(batchesPerEpoch int) int {
	if c.Steps > 0 {
		return c.Steps
	}
	return c.Epochs * batchesPerEpoch
}
