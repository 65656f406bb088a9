package main

import (
	"errors"
	"fmt"
	"github.com/ofa-go/ofa/config"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/configfile"

	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/latency"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/pipeline"
	"github.com/spf13/cobra"
)

// floatList parses "0.5,0.25" (a single value applies to every layer when layers > 0).
func floatList(s string, layers int) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %q is not a number", errUsage, f)
		}
		out = append(out, v)
	}
	if len(out) == 1 && layers > 1 {
		for len(out) < layers {
			out = append(out, out[0])
		}
	}
	return out, nil
}

// checkChoices checks the ratios, thresholds and (for a budget) floors of e against the
// architecture a, the errors the extraction would give after loading the weights.
func checkChoices(a arch.Arch, e config.ExtractConfig) error {
	pair := func(heads, mlp []float64) ([]float64, []float64) {
		if len(mlp) == 0 {
			mlp = heads
		}
		if len(heads) == 0 {
			heads = mlp
		}
		return heads, mlp
	}
	for _, c := range []struct {
		key        string
		heads, mlp []float64
		threshold  bool
	}{{"ratios", e.Ratios.Heads, e.Ratios.MLP, false}, {"thresholds", e.Thresholds.Heads, e.Thresholds.MLP, true}} {
		if len(c.heads) == 0 && len(c.mlp) == 0 {
			continue
		}
		h, m := pair(c.heads, c.mlp)
		if err := extract.CheckPerLayer(a, c.key+".heads", h, c.threshold); err != nil {
			return err
		}
		if err := extract.CheckPerLayer(a, c.key+".mlp", m, c.threshold); err != nil {
			return err
		}
	}
	if e.Target != (budget.Target{}) || e.HasRemote() {
		return e.Floors.Validate(a)
	}
	return nil
}

