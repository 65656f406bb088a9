// Package config holds the tool's configuration types, one section per lifecycle step,
// with their defaults and checks. It is a leaf below the lifecycle (package pipeline, which
// names these types too) so that the strict loader (package configfile) can decode both a
// configuration file and a run's stored configuration into them.
package config

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/data/speech"
	"github.com/ofa-go/ofa/expand"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/sampler"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("configuration")

// TeacherDense is the run.teacher value that trains the dense model first and distils
// every model of the run from it.
const TeacherDense = "dense"

// RunFile is the name of the configuration a run stores in its output directory.
const RunFile = "config.yaml"

// Config is the whole configuration of the tool, one section per step. The CLI fills it
// from defaults, a YAML file, OFA_ environment variables and flags; library users build it
// from DefaultConfig.
type Config struct {
	Data    DataConfig     `mapstructure:"data"`
	Model   ModelConfig    `mapstructure:"model"`
	Sampler sampler.Config `mapstructure:"sampler"`
	Train   train.Config   `mapstructure:"train"`
	Extract ExtractConfig  `mapstructure:"extract"`
	Expand  expand.Config  `mapstructure:"expand"`
	Run     RunConfig      `mapstructure:"run"`
	Reorder ReorderConfig  `mapstructure:"reorder"`
	// Finetune configures fine-tuning of extracted and expanded models (same keys as train).
	Finetune train.Config `mapstructure:"finetune"`
	// Out is the output directory.
	Out string `mapstructure:"out"`
	// Ops selects the operation implementations: "fused" (fast) or "composed" (reference).
	Ops string `mapstructure:"ops"`
}

// DataConfig chooses the dataset.
type DataConfig struct {
	// Dir holds an image dataset, recognised by its layout: image folders
	// (DIR/<split>/<class>/<image>), Hugging Face Parquet files or IDX files. Empty means
	// the Debian package dataset-fashion-mnist if installed, else the embedded subset.
	Dir string `mapstructure:"dir"`
	// ImageSize is the input's height and width for image folders and Parquet: images are
	// scaled by their shorter side and centre-cropped; 0 takes the images' own (single) size.
	ImageSize int `mapstructure:"image_size"`
	// Channels forces 1 (grey) or 3 (RGB) input channels; 0 chooses from the data.
	Channels int `mapstructure:"channels"`
	// Mean and Std, if set (one value, or one per channel), replace the normalisation
	// measured on the training split.
	Mean []float32 `mapstructure:"mean"`
	Std  []float32 `mapstructure:"std"`
	// ValFraction of each class of an image-folder or Parquet training split is held out
	// for validation when the data has no validation split (0: 0.1), drawn with SplitSeed.
	ValFraction float64 `mapstructure:"val_fraction"`
	SplitSeed   uint64  `mapstructure:"split_seed"`
	// OrderByName orders image-folder examples by file name across classes (default: class
	// by class, as torchvision's ImageFolder).
	OrderByName bool `mapstructure:"order_by_name"`
	// SkipBad skips unreadable or corrupt images (listed in the report) instead of stopping.
	SkipBad bool `mapstructure:"skip_bad"`
	// Cache is the folder for decoded images, reused while the files are unchanged; empty
	// means the user's cache folder (ofa/images inside it), "off" decodes every time.
	Cache string `mapstructure:"cache"`
	// Embedded forces the embedded subset even if the Debian package is installed.
	Embedded bool `mapstructure:"embedded"`
	// ValSize examples at the end of the training split are held out for validation
	// (choosing subnets, keeping the best fine-tuned model); 0 means 1/12 of the split.
	ValSize int `mapstructure:"val_size"`
	// TrainLimit and TestLimit cut the splits to their first examples (0: all).
	TrainLimit int `mapstructure:"train_limit"`
	TestLimit  int `mapstructure:"test_limit"`
	// Augment is applied to training batches of images.
	Augment data.Augment `mapstructure:"augment"`
	// Task is "image" (Fashion-MNIST) or "speech" (spoken keywords).
	Task string `mapstructure:"task"`
	// Speech configures the speech task.
	Speech SpeechConfig `mapstructure:"speech"`
}

