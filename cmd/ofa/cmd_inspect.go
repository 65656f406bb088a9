package main

import (
	"fmt"
	"sort"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/spf13/cobra"
)

// layerInfo is one row of `ofa inspect`.
type layerInfo struct {
	Layer  int   `json:"layer"`
	Heads  int   `json:"heads"`
	MLP    int   `json:"mlp"`
	Params int64 `json:"params"`
	MACs   int64 `json:"macs"`
	// Uses lists the positions running this layer (expanded models).
	Uses []int `json:"positions,omitempty"`
}

// positionInfo is one position of an expanded model.
type positionInfo struct {
	arch.Position
	Index  int   `json:"position"`
	Params int64 `json:"params"` // the position's own norms and transforms
	MACs   int64 `json:"macs"`
}

func (a *app) inspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show a checkpoint's architecture, parameters and MACs per layer",
		Example: `  ofa inspect runs/fmnist/supernet.safetensors
  ofa inspect --json runs/fmnist/extract-4x/model.safetensors`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			var m *modelfile.Model
			step := -1
			f, err := checkpoint.ReadFile(path, checkpoint.Limits{})
			if err != nil {
				return err
			}
			if modelfile.IsResume(f) {
				r, err := modelfile.ResumeFromFile(f)
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				m, step = r.Model, r.Step
			} else if m, err = modelfile.FromFile(f); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			return a.inspect(path, m, step)
		},
	}
}

func (a *app) inspect(path string, m *modelfile.Model, step int) error {
	ar := m.Arch
	total := ar.ModelCost()
	stem := ar.StemCost()
	var layers []layerInfo
	for i, l := range ar.Layers {
		c := ar.BlockCost(l.Heads, l.MLP)
		li := layerInfo{Layer: i, Heads: l.Heads, MLP: l.MLP, Params: c.Params, MACs: c.MACs}
		if ar.Expanded() {
			li.Params -= 4 * int64(ar.Dim) // norms belong to positions
		}
		layers = append(layers, li)
	}
	var positions []positionInfo
	for p, pos := range ar.Positions {
		c := ar.PositionTransformCost(pos)
		positions = append(positions, positionInfo{Position: pos, Index: p, Params: c.Params,
			MACs: c.MACs + ar.BlockCost(ar.Layers[pos.Layer].Heads, ar.Layers[pos.Layer].MLP).MACs})
		layers[pos.Layer].Uses = append(layers[pos.Layer].Uses, p)
	}
	a.say("%s: %s model, task %s, input %dx%dx%d, patch %dx%d (%d tokens), dim %d, head dim %d, %d classes",
		path, m.Kind, ar.Task, ar.InChannels, ar.InHeight, ar.InWidth, ar.PatchHeight, ar.PatchWidth, ar.Tokens(), ar.Dim, ar.HeadDim, ar.Classes)
	if step >= 0 {
		a.say("resume state at step %d", step)
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
	if step >= 0 {
		out["step"] = step
	}
	a.emit(out)
	return nil
}
