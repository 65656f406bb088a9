package main

import (
	"fmt"
	"sort"

	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/spf13/cobra"
)

func (a *app) inspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show a checkpoint's architecture, parameters and MACs per layer",
		Example: `  ofa inspect runs/demo/supernet/supernet.safetensors
  ofa inspect --json runs/demo/budgets/4x/finetuned/model.safetensors`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			var m *modelfile.Model
			var state *modelfile.Resume
			f, err := checkpoint.ReadFile(path, checkpoint.Limits{})
			if err != nil {
				return err
			}
			if modelfile.IsResume(f) {
				if state, err = modelfile.ResumeFromFile(f); err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				m = state.Model
			} else if m, err = modelfile.FromFile(f); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			return a.inspect(path, m, state)
		},
	}
}

// inspect shows model m read from path; state is its resume state when path is a resume
// file (else nil).
func (a *app) inspect(path string, m *modelfile.Model, state *modelfile.Resume) error {
	ar := m.Arch
	total := ar.ModelCost()
	stem := ar.StemCost()
	layers, positions := ar.Breakdown()
	a.say("%s: %s model, task %s, input %dx%dx%d, patch %dx%d (%d tokens), dim %d, head dim %d, %d classes",
		path, m.Kind, ar.Task, ar.InChannels, ar.InHeight, ar.InWidth, ar.PatchHeight, ar.PatchWidth, ar.Tokens(), ar.Dim, ar.HeadDim, ar.Classes)
	if state != nil {
		line := fmt.Sprintf("resume state at step %d", state.Step)
		if state.Timed {
			line += fmt.Sprintf(", %.0f s of training so far", state.Seconds)
		}
		if p := state.Finetune; p != nil {
			line += "; a fine-tuning"
			if p.BestStep > 0 {
				line += fmt.Sprintf(", best validation accuracy %.2f%% at step %d", 100*p.BestAccuracy, p.BestStep)
			}
		}
		a.say("%s", line)
	}
	if d := m.Data; d != nil {
		a.say("data: %s", d)
		if d.Root != "" {
			a.say("  source %s at %s; normalisation mean %v, std %v; augmentation %s", d.Kind, d.Root, d.Mean, d.Std, augText(d.Augment))
		} else {
			a.say("  source %s; normalisation mean %v, std %v; augmentation %s", d.Kind, d.Mean, d.Std, augText(d.Augment))
		}
		a.say("  fingerprint %s", d.Fingerprint)
	} else if m.Provenance != nil && m.Provenance.Config != "" {
		a.say("data: not recorded (written before model files recorded their data); commands default to the data section of its stored configuration")
	} else {
		a.say("data: not recorded, nor a configuration; commands default to the default data")
	}
	a.say("params %d (unique), MACs %d per example; embedding+head: params %d, MACs %d", total.Params, total.MACs, stem.Params, stem.MACs)
	a.say("%6s %6s %6s %10s %12s %s", "layer", "heads", "mlp", "params", "MACs", "positions")
	for _, l := range layers {
		uses := ""
		if ar.Expanded() {
			uses = fmt.Sprint(l.Uses)
		}
		a.say("%6d %6d %6d %10d %12d %s", l.Layer, l.Heads, l.MLP, l.Params, l.MACs, uses)
	}
	if ar.Expanded() {
		a.say("%d positions over %d layers:", len(ar.Positions), len(ar.Layers))
		for _, p := range positions {
			a.say("  position %2d -> layer %d  affine=%t low_rank=%d head_mix=%t  own params %d, MACs %d",
				p.Index, p.Layer, p.Affine, p.LowRank, p.HeadMix, p.Params, p.MACs)
		}
	}
	if m.Space != nil {
		a.say("search space: heads %v, mlp %v, depth %v", m.Space.HeadChoices, m.Space.MLPChoices, m.Space.DepthChoices)
		sm := ar.SubnetCost(m.Space.Smallest())
		a.say("smallest subnet: params %d, MACs %d", sm.Params, sm.MACs)
	}
	var extra []string
	for k := range m.Extra {
		extra = append(extra, k)
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		a.say("other metadata: %v", extra)
	}
	out := map[string]any{"command": "inspect", "file": path, "kind": m.Kind, "arch": ar, "params": total.Params,
		"macs": total.MACs, "layers": layers, "stem": stem, "preprocess": m.Preprocess}
	if ar.Expanded() {
		out["positions"] = positions
		out["unique_params"] = total.Params
	}
	if m.Space != nil {
		out["space"] = m.Space
	}
	if m.Data != nil {
		out["data"] = m.Data
	}
	if state != nil {
		out["step"] = state.Step
		if state.Timed {
			out["seconds"] = state.Seconds
		}
		if p := state.Finetune; p != nil {
			out["finetune"] = p
		}
	}
	a.emit(out)
	return nil
}

// augText shows recorded augmentation settings ("none" when absent).
func augText(b []byte) string {
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}