// SpeechConfig is the "data.speech" section: where spoken keywords come from and how they
// become spectrograms.
type SpeechConfig struct {
	// Dir holds a dataset in the layout of Google's Speech Commands; empty means the
	// embedded spoken-digit subset.
	Dir string `mapstructure:"dir"`
	// Classes restricts the labels (folders); empty means every folder.
	Classes  []string        `mapstructure:"classes"`
	Frontend speech.Frontend `mapstructure:"frontend"`
	Augment  speech.Augment  `mapstructure:"augment"`
}

// ModelConfig is the supernet's architecture and search space.
type ModelConfig struct {
	// PatchSize is the side of square patches; PatchHeight and PatchWidth, when set,
	// override it (speech: a patch spans every mel bin and a few frames). 0 (the default)
	// chooses, for each side of the data's input, its largest divisor that leaves at least
	// MinPatchesPerSide patches along it (AutoPatch: 28 -> 7, 32 -> 8). An explicit size
	// must divide the data's input, checked once the data is read, before any training.
	PatchSize   int `mapstructure:"patch_size"`
	PatchHeight int `mapstructure:"patch_height"`
	PatchWidth  int `mapstructure:"patch_width"`
	// Dim is the token width and HeadDim the width of one attention head.
	Dim     int `mapstructure:"dim"`
	HeadDim int `mapstructure:"head_dim"`
	// Heads, MLP and Depth are the supernet's largest sizes: heads and MLP neurons per
	// layer, and layers.
	Heads int `mapstructure:"heads"`
	MLP   int `mapstructure:"mlp"`
	Depth int `mapstructure:"depth"`
	// HeadChoices, MLPChoices and DepthChoices are the elastic sizes the sampler draws
	// during training (each list ends at the largest size).
	HeadChoices  []int `mapstructure:"head_choices"`
	MLPChoices   []int `mapstructure:"mlp_choices"`
	DepthChoices []int `mapstructure:"depth_choices"`
	// InitSeed seeds the weights' initialisation (the supernet's and the baselines'
	// trained from scratch).
	InitSeed uint64 `mapstructure:"init_seed"`
	// Init is the weights' initialisation: "trunc_normal" (timm's ViT) or "pytorch"
	// (nn.Linear's default); see supernet.InitOptions.
	Init string `mapstructure:"init"`
	// ZeroInitResidual starts each block's attn.proj and mlp.fc2 at zero.
	ZeroInitResidual bool `mapstructure:"zero_init_residual"`
}

// InitOptions is the initialisation the model section asks for.
func (m ModelConfig) InitOptions() supernet.InitOptions {
	return supernet.InitOptions{Scheme: m.Init, ZeroInitResidual: m.ZeroInitResidual}
}

// ExtractConfig is the "extract" section: the library's extraction settings plus how the
// sizes are chosen. Exactly one of ratios, thresholds, target or remote must be given
// when extracting (flags may give it).
type ExtractConfig struct {
	extract.Config `mapstructure:",squash"`
	Ratios         extract.Ratios     `mapstructure:"ratios"`
	Thresholds     extract.Thresholds `mapstructure:"thresholds"`
	Target         budget.Target      `mapstructure:"target"`
	Remote         budget.Source      `mapstructure:"remote"`
	// LatencyTable is a file written by `ofa latency-table`; needed for latency budgets
	// and reported latencies.
	LatencyTable string `mapstructure:"latency_table"`
	// Baselines also extracts the same sizes with plain leading slices and with random
	// units, and reports their accuracy.
	Baselines bool `mapstructure:"baselines"`
}

