package main

import (
	"fmt"
	"strings"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/pipeline"
	"github.com/ofa-go/ofa/train"
	"github.com/spf13/cobra"
)

// maxSubnetBytes bounds a --subnet file, checked before it is read.
const maxSubnetBytes = 1 << 20

func (a *app) evalCmd() *cobra.Command {
	var modelPath, subnetArg, splitName string
	var batch int
	fk := flagKeys{}
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Measure the test accuracy of a model or of any subnet of a supernet",
		Example: `  ofa eval --config configs/demo.yaml --model runs/demo/supernet/supernet.safetensors --subnet all
  ofa eval --config configs/demo.yaml --model runs/demo/supernet/supernet.safetensors --subnet '{"layers":[{"layer":0,"heads":2,"mlp":128},{"layer":1,"heads":4,"mlp":64}]}'
  ofa eval --config configs/demo.yaml --model runs/demo/budgets/4x/finetuned/model.safetensors --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" {
				return fmt.Errorf("%w: --model is required", errUsage)
			}
			if batch < 1 {
				return fmt.Errorf("%w: --batch: got %d, want >= 1", errUsage, batch)
			}
			m, cfg, origin, err := a.modelConfig(modelPath, fk)
			if err != nil {
				return err
			}
			if err := train.CheckEvalBatch(m.Arch, batch, "--batch"); err != nil {
				return fmt.Errorf("%w: %w", errUsage, err)
			}
			named, err := parseSubnets(subnetArg, m)
			if err != nil {
				return err
			}
			ds, err := a.modelData(cfg, modelPath, m, origin)
			if err != nil {
				return err
			}
			if err := ds.CheckModel(modelPath, m); err != nil {
				return err
			}
			set := ds.Test
			switch splitName {
			case "test":
			case "val":
				set = ds.Val
			default:
				return fmt.Errorf("%w: --split %q, want test or val", errUsage, splitName)
			}
			a.say("evaluating on %d %s examples", set.N(), splitName)
			res, err := pipeline.Evaluate(m.Arch, m.Params, pipeline.Ops(cfg.Ops), set, batch, m.Preprocess, named)
			if err != nil {
				return err
			}
			for _, r := range res {
				a.say("%-10s %-44s accuracy %6.2f%%  loss %.4f  params %d  MACs %d", r.Name, r.Key, 100*r.Accuracy, r.Loss, r.Params, r.MACs)
			}
			a.emit(map[string]any{"command": "eval", "model": modelPath, "split": splitName, "data": ds.Source, "data_record": ds.Record(),
				"same_data": m.Data.Same(ds.Record()), "results": res})
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&modelPath, "model", "", "model checkpoint (.safetensors)")
	fs.StringVar(&subnetArg, "subnet", "largest", "largest, smallest, middle, all, a JSON subnet, or a file holding one")
	fs.StringVar(&splitName, "split", "test", "test, or val (the held-out end of the training split)")
	fs.IntVar(&batch, "batch", 250, "evaluation batch size (capped at the split's size)")
	fs.String("data", "", "directory with the Fashion-MNIST IDX files")
	fs.Bool("embedded", false, "use the embedded subset")
	fs.String("ops", "", "fused or composed")
	fk.add(fs, "data", "data.dir")
	fk.add(fs, "embedded", "data.embedded")
	fk.add(fs, "ops", "ops")
	return cmd
}

// parseSubnets turns --subnet into named subnets of model m: a name, "all", JSON, or a
// file holding JSON. A model that is not a supernet has one row, labelled "model".
func parseSubnets(arg string, m *modelfile.Model) ([]train.Named, error) {
	names := []string{arg}
	switch {
	case arg == "all" && m.Kind == modelfile.KindSupernet:
		names = arch.SubnetNames
	case arg == "all":
		names = []string{"largest"} // the only subnet of a model that is not a supernet
	}
	var out []train.Named
	for _, name := range names {
		label, spec := name, name
		if m.Kind != modelfile.KindSupernet {
			label = "model" // a model that is not a supernet runs only as a whole
		}
		switch {
		case strings.HasPrefix(strings.TrimSpace(name), "{"):
			label = "custom"
		case name != "largest" && name != "middle" && name != "smallest":
			b, err := data.ReadFileLimited(name, maxSubnetBytes)
			if err != nil {
				return nil, fmt.Errorf("%w: --subnet: %v", errUsage, err)
			}
			label, spec = "custom", string(b)
		}
		s, err := arch.NamedSubnet(spec, m.Arch, m.Space)
		if err != nil {
			return nil, fmt.Errorf("%w: --subnet %s: %w", errUsage, name, err)
		}
		out = append(out, train.Named{Name: label, Subnet: s})
	}
	return out, nil
}
