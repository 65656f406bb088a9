package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/data/speech"
	"github.com/ofa-go/ofa/sampler"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// errConfig is wrapped by every configuration error.
var errConfig = errors.New("configuration")

// Config is the whole configuration of the tool. viper fills it from, in increasing
// precedence: these defaults, a YAML file (--config), environment variables (OFA_ plus the
// upper-cased key with dots as underscores, e.g. OFA_TRAIN_LR) and command-line flags.
type Config struct {
	Data    DataConfig     `mapstructure:"data"`
	Model   ModelConfig    `mapstructure:"model"`
	Sampler sampler.Config `mapstructure:"sampler"`
	Train   train.Config   `mapstructure:"train"`
	Extract ExtractConfig  `mapstructure:"extract"`
	Expand  ExpandConfig   `mapstructure:"expand"`
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
	// Dir holds the four Fashion-MNIST IDX files; empty means the Debian package
	// dataset-fashion-mnist if installed, else the embedded subset.
	Dir string `mapstructure:"dir"`
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

// ModelConfig is the supernet's architecture and search space.
type ModelConfig struct {
	// PatchSize is the side of square patches; PatchHeight and PatchWidth, when set,
	// override it (speech: a patch spans every mel bin and a few frames).
	PatchSize    int    `mapstructure:"patch_size"`
	PatchHeight  int    `mapstructure:"patch_height"`
	PatchWidth   int    `mapstructure:"patch_width"`
	Dim          int    `mapstructure:"dim"`
	HeadDim      int    `mapstructure:"head_dim"`
	Heads        int    `mapstructure:"heads"`
	MLP          int    `mapstructure:"mlp"`
	Depth        int    `mapstructure:"depth"`
	HeadChoices  []int  `mapstructure:"head_choices"`
	MLPChoices   []int  `mapstructure:"mlp_choices"`
	DepthChoices []int  `mapstructure:"depth_choices"`
	InitSeed     uint64 `mapstructure:"init_seed"`
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

// DefaultConfig is the configuration without file, environment or flags.
func DefaultConfig() Config {
	a, sp := arch.Default(), arch.DefaultSpace()
	tc := train.Default()
	return Config{
		Data: DataConfig{Augment: data.Augment{CropPad: 2, HFlip: true}, Task: arch.TaskImage,
			Speech: SpeechConfig{Frontend: speech.DefaultFrontend(),
				Augment: speech.Augment{TimeShift: 10, FreqMasks: 1, FreqMaskWidth: 6, TimeMasks: 1, TimeMaskWidth: 10}}},
		Model: ModelConfig{PatchSize: a.PatchHeight, Dim: a.Dim, HeadDim: a.HeadDim, Heads: a.Layers[0].Heads,
			MLP: a.Layers[0].MLP, Depth: len(a.Layers), HeadChoices: sp.HeadChoices, MLPChoices: sp.MLPChoices,
			DepthChoices: sp.DepthChoices, InitSeed: 1, Init: supernet.SchemePyTorch},
		Sampler:  sampler.DefaultConfig(),
		Train:    tc,
		Extract:  defaultExtractConfig(),
		Expand:   defaultExpandConfig(),
		Finetune: defaultFinetuneConfig(),
		Run:      defaultRunConfig(),
		Reorder:  ReorderConfig{CalibrationBatches: 4},
		Out:      "runs/latest",
		Ops:      "fused",
	}
}

// Arch returns the supernet architecture and space the model section describes, for
// inputs of c x h x w and the given number of classes.
func (m ModelConfig) Arch(task string, c, h, w, classes int) (arch.Arch, arch.Space, error) {
	a := arch.Default()
	a.Task, a.InChannels, a.InHeight, a.InWidth, a.Classes = task, c, h, w, classes
	a.PatchHeight, a.PatchWidth = m.PatchSize, m.PatchSize
	if m.PatchHeight > 0 {
		a.PatchHeight = m.PatchHeight
	}
	if m.PatchWidth > 0 {
		a.PatchWidth = m.PatchWidth
	}
	a.Dim, a.HeadDim = m.Dim, m.HeadDim
	a.Layers = arch.Uniform(m.Depth, arch.Layer{Heads: m.Heads, MLP: m.MLP})
	sp := arch.Space{HeadChoices: m.HeadChoices, MLPChoices: m.MLPChoices, DepthChoices: m.DepthChoices}
	if m.Depth < 1 {
		return a, sp, fmt.Errorf("%w: model.depth: got %d, want at least 1", errConfig, m.Depth)
	}
	if err := a.Validate(); err != nil {
		return a, sp, fmt.Errorf("%w: model: %w", errConfig, err)
	}
	if err := sp.Validate(a); err != nil {
		return a, sp, fmt.Errorf("%w: model: %w", errConfig, err)
	}
	return a, sp, nil
}

// Validate checks every section; errors name the key.
func (c Config) Validate() error {
	switch c.Data.Task {
	case arch.TaskImage:
		if _, _, err := c.Model.Arch(arch.TaskImage, 1, 28, 28, 10); err != nil {
			return err
		}
	case arch.TaskSpeech:
		fe := c.Data.Speech.Frontend
		if err := fe.Validate(); err != nil {
			return fmt.Errorf("%w: data.speech.frontend: %w", errConfig, err)
		}
		if _, _, err := c.Model.Arch(arch.TaskSpeech, 1, fe.Mels, fe.Frames, 2); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: data.task: got %q, want image or speech", errConfig, c.Data.Task)
	}
	if m := c.Model.Init; m != supernet.SchemeTruncNormal && m != supernet.SchemePyTorch {
		return fmt.Errorf("%w: model.init: got %q, want %q or %q", errConfig, m, supernet.SchemeTruncNormal, supernet.SchemePyTorch)
	}
	if err := c.Sampler.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errConfig, err)
	}
	if err := c.Train.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errConfig, err)
	}
	d := c.Data
	switch {
	case d.ValSize < 0:
		return fmt.Errorf("%w: data.val_size: got %d, want >= 0", errConfig, d.ValSize)
	case d.TrainLimit < 0:
		return fmt.Errorf("%w: data.train_limit: got %d, want >= 0", errConfig, d.TrainLimit)
	case d.TestLimit < 0:
		return fmt.Errorf("%w: data.test_limit: got %d, want >= 0", errConfig, d.TestLimit)
	case d.Augment.CropPad < 0 || d.Augment.CropPad > 16:
		return fmt.Errorf("%w: data.augment.crop_pad: got %d, want 0..16", errConfig, d.Augment.CropPad)
	}
	if err := c.Finetune.Validate(); err != nil {
		return fmt.Errorf("%w: %s", errConfig, strings.Replace(err.Error(), "train.", "finetune.", 1))
	}
	if err := c.Expand.Transforms.Validate(c.Model.Dim); err != nil {
		return fmt.Errorf("%w: %w", errConfig, err)
	}
	if c.Reorder.EveryEpochs < 0 || c.Reorder.CalibrationBatches < 1 {
		return fmt.Errorf("%w: reorder: every_epochs %d and calibration_batches %d, want >= 0 and >= 1",
			errConfig, c.Reorder.EveryEpochs, c.Reorder.CalibrationBatches)
	}
	if err := c.Extract.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errConfig, err)
	}
	if c.Ops != "fused" && c.Ops != "composed" {
		return fmt.Errorf("%w: ops: got %q, want \"fused\" or \"composed\"", errConfig, c.Ops)
	}
	if c.Out == "" {
		return fmt.Errorf("%w: out: an output directory is required", errConfig)
	}
	return nil
}

