package main

import (
	"fmt"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/export/onnx"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/spf13/cobra"
)

func (a *app) exportCmd() *cobra.Command {
	var modelPath, format, out, subnetArg string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a model (a supernet's subnet, or a whole extracted, expanded or fine-tuned model) as an ONNX file",
		Example: `  ofa export --model runs/demo/budgets/4x/finetuned/model.safetensors --out runs/demo/4x.onnx
  ofa export --model runs/demo/supernet/supernet.safetensors --subnet smallest --out runs/demo/smallest.onnx --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" || out == "" {
				return fmt.Errorf("%w: --model and --out are required", errUsage)
			}
			if format != "onnx" {
				return fmt.Errorf("%w: --format %q: want onnx (model files are already safetensors)", errUsage, format)
			}
			m, s, err := modelSubnet(modelPath, subnetArg)
			if err != nil {
				return err
			}
			b, err := onnx.ExportModel(m, s, "")
			if err != nil {
				return err
			}
			if err := onnx.WriteFile(out, b); err != nil {
				return err
			}
			ar := m.Arch
			what := "the whole model"
			res := map[string]any{"command": "export", "model": modelPath, "kind": m.Kind, "format": format, "out": out,
				"bytes": len(b), "opset": onnx.Opset, "input": []int{ar.InChannels, ar.InHeight, ar.InWidth},
				"classes": ar.Classes, "preprocess": m.Preprocess}
			if m.Kind == modelfile.KindSupernet {
				what, res["subnet"] = "subnet "+s.Key(), s
			}
			a.say("exported %s (%s, %s) to %s: ONNX opset %d, input %q (batch, %d, %d, %d) normalised, output %q (batch, %d); %d bytes",
				modelPath, m.Kind, what, out, onnx.Opset, onnx.InputName, ar.InChannels, ar.InHeight, ar.InWidth, onnx.OutputName, ar.Classes, len(b))
			a.emit(res)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&modelPath, "model", "", "model checkpoint (.safetensors) of any kind")
	fs.StringVar(&format, "format", "onnx", "output format: onnx")
	fs.StringVar(&out, "out", "", "output file (written atomically)")
	fs.StringVar(&subnetArg, "subnet", "largest", "supernets: largest, middle, smallest, a JSON subnet or a file holding one; other kinds export whole")
	return cmd
}

// oneSubnet is --subnet for commands that run one subnet: what parseSubnets accepts but
// "all".
func oneSubnet(arg string, m *modelfile.Model) (arch.Subnet, error) {
	if arg == "all" {
		return arch.Subnet{}, fmt.Errorf("%w: --subnet all: this command takes one subnet (largest, middle, smallest, JSON or a file)", errUsage)
	}
	named, err := parseSubnets(arg, m)
	if err != nil {
		return arch.Subnet{}, err
	}
	s := named[0].Subnet
	if m.Kind != modelfile.KindSupernet && !s.Equal(arch.Largest(m.Arch)) {
		return arch.Subnet{}, fmt.Errorf("%w: --subnet %s: a %s model runs only as a whole; only supernets have subnets (omit --subnet)", errUsage, arg, m.Kind)
	}
	return s, nil
}
