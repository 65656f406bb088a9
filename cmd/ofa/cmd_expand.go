package main

import (
	"fmt"
	"path/filepath"

	"github.com/ofa-go/ofa/expand"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/pipeline"
	"github.com/spf13/cobra"
)

func (a *app) expandCmd() *cobra.Command {
	var modelPath, out, transforms string
	var force bool
	fk := flagKeys{}
	cmd := &cobra.Command{
		Use:   "expand",
		Short: "Turn an extracted model's N layers into M > N positions that reuse them, with per-position transforms",
		Example: `  ofa expand --config configs/demo.yaml --model runs/demo-x4/model.safetensors --plan repeat:2 --out runs/demo-x4e
  ofa expand --model M --plan 0,0,1,1,2 --transforms lowrank:8,headmix --out E`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" || out == "" {
				return fmt.Errorf("%w: --model and --out are required", errUsage)
			}
			m, cfg, origin, err := a.modelConfig(modelPath, fk)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("transforms") {
				if cfg.Expand.Transforms, err = expand.ParseTransforms(transforms); err != nil {
					return fmt.Errorf("%w: --%w", errUsage, err)
				}
			}
			release, err := a.claimModelDir(out, force)
			if err != nil {
				return err
			}
			defer release()
			ds, err := a.modelData(cfg, modelPath, m, origin)
			if err != nil {
				return err
			}
			verify, err := pipeline.VerifyBatch(ds, m.Preprocess)
			if err != nil {
				return err
			}
			em, err := pipeline.Expand(m, cfg.Expand, verify)
			if err != nil {
				return err
			}
			if err := pipeline.SaveModelDir(out, em, nil); err != nil {
				return err
			}
			path := filepath.Join(out, pipeline.FileModel)
			before, after := m.Arch.ModelCost(), em.Arch.ModelCost()
			a.say("expanded %s: %d layers -> %d positions (plan %s); unique params %d -> %d, MACs %d -> %d; identical outputs verified",
				path, len(m.Arch.Layers), len(em.Arch.Positions), em.Extra[modelfile.KeyPlan], before.Params, after.Params, before.MACs, after.MACs)
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
	fs.String("plan", "", "repeat:k, cycle:k or a list like 0,0,1,1,2")
	fs.String("data", "", "directory with the Fashion-MNIST IDX files")
	fs.Bool("embedded", false, "use the embedded subset")
	for flag, key := range map[string]string{"plan": "expand.plan", "data": "data.dir", "embedded": "data.embedded"} {
		fk.add(fs, flag, key)
	}
	return cmd
}