func (a *app) extractCmd() *cobra.Command {
	var supernetPath, out, target, ratios, mlpRatios, thresholds, mlpThresholds string
	var force bool
	fk := flagKeys{}
	cmd := &cobra.Command{
		Use:   "extract",
		Short: "Derive a smaller model from a supernet by importance, for ratios, thresholds or a budget",
		Example: `  ofa extract --config configs/demo.yaml --supernet runs/demo/supernet/supernet.safetensors --target 4x --baselines --out runs/demo-x4
  ofa extract --config configs/demo.yaml --supernet runs/demo/supernet/supernet.safetensors --target macs=1000000,latency_ms=0.8 \
      --latency-table runs/demo/latency.json --out runs/demo-macs
  # below, S is a supernet checkpoint and x an output directory
  ofa extract --supernet S --ratios 0.5,0.5,0.25,0.25 --mlp-ratios 0.5 --out x
  ofa extract --supernet S --thresholds 0.3 --out x
  ofa extract --supernet S --target-url https://config.example/budgets/edge.json --out x
  ofa extract --supernet S --target-etcd http://127.0.0.1:2379 --target-key /ofa/budget --out x`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if supernetPath == "" || out == "" {
				return fmt.Errorf("%w: --supernet and --out are required", errUsage)
			}
			// the arguments are checked against the model's header before its weights are read
			head, err := modelfile.ReadHeader(supernetPath)
			if err != nil {
				return err
			}
			a0 := head.Arch
			cfg, origin, err := a.loader(fk).ForModel(supernetPath, head)
			if err != nil {
				return err
			}
			layers := len(a0.Layers)
			e := &cfg.Extract
			for _, f := range []struct {
				s   string
				dst *[]float64
			}{{ratios, &e.Ratios.Heads}, {mlpRatios, &e.Ratios.MLP}, {thresholds, &e.Thresholds.Heads}, {mlpThresholds, &e.Thresholds.MLP}} {
				if f.s != "" {
					if *f.dst, err = floatList(f.s, layers); err != nil {
						return err
					}
				}
			}
			if target != "" {
				if e.Target, err = budget.ParseFlag(target); err != nil {
					return fmt.Errorf("%w: --target: %w", errUsage, err)
				}
			}
			if err := checkChoices(a0, cfg.Extract); err != nil {
				return fmt.Errorf("%w: %w", errUsage, err)
			}
			m, err := modelfile.Load(supernetPath)
			if err != nil {
				return err
			}
			release, err := a.claimModelDir(out, force)
			if err != nil {
				return err
			}
			defer release()
			sel, err := pipeline.ExtractSelection(cmd.Context(), *e)
			if errors.Is(err, pipeline.ErrConfig) {
				return fmt.Errorf("%w: %w", errUsage, err)
			} else if err != nil {
				return err
			}
			ds, err := a.modelData(cfg, supernetPath, m, origin)
			if err != nil {
				return err
			}
			if sel.Target != nil {
				a.say("target: %s (from %s)", sel.Target, sel.TargetFrom)
				if sel.Trained = pipeline.TrainedSubnets(cfg, m, *sel.Target); len(sel.Trained) > 0 {
					a.say("the supernet was trained as %d subnet(s) at this budget (sampler.budget_fixed); the search starts from them", len(sel.Trained))
				}
			}
			var table *latency.Table
			if e.LatencyTable != "" {
				if table, err = latency.LoadTable(e.LatencyTable); err != nil {
					return err
				}
			}
			ex, err := pipeline.NewExtractor(cfg, m, ds, table)
			if err != nil {
				return err
			}
			prov, err := pipeline.ExtractProvenance(supernetPath, configfile.Store(cfg))
			if err != nil {
				return err
			}
			res, err := pipeline.Extract(cfg, ex, sel, pipeline.ExtractOptions{Dir: out, Provenance: prov, Baselines: e.Baselines})
			if err != nil {
				return err
			}
			path := filepath.Join(out, pipeline.FileModel)
			mf := res.Manifest
			use := ""
			if mf.BudgetUse > 0 {
				use = fmt.Sprintf(", %.0f%% of the budget's tightest limit", 100*mf.BudgetUse)
			}
			a.say("extracted %s: %d params (%.2fx fewer), %d MACs%s%s; verified against the supernet (max logit difference %.2g)",
				path, mf.Achieved.Params, mf.ParamsReduction, mf.Achieved.MACs, latencyText(mf.Achieved), use, mf.Verification.MaxAbsDiff)
			for _, w := range mf.Warnings {
				a.say("warning: %s", w)
			}
			for i, l := range res.Arch.Layers {
				a.say("  layer %d (supernet layer %d): %d heads, MLP %d", i, mf.Layers[i].Layer, l.Heads, l.MLP)
			}
			a.say("test accuracy before fine-tuning: %.2f%%", 100*res.Test)
			o := map[string]any{"command": "extract", "model": path, "manifest": mf, "test_accuracy": res.Test, "layers": res.Arch.Layers}
			if e.Baselines {
				for _, b := range pipeline.Baselines {
					a.say("baseline %-12s (same sizes): test accuracy %.2f%%", b.Name, 100*res.Baselines[b.Order])
				}
				o["baselines"] = res.Baselines
			}
			a.emit(o)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&supernetPath, "supernet", "", "supernet checkpoint")
	fs.StringVar(&out, "out", "", "output directory (model.safetensors, manifest.json)")
	fs.BoolVar(&force, "force", false, "replace an existing model in --out")
	fs.StringVar(&target, "target", "", `budget, a ceiling the extraction stays under (it may come in below): "4x" (4x fewer params than the supernet), "params=50000", "macs=1e6", "latency_ms=0.8", or several joined by commas`)
	fs.StringVar(&ratios, "ratios", "", "fraction of each layer's heads kept (0.25: a quarter), comma-separated per layer (one value: every layer)")
	fs.StringVar(&mlpRatios, "mlp-ratios", "", "fraction of each layer's MLP neurons kept, per layer (default: --ratios)")
	fs.StringVar(&thresholds, "thresholds", "", "importance threshold per layer for heads (normalised scores in [0,1))")
	fs.StringVar(&mlpThresholds, "mlp-thresholds", "", "importance threshold per layer for neurons (default: --thresholds)")
	fs.String("target-url", "", "fetch the budget (JSON) from this http(s) URL")
	fs.StringSlice("target-etcd", nil, "fetch the budget from these etcd v3 endpoints")
	fs.String("target-key", "", "etcd key holding the budget")
	fs.String("latency-table", "", "latency table `file` written by ofa latency-table")
	fs.String("order", "", "which units each layer keeps: best (the most accurate on validation of extract.candidates), importance, nested, none (plain leading slices) or random")
	fs.Bool("baselines", false, "also measure plain-slice and random-unit extractions of the same sizes")
	fs.String("data", "", "directory with the Fashion-MNIST IDX files")
	fs.Bool("embedded", false, "use the embedded subset")
	for flag, key := range map[string]string{"target-url": "extract.remote.url", "target-etcd": "extract.remote.etcd_endpoints",
		"target-key": "extract.remote.etcd_key", "latency-table": "extract.latency_table", "order": "extract.order",
		"baselines": "extract.baselines", "data": "data.dir", "embedded": "data.embedded"} {
		fk.add(fs, flag, key)
	}
	return cmd
}

func latencyText(c extract.Cost) string {
	if c.LatencyMS > 0 {
		return fmt.Sprintf(", %.3f ms predicted", c.LatencyMS)
	}
	return ""
}
