package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/expand"
	"github.com/ofa-go/ofa/extract"
	"github.com/spf13/cobra"
)

// ExpandConfig is the "expand" section.
type ExpandConfig struct {
	// Plan is "repeat:k", "cycle:k" or an explicit list of layer indices, one per position.
	Plan       string            `mapstructure:"plan"`
	Transforms expand.Transforms `mapstructure:"transforms"`
}

func defaultExpandConfig() ExpandConfig {
	return ExpandConfig{Plan: "repeat:2", Transforms: expand.Transforms{LowRank: 4, HeadMix: true}}
}

// parseTransforms reads "lowrank:8,headmix,all" (affine maps are always on reused positions).
func parseTransforms(s string) (expand.Transforms, error) {
	var t expand.Transforms
	if strings.TrimSpace(s) == "" || s == "affine" {
		return t, nil
	}
	for _, f := range strings.Split(s, ",") {
		name, arg, _ := strings.Cut(strings.TrimSpace(f), ":")
		switch name {
		case "affine":
		case "lowrank", "low_rank":
			r, err := strconv.Atoi(arg)
			if err != nil || r < 1 {
				return t, fmt.Errorf("%w: --transforms: %q needs a rank, e.g. lowrank:8", errUsage, f)
			}
			t.LowRank = r
		case "headmix", "head_mix":
			t.HeadMix = true
		case "all":
			t.All = true
		default:
			return t, fmt.Errorf("%w: --transforms: unknown transform %q (want affine, lowrank:R, headmix, all)", errUsage, name)
		}
	}
	return t, nil
}

func (a *app) expandCmd() *cobra.Command {
	var modelPath, out, transforms string
	var force bool
	fk := flagKeys{}
	cmd := &cobra.Command{
		Use:   "expand",
		Short: "Turn an extracted model's N layers into M > N positions that reuse them, with per-position transforms",
		Example: `  ofa expand --model runs/fmnist/x4/model.safetensors --plan repeat:2 --out runs/fmnist/x4-expanded
  ofa expand --model M --plan 0,0,1,1,2 --transforms lowrank:8,headmix --out E`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loader{file: a.configFile, flags: changed(fk)}.load()
			if err != nil {
				return err
			}
			if modelPath == "" || out == "" {
				return fmt.Errorf("%w: --model and --out are required", errUsage)
			}
			if cmd.Flags().Changed("transforms") {
				if cfg.Expand.Transforms, err = parseTransforms(transforms); err != nil {
					return err
				}
			}
			if err := refuseExistingModel(out, force); err != nil {
				return err
			}
			m, err := checkpoint.LoadModel(modelPath)
			if err != nil {
				return err
			}
			sp, err := loadSplits(cfg.Data)
			if err != nil {
				return err
			}
			em, err := expandModel(m, cfg.Expand, sp)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			path := filepath.Join(out, fileModel)
			if err := checkpoint.SaveModel(path, em); err != nil {
				return err
			}
			before, after := m.Arch.ModelCost(), em.Arch.ModelCost()
			a.say("expanded %s: %d layers -> %d positions (plan %s); unique params %d -> %d, MACs %d -> %d; identical outputs verified",
				path, len(m.Arch.Layers), len(em.Arch.Positions), em.Extra["plan"], before.Params, after.Params, before.MACs, after.MACs)
			a.emit(map[string]any{"command": "expand", "model": path, "positions": em.Arch.Positions,
				"unique_params": after.Params, "macs": after.MACs, "before": before})
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&modelPath, "model", "", "extracted (or any non-expanded) model")
	fs.StringVar(&out, "out", "", "output directory")
	fs.BoolVar(&force, "force", false, "replace an existing model in --out")
	fs.StringVar(&transforms, "transforms", "", "comma list: affine (always on reused positions), lowrank:R, headmix, all")
	fs.String("plan", "", "repeat:k, cycle:k or a list like 0,0,1,1,2 (expand.plan)")
	fs.String("data", "", "directory with the Fashion-MNIST IDX files (data.dir)")
	fs.Bool("embedded", false, "use the embedded subset (data.embedded)")
	for flag, key := range map[string]string{"plan": "expand.plan", "data": "data.dir", "embedded": "data.embedded"} {
		fk.add(fs, flag, key)
	}
	return cmd
}

// expandModel expands m and checks on a batch of validation data that the expanded model
// computes exactly what m computes.
func expandModel(m *checkpoint.Model, c ExpandConfig, sp *splits) (*checkpoint.Model, error) {
	plan, err := expand.ParsePlan(c.Plan, len(m.Arch.Layers))
	if err != nil {
		return nil, err
	}
	ea, ep, err := expand.Expand(m.Arch, m.Params, plan, c.Transforms)
	if err != nil {
		return nil, err
	}
	l, err := sp.evalLoader(sp.val, 50, m.Preprocess)
	if err != nil {
		return nil, err
	}
	var b data.Batch
	l.Batch(0, 0, &b)
	if _, err := extract.Verify(m.Arch, m.Params, arch.Largest(m.Arch), ea, ep, b); err != nil {
		return nil, fmt.Errorf("expand: the expanded model does not reproduce the original: %w", err)
	}
	tj, _ := json.Marshal(c.Transforms)
	extra := map[string]string{"plan": plan.String(), "transforms": string(tj)}
	for k, v := range m.Extra {
		extra[k] = v
	}
	return &checkpoint.Model{Kind: checkpoint.KindExpanded, Arch: ea, Params: ep, Preprocess: m.Preprocess, Extra: extra}, nil
}