// RunConfig is the "run" section: the whole lifecycle from one configuration.
type RunConfig struct {
	// Supernet is an existing supernet checkpoint; empty trains one with the train section.
	Supernet string `mapstructure:"supernet"`
	// Budgets are targets, each "Nx" (N times fewer unique parameters than the supernet) or
	// any --target form ("macs=1e6", "latency_ms=0.5,params=40000").
	Budgets []string `mapstructure:"budgets"`
	// Expand adds the expanded model (layer reuse + transforms) for each budget.
	Expand bool `mapstructure:"expand"`
	// Scratch trains a model of the extracted size from random weights for the fine-tuning
	// steps only, as a baseline (labelled so: it had far less training than the others).
	Scratch bool `mapstructure:"scratch"`
	// ScratchEqualSteps trains a model of the extracted size from random weights for as
	// many steps as the pipeline spent on the extracted model (the supernet's steps plus
	// the fine-tuning steps), distilled from the supernet's largest subnet, with the
	// supernet's train section (learning-rate schedule, batch, distillation).
	ScratchEqualSteps bool `mapstructure:"scratch_equal_steps"`
	// DensePrune trains the dense model (the supernet's architecture, no elastic sampling)
	// once for the supernet run's training MACs, then per budget prunes it by Taylor
	// importance with the greedy selector and fine-tunes it like the extracted model,
	// distilled from the dense model.
	DensePrune bool `mapstructure:"dense_prune"`
	// Baselines measures plain-slice and random-unit extractions of the same sizes.
	Baselines bool `mapstructure:"baselines"`
	// Teacher is the fixed teacher every distilled model of the run learns from: the
	// supernet (all its subnets, the largest included), the fine-tunes and the baselines
	// trained from scratch or pruned. "" (the default) keeps in-place distillation from
	// the supernet's largest subnet; "dense" trains the dense model (the supernet's
	// architecture alone, for the supernet run's training MACs) first and uses it; any
	// other value is the path of a model file.
	Teacher string `mapstructure:"teacher"`
	// LatencyBatch and LatencyRepeats configure the latency table and measurements.
	LatencyBatch   int `mapstructure:"latency_batch"`
	LatencyRepeats int `mapstructure:"latency_repeats"`
}

// ReorderConfig is the "reorder" section: rewiring during supernet training. Every
// EveryEpochs epochs the supernet's heads and neurons are scored on calibration batches and
// permuted so the most important come first (Once-for-All and DynaBERT do this), so that
// the small subnets, which use leading slices, train on the important units. The function
// the supernet computes does not change; AdamW's moments are permuted with the weights.
type ReorderConfig struct {
	// EveryEpochs rewires the supernet every this many epochs (0: never).
	EveryEpochs int `mapstructure:"every_epochs"`
	// CalibrationBatches is how many training batches the scores are measured on.
	CalibrationBatches int `mapstructure:"calibration_batches"`
}

// DefaultFinetune is a short run at a lower rate, half labels and half distillation.
func DefaultFinetune() train.Config {
	c := train.Default()
	c.Epochs, c.LR, c.WarmupSteps, c.Alpha, c.Temperature, c.LabelSmoothing = 5, 5e-4, 100, 0.5, 2, 0
	return c
}

// Default is the configuration without file, environment or flags.
func Default() Config {
	a, sp := arch.Default(), arch.DefaultSpace()
	return Config{
		Data: DataConfig{Augment: data.Augment{CropPad: 2, HFlip: true}, Task: arch.TaskImage,
			Speech: SpeechConfig{Frontend: speech.DefaultFrontend(),
				Augment: speech.Augment{TimeShift: 10, FreqMasks: 1, FreqMaskWidth: 6, TimeMasks: 1, TimeMaskWidth: 10}}},
		Model: ModelConfig{Dim: a.Dim, HeadDim: a.HeadDim, Heads: a.Layers[0].Heads,
			MLP: a.Layers[0].MLP, Depth: len(a.Layers), HeadChoices: sp.HeadChoices, MLPChoices: sp.MLPChoices,
			DepthChoices: sp.DepthChoices, InitSeed: 1, Init: supernet.SchemePyTorch},
		Sampler:  sampler.DefaultConfig(),
		Train:    train.Default(),
		Extract:  ExtractConfig{Config: extract.DefaultConfig()},
		Expand:   expand.DefaultConfig(),
		Finetune: DefaultFinetune(),
		Run: RunConfig{Budgets: []string{"2x", "4x", "8x"}, Expand: true, Scratch: true, ScratchEqualSteps: true, DensePrune: true, Baselines: true,
			LatencyBatch: 1, LatencyRepeats: 20},
		Reorder: ReorderConfig{CalibrationBatches: 4},
		Out:     "runs/latest",
		Ops:     "fused",
	}
}

