package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/train"
	"github.com/spf13/cobra"
)

func (a *app) evalCmd() *cobra.Command {
	var modelPath, subnetArg, splitName string
	var batch int
	fk := flagKeys{}
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Measure the test accuracy of a model or of any subnet of a supernet",
		Example: `  ofa eval --model runs/fmnist/supernet.safetensors --subnet smallest
  ofa eval --model runs/fmnist/supernet.safetensors --subnet '{"layers":[{"layer":0,"heads":2,"mlp":128},{"layer":1,"heads":4,"mlp":64}]}'
  ofa eval --model runs/fmnist/supernet.safetensors --subnet subnet.json --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loader{file: a.configFile, flags: changed(fk)}.load()
			if err != nil {
				return err
			}
			if modelPath == "" {
				return fmt.Errorf("%w: --model is required", errUsage)
			}
			m, err := checkpoint.LoadModel(modelPath)
			if err != nil {
				return err
			}
			named, err := parseSubnets(subnetArg, m)
			if err != nil {
				return err
			}
			sp, err := loadSplits(cfg.Data)
			if err != nil {
				return err
			}
			if err := sp.checkModel(modelPath, m); err != nil {
				return err
			}
			set := sp.test
			switch splitName {
			case "test":
			case "val":
				set = sp.val
			default:
				return fmt.Errorf("%w: --split %q, want test or val", errUsage, splitName)
			}
			a.say("data: %s; evaluating on %d %s examples", sp.source, set.N(), splitName)
			el, err := sp.evalLoader(set, batch, m.Preprocess)
			if err != nil {
				return err
			}
			res, err := train.Evaluate(m.Arch, m.Params, ops(cfg.Ops), el, batch, named)
			if err != nil {
				return err
			}
			for _, r := range res {
				a.say("%-10s %-44s accuracy %6.2f%%  loss %.4f  params %d  MACs %d", r.Name, r.Key, 100*r.Accuracy, r.Loss, r.Params, r.MACs)
			}
			a.emit(map[string]any{"command": "eval", "model": modelPath, "split": splitName, "data": sp.source, "results": res})
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&modelPath, "model", "", "model checkpoint (.safetensors)")
	fs.StringVar(&subnetArg, "subnet", "largest", "largest, smallest, middle, all, a JSON subnet, or a file holding one")
	fs.StringVar(&splitName, "split", "test", "test, or val (the held-out end of the training split)")
	fs.IntVar(&batch, "batch", 250, "evaluation batch size")
	fs.String("data", "", "directory with the Fashion-MNIST IDX files (data.dir)")
	fs.Bool("embedded", false, "use the embedded subset (data.embedded)")
	fs.String("ops", "", "fused or composed (ops)")
	fk.add(fs, "data", "data.dir")
	fk.add(fs, "embedded", "data.embedded")
	fk.add(fs, "ops", "ops")
	return cmd
}

// parseSubnets turns --subnet into named subnets of model m.
func parseSubnets(arg string, m *checkpoint.Model) ([]train.Named, error) {
	need := func(name string) error {
		if m.Space == nil {
			return fmt.Errorf("%w: --subnet %s needs a supernet; this model (%s) runs only as a whole: use largest", errUsage, name, m.Kind)
		}
		return nil
	}
	switch arg {
	case "largest":
		return []train.Named{{Name: "largest", Subnet: arch.Largest(m.Arch)}}, nil
	case "smallest", "middle", "all":
		if err := need(arg); err != nil {
			return nil, err
		}
		sm, md := train.Named{Name: "smallest", Subnet: m.Space.Smallest()}, train.Named{Name: "middle", Subnet: m.Space.Middle()}
		switch arg {
		case "smallest":
			return []train.Named{sm}, nil
		case "middle":
			return []train.Named{md}, nil
		}
		return []train.Named{{Name: "largest", Subnet: arch.Largest(m.Arch)}, md, sm}, nil
	}
	raw := []byte(arg)
	name := "custom"
	if !strings.HasPrefix(strings.TrimSpace(arg), "{") {
		b, err := os.ReadFile(arg)
		if err != nil {
			return nil, fmt.Errorf("%w: --subnet: %v", errUsage, err)
		}
		raw, name = b, arg
	}
	s, err := arch.ParseSubnet(raw, m.Arch)
	if err != nil {
		return nil, fmt.Errorf("--subnet %s: %w", name, err)
	}
	return []train.Named{{Name: "custom", Subnet: s}}, nil
}
