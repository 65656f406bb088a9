package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/ofa-go/ofa/infer"
	"github.com/ofa-go/ofa/pipeline"
	"github.com/spf13/cobra"
)

func (a *app) predictCmd() *cobra.Command {
	var modelPath, subnetArg string
	var top int
	fk := flagKeys{}
	cmd := &cobra.Command{
		Use:   "predict --model M FILE...",
		Short: "Classify PNG or IDX images (image models) or WAV clips (speech models) and print the most probable classes",
		Example: `  ofa predict --model runs/demo/budgets/4x/finetuned/model.safetensors shoe.png data/embedded/t10k-images-idx3-ubyte.gz
  ofa predict --model runs/speech/supernet.safetensors --subnet smallest --json seven.wav`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			cfg, err := a.loader(fk).Load()
			if err != nil {
				return err
			}
			if modelPath == "" {
				return fmt.Errorf("%w: --model is required", errUsage)
			}
			if top < 1 {
				return fmt.Errorf("%w: --top: got %d, want >= 1", errUsage, top)
			}
			// inputs are checked first: a named pipe with no writer would block forever, and a
			// missing file should not wait for the model to load
			for _, f := range files {
				if err := regularInput(f); err != nil {
					return err
				}
			}
			m, s, err := modelSubnet(modelPath, subnetArg)
			if err != nil {
				return err
			}
			var inputs []infer.Input
			for _, f := range files {
				in, err := infer.ReadInputs(m, f)
				if err != nil {
					return err
				}
				inputs = append(inputs, in...)
			}
			preds, err := infer.Predict(m, s, pipeline.Ops(cfg.Ops), inputs, top)
			if err != nil {
				return err
			}
			for _, p := range preds {
				parts := make([]string, len(p.Top))
				for i, c := range p.Top {
					parts[i] = fmt.Sprintf("%s %.1f%%", c.Class, 100*c.Probability)
				}
				a.say("%s: %s", p.Input, strings.Join(parts, ", "))
			}
			names, err := m.ClassNames()
			if err != nil {
				return err
			}
			a.emit(map[string]any{"command": "predict", "model": modelPath, "kind": m.Kind, "subnet": s,
				"classes": names, "predictions": preds})
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&modelPath, "model", "", "model checkpoint (.safetensors)")
	fs.StringVar(&subnetArg, "subnet", "largest", "supernets: largest, middle, smallest, a JSON subnet or a file holding one")
	fs.IntVar(&top, "top", 3, "classes shown per input")
	fs.String("ops", "", "fused or composed")
	fk.add(fs, "ops", "ops")
	return cmd
}

// regularInput checks that path is a regular file (or a link to one) that predict can read.
func regularInput(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		what := "not a regular file (" + fi.Mode().Type().String() + ")"
		switch {
		case fi.IsDir():
			what = "a directory"
		case fi.Mode()&os.ModeNamedPipe != 0:
			what = "a named pipe"
		case fi.Mode()&os.ModeDevice != 0:
			what = "a device"
		}
		return fmt.Errorf("%w: %s is %s: give PNG, IDX or WAV files", errUsage, path, what)
	}
	return nil
}