// Arch returns the supernet architecture and space the model section describes, for
// inputs of c x h x w and the given number of classes.
func (m ModelConfig) Arch(task string, c, h, w, classes int) (arch.Arch, arch.Space, error) {
	a := arch.Default()
	a.Task, a.InChannels, a.InHeight, a.InWidth, a.Classes = task, c, h, w, classes
	a.PatchHeight, a.PatchWidth = m.Patch(h, w)
	a.Dim, a.HeadDim = m.Dim, m.HeadDim
	a.Layers = arch.Uniform(m.Depth, arch.Layer{Heads: m.Heads, MLP: m.MLP})
	sp := arch.Space{HeadChoices: m.HeadChoices, MLPChoices: m.MLPChoices, DepthChoices: m.DepthChoices}
	switch {
	case m.Depth < 1:
		return a, sp, fmt.Errorf("%w: model.depth: got %d, want at least 1", ErrConfig, m.Depth)
	case m.PatchSize < 0 || m.PatchHeight < 0 || m.PatchWidth < 0:
		return a, sp, fmt.Errorf("%w: model.patch_size/patch_height/patch_width: got %d/%d/%d, want positive sizes (0: patch_size)",
			ErrConfig, m.PatchSize, m.PatchHeight, m.PatchWidth)
	case h%a.PatchHeight != 0 || w%a.PatchWidth != 0:
		return a, sp, fmt.Errorf("%w: %s: %dx%d patches do not divide the data's %dx%d inputs: choose sizes that divide them (e.g. %dx%d), or 0 to choose them",
			ErrConfig, m.patchKeys(), a.PatchHeight, a.PatchWidth, h, w, AutoPatch(h), AutoPatch(w))
	case m.HeadDim > 0 && m.Dim%m.HeadDim != 0:
		return a, sp, fmt.Errorf("%w: model.dim: got %d, want a multiple of model.head_dim %d", ErrConfig, m.Dim, m.HeadDim)
	}
	if err := a.Validate(); err != nil {
		return a, sp, fmt.Errorf("%w: model: %w", ErrConfig, err)
	}
	if err := sp.Validate(a); err != nil {
		return a, sp, fmt.Errorf("%w: model: %w", ErrConfig, err)
	}
	return a, sp, nil
}

// MinPatchesPerSide is the fewest patches along each side of the input that AutoPatch leaves.
const MinPatchesPerSide = 4

// AutoPatch is the patch side chosen for an input side of n: its largest divisor that
// leaves at least MinPatchesPerSide patches along it (28 -> 7, 32 -> 8, 40 -> 10; a prime
// side gets 1).
func AutoPatch(n int) int {
	for p := n / MinPatchesPerSide; p > 1; p-- {
		if n%p == 0 {
			return p
		}
	}
	return 1
}

// Patch is the patch height and width for inputs of h x w: the configured sizes, and
// AutoPatch for each side left at 0.
func (m ModelConfig) Patch(h, w int) (ph, pw int) {
	ph, pw = m.PatchSize, m.PatchSize
	if m.PatchHeight > 0 {
		ph = m.PatchHeight
	}
	if m.PatchWidth > 0 {
		pw = m.PatchWidth
	}
	if ph == 0 {
		ph = AutoPatch(h)
	}
	if pw == 0 {
		pw = AutoPatch(w)
	}
	return ph, pw
}

// patchKeys names the keys that set the patch, for errors.
func (m ModelConfig) patchKeys() string {
	switch {
	case m.PatchHeight > 0 || m.PatchWidth > 0:
		return fmt.Sprintf("model.patch_height/patch_width (%d/%d; patch_size %d)", m.PatchHeight, m.PatchWidth, m.PatchSize)
	}
	return fmt.Sprintf("model.patch_size %d", m.PatchSize)
}