// leafKeys lists the configuration keys of a struct type (dotted mapstructure names);
// slices are leaves.
func leafKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		ft := f.Type
		if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Duration(0)) {
			keys = append(keys, leafKeys(ft, key+".")...)
		} else {
			keys = append(keys, key)
		}
	}
	return keys
}

// leafValues maps each leaf key of v to its value (for viper defaults).
func leafValues(v reflect.Value, prefix string, out map[string]any) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		switch {
		case f.Type.Kind() == reflect.Pointer:
			// optional sections have no default
		case f.Type.Kind() == reflect.Struct:
			leafValues(v.Field(i), prefix+tag+".", out)
		default:
			out[prefix+tag] = v.Field(i).Interface()
		}
	}
}

// loader builds a Config from defaults, an optional YAML file, OFA_ environment variables
// and flags (bound by key).
type loader struct {
	file  string
	flags map[string]*pflag.Flag // config key -> flag
}

func (l loader) load() (Config, error) {
	v := viper.New()
	def := DefaultConfig()
	known := map[string]bool{}
	for _, k := range leafKeys(reflect.TypeOf(def), "") {
		known[k] = true
	}
	defaults := map[string]any{}
	leafValues(reflect.ValueOf(def), "", defaults)
	for k, val := range defaults {
		v.SetDefault(k, val)
	}
	v.SetEnvPrefix("OFA")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if err := checkEnv(known); err != nil {
		return def, err
	}
	if l.file != "" {
		v.SetConfigFile(l.file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return def, fmt.Errorf("%w: %s: %v", errConfig, l.file, err)
		}
		var unknown []string
		for _, k := range v.AllKeys() {
			if !known[k] {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return def, fmt.Errorf("%w: %s: unknown key %q%s", errConfig, l.file, unknown[0], suggest(unknown[0], known))
		}
	}
	for key, f := range l.flags {
		if !known[key] {
			panic("ofa: flag bound to unknown key " + key)
		}
		if err := v.BindPFlag(key, f); err != nil {
			return def, err
		}
	}
	var c Config
	if err := v.UnmarshalExact(&c); err != nil {
		where := "configuration"
		if l.file != "" {
			where = l.file
		}
		return def, fmt.Errorf("%w: %s: %v", errConfig, where, err)
	}
	return c, c.Validate()
}

// checkEnv rejects OFA_ variables that name no key, so a typo is not silently ignored.
func checkEnv(known map[string]bool) error {
	names := map[string]bool{}
	for k := range known {
		names["OFA_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = true
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "OFA_") && !names[name] {
			return fmt.Errorf("%w: environment variable %s names no configuration key", errConfig, name)
		}
	}
	return nil
}

// suggest proposes the closest known key for a typo.
func suggest(key string, known map[string]bool) string {
	best, bestD := "", 4
	for k := range known {
		if d := editDistance(key, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