// Validate checks every section; errors name the key.
func (c Config) Validate() error {
	switch c.Data.Task {
	case arch.TaskImage:
		// the image size is known once the data is read: check the model section on an
		// input its patches divide, and the patches against the data in Model.Arch
		ph, pw := c.Model.Patch(arch.Default().InHeight, arch.Default().InWidth)
		if _, _, err := c.Model.Arch(arch.TaskImage, 1, MinPatchesPerSide*ph, MinPatchesPerSide*pw, 10); err != nil {
			return err
		}
	case arch.TaskSpeech:
		fe := c.Data.Speech.Frontend
		if err := fe.Validate(); err != nil {
			return fmt.Errorf("%w: data.speech.frontend: %w", ErrConfig, err)
		}
		if _, _, err := c.Model.Arch(arch.TaskSpeech, 1, fe.Mels, fe.Frames, 2); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: data.task: got %q, want image or speech", ErrConfig, c.Data.Task)
	}
	if m := c.Model.Init; m != supernet.SchemeTruncNormal && m != supernet.SchemePyTorch {
		return fmt.Errorf("%w: model.init: got %q, want %q or %q", ErrConfig, m, supernet.SchemeTruncNormal, supernet.SchemePyTorch)
	}
	if err := c.Sampler.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.Sampler.BudgetOnly && c.Run.Teacher == "" {
		return fmt.Errorf("%w: sampler.budget_only trains no largest subnet to distil from: set run.teacher (dense, or a teacher's model file)", ErrConfig)
	}
	if err := c.Train.Validate("train"); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.Finetune.Validate("finetune"); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	d := c.Data
	switch {
	case d.ValSize < 0:
		return fmt.Errorf("%w: data.val_size: got %d, want >= 0", ErrConfig, d.ValSize)
	case d.TrainLimit < 0:
		return fmt.Errorf("%w: data.train_limit: got %d, want >= 0", ErrConfig, d.TrainLimit)
	case d.TestLimit < 0:
		return fmt.Errorf("%w: data.test_limit: got %d, want >= 0", ErrConfig, d.TestLimit)
	case d.Augment.CropPad < 0 || d.Augment.CropPad > 16:
		return fmt.Errorf("%w: data.augment.crop_pad: got %d, want 0..16", ErrConfig, d.Augment.CropPad)
	case d.ImageSize < 0 || d.ImageSize > 4096:
		return fmt.Errorf("%w: data.image_size: got %d, want 0 (the images' size) to 4096", ErrConfig, d.ImageSize)
	case d.Channels != 0 && d.Channels != 1 && d.Channels != 3:
		return fmt.Errorf("%w: data.channels: got %d, want 0 (from the data), 1 or 3", ErrConfig, d.Channels)
	case len(d.Mean) != len(d.Std):
		return fmt.Errorf("%w: data.mean has %d values, data.std %d: give both, with as many values", ErrConfig, len(d.Mean), len(d.Std))
	case !(d.ValFraction >= 0 && d.ValFraction < 1):
		return fmt.Errorf("%w: data.val_fraction: got %v, want 0 (default 0.1) to below 1", ErrConfig, d.ValFraction)
	}
	for i := range d.Std {
		if !(d.Std[i] > 0) || math.IsInf(float64(d.Std[i]), 0) || math.IsNaN(float64(d.Mean[i])) || math.IsInf(float64(d.Mean[i]), 0) {
			return fmt.Errorf("%w: data.mean/data.std value %d: %v, %v: want finite numbers and std > 0", ErrConfig, i, d.Mean[i], d.Std[i])
		}
	}
	if err := c.Expand.Validate(c.Model.Dim); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.Reorder.EveryEpochs < 0 {
		return fmt.Errorf("%w: reorder.every_epochs: got %d, want >= 0", ErrConfig, c.Reorder.EveryEpochs)
	}
	if c.Reorder.CalibrationBatches < 1 {
		return fmt.Errorf("%w: reorder.calibration_batches: got %d, want >= 1", ErrConfig, c.Reorder.CalibrationBatches)
	}
	if err := c.Extract.Config.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if t := c.Extract.Target; t != (budget.Target{}) { // the zero target means "not given"
		if err := t.ValidateAt("extract.target"); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if err := c.Extract.Remote.ValidateAt("extract.remote"); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.Run.Validate(); err != nil {
		return err
	}
	if c.Ops != "fused" && c.Ops != "composed" {
		return fmt.Errorf("%w: ops: got %q, want \"fused\" or \"composed\"", ErrConfig, c.Ops)
	}
	if c.Out == "" {
		return fmt.Errorf("%w: out: an output directory is required", ErrConfig)
	}
	return nil
}

// Validate checks the run section, budgets included, so that a lifecycle refuses a bad
// value before it trains anything.
func (r RunConfig) Validate() error {
	if _, err := r.Targets(); err != nil {
		return err
	}
	if r.Teacher != "" && r.Teacher != TeacherDense && strings.TrimSpace(r.Teacher) != r.Teacher {
		return fmt.Errorf("%w: run.teacher: got %q, want \"\", %q or a model file path without surrounding spaces", ErrConfig, r.Teacher, TeacherDense)
	}
	switch {
	case r.LatencyBatch < 1 || r.LatencyBatch > 4096:
		return fmt.Errorf("%w: run.latency_batch: got %d, want 1..4096", ErrConfig, r.LatencyBatch)
	case r.LatencyRepeats < 3 || r.LatencyRepeats > 10000:
		return fmt.Errorf("%w: run.latency_repeats: got %d, want 3..10000 (a median needs a few runs)", ErrConfig, r.LatencyRepeats)
	}
	return nil
}

// Targets parses the budgets, refusing duplicates.
func (r RunConfig) Targets() ([]budget.Target, error) {
	var out []budget.Target
	seen := map[string]bool{}
	for i, b := range r.Budgets {
		t, err := budget.ParseFlag(b)
		if err != nil {
			return nil, fmt.Errorf("%w: run.budgets[%d] %q: %w", ErrConfig, i, b, err)
		}
		if seen[t.String()] {
			return nil, fmt.Errorf("%w: run.budgets[%d] %q repeats an earlier budget", ErrConfig, i, b)
		}
		seen[t.String()] = true
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: run.budgets is empty", ErrConfig)
	}
	return out, nil
}

// Selection builds the extraction's selection from the section (remote targets are
// fetched by the caller: see budget.Fetch), normalising one-sided ratio and threshold
// lists (MLP defaults to heads and the other way round).
func (e ExtractConfig) Selection() (extract.Selection, error) {
	var sel extract.Selection
	n := 0
	if len(e.Ratios.Heads) > 0 || len(e.Ratios.MLP) > 0 {
		r := e.Ratios
		if len(r.MLP) == 0 {
			r.MLP = r.Heads
		}
		if len(r.Heads) == 0 {
			r.Heads = r.MLP
		}
		sel.Ratios, n = &r, n+1
	}
	if len(e.Thresholds.Heads) > 0 || len(e.Thresholds.MLP) > 0 {
		t := e.Thresholds
		if len(t.MLP) == 0 {
			t.MLP = t.Heads
		}
		if len(t.Heads) == 0 {
			t.Heads = t.MLP
		}
		sel.Thresholds, n = &t, n+1
	}
	if e.Target != (budget.Target{}) {
		t := e.Target
		sel.Target, sel.TargetFrom, n = &t, "local configuration", n+1
	}
	if e.Remote.URL != "" || len(e.Remote.EtcdEndpoints) > 0 {
		n++
	}
	if n != 1 {
		return sel, fmt.Errorf("%w: give exactly one of extract.ratios, extract.thresholds, extract.target or extract.remote (got %d)", ErrConfig, n)
	}
	return sel, nil
}

// HasRemote says whether the budget comes from a configuration server.
func (e ExtractConfig) HasRemote() bool { return e.Remote.URL != "" || len(e.Remote.EtcdEndpoints) > 0 }
