package pipeline

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/latency"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/supernet"
	"github.com/ofa-go/ofa/train"
)

// extractBatch is the batch of calibration and validation passes during extraction.
const extractBatch = 100

// Extractor holds what extractions from one supernet share: the data loaders, the
// latency table and the importance scores (measured once per criteria and reused).
type Extractor struct {
	cfg      Config
	supernet *modelfile.Model
	data     *Dataset
	calib    data.Batcher
	val      data.Batcher
	valBatch int
	valN     int
	verify   data.Batch
	latency  *latency.Table
	scores   map[string]*extract.Scores
}

// NewExtractor prepares extractions from supernet sn on ds. latency may be nil (no latency
// budgets, no predicted latencies).
func NewExtractor(cfg Config, sn *modelfile.Model, ds *Dataset, latency *latency.Table) (*Extractor, error) {
	if sn.Kind != modelfile.KindSupernet {
		return nil, fmt.Errorf("%w: extraction needs a supernet; this is a %s model, not a supernet: extract from the supernet it came from", extract.ErrExtract, sn.Kind)
	}
	if err := ds.CheckModel("the supernet", sn); err != nil {
		return nil, err
	}
	calib, _, err := EvalLoader(ds.Train, extractBatch, sn.Preprocess)
	if err != nil {
		return nil, err
	}
	valSet := ds.Val
	if n := cfg.Extract.ValExamples; n > 0 && n < valSet.N() {
		valSet = valSet.Head(n)
	}
	val, valBatch, err := EvalLoader(valSet, extractBatch, sn.Preprocess)
	if err != nil {
		return nil, err
	}
	if latency != nil {
		if err := latency.Compatible(sn.Arch); err != nil {
			return nil, err
		}
	}
	e := &Extractor{cfg: cfg, supernet: sn, data: ds, calib: calib, val: val, valBatch: valBatch, valN: valSet.N(), latency: latency,
		scores: map[string]*extract.Scores{}}
	val.Batch(0, 0, &e.verify)
	return e, nil
}

// Supernet is the model extractions come from.
func (e *Extractor) Supernet() *modelfile.Model { return e.supernet }

// ValExamples is the number of validation examples each search candidate is scored on.
func (e *Extractor) ValExamples() int { return e.valN }

// VerifyBatch is a validation batch used to check exported models against the supernet.
func (e *Extractor) VerifyBatch() data.Batch { return e.verify }

// Extract runs one extraction with settings core and selection sel; subnet, if set, fixes
// the sizes instead (baselines of the same sizes).
func (e *Extractor) Extract(core extract.Config, sel extract.Selection, subnet *arch.Subnet) (*extract.Result, error) {
	m := e.supernet
	key := fmt.Sprint(core.Criteria, core.CalibrationBatches)
	in := extract.Input{Arch: m.Arch, Params: m.Params, Calibration: e.calib, VerifyBatch: e.verify,
		Latency: e.latency, Scores: e.scores[key], Space: m.Space}
	in.Fitness = func(p *supernet.Params) (extract.Fitness, func()) {
		ev := train.NewEvaluator(m.Arch, p, Ops(e.cfg.Ops), e.val, e.valBatch)
		return func(s arch.Subnet) (float64, error) {
			acc, _, err := ev.Evaluate(s)
			return acc, err
		}, ev.Close
	}
	if subnet != nil {
		sel = extract.Selection{Subnet: subnet}
	}
	res, err := extract.Extract(in, core, sel)
	if err != nil {
		return nil, err
	}
	e.scores[key] = res.Scores
	return res, nil
}

// TestAccuracy is the test accuracy of a whole model.
func (e *Extractor) TestAccuracy(a arch.Arch, p *supernet.Params) (float64, error) {
	return Accuracy(a, p, Ops(e.cfg.Ops), e.data.Test, e.supernet.Preprocess)
}

// Baselines are the two ablations of an extraction at the same sizes: plain leading
// slices (the supernet's own order) and random units.
var Baselines = []struct{ Order, Name string }{
	{extract.OrderNone, "plain slices"},
	{extract.OrderRandom, "random units"},
}

// BaselineAccuracies extracts the sizes of res with each of Baselines' orders and returns
// their test accuracies, keyed by order.
func (e *Extractor) BaselineAccuracies(core extract.Config, res *extract.Result) (map[string]float64, error) {
	out := map[string]float64{}
	for _, b := range Baselines {
		c := core
		c.Order = b.Order
		sub := res.Subnet
		r, err := e.Extract(c, extract.Selection{}, &sub)
		if err != nil {
			return nil, err
		}
		if out[b.Order], err = e.TestAccuracy(r.Arch, r.Params); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Prune extracts from model m, which is not the supernet (the dense model of a
// lifecycle), with the extractor's calibration, verification and latency data; scores are
// m's importance scores from an earlier Prune of m (nil: measured now, and returned in the
// result for the next).
func (e *Extractor) Prune(m *modelfile.Model, core extract.Config, sel extract.Selection, scores *extract.Scores) (*extract.Result, error) {
	in := extract.Input{Arch: m.Arch, Params: m.Float32Params(), Calibration: e.calib, VerifyBatch: e.verify, Latency: e.latency, Scores: scores}
	return extract.Extract(in, core, sel)
}

// ExtractOptions configures Extract beyond the configuration.
type ExtractOptions struct {
	// Dir, if set, receives the model (model.safetensors) and its manifest
	// (manifest.json), written atomically (SaveModelDir).
	Dir string
	// Provenance is recorded in the model (ExtractProvenance).
	Provenance *modelfile.Provenance
	// Baselines also measures the test accuracies of Baselines at the extraction's sizes.
	Baselines bool
}

// ExtractResult is one extraction: the extraction itself, the model made of it, its test
// accuracy before fine-tuning and, when asked for, the baselines' test accuracies by order.
type ExtractResult struct {
	*extract.Result
	Model     *modelfile.Model
	Test      float64
	Baselines map[string]float64
}

// Extract runs one extraction from ex's supernet with cfg.Extract's settings and selection
// sel, measures the model's test accuracy and writes it into opts.Dir.
func Extract(cfg Config, ex *Extractor, sel extract.Selection, opts ExtractOptions) (*ExtractResult, error) {
	res, err := ex.Extract(cfg.Extract.Config, sel, nil)
	if err != nil {
		return nil, err
	}
	out := &ExtractResult{Result: res}
	if out.Test, err = ex.TestAccuracy(res.Arch, res.Params); err != nil {
		return nil, err
	}
	if out.Model, err = ex.Model(res, opts.Provenance); err != nil {
		return nil, err
	}
	if opts.Dir != "" {
		if err := SaveModelDir(opts.Dir, out.Model, map[string]any{FileManifest: res.Manifest}); err != nil {
			return nil, err
		}
	}
	if opts.Baselines {
		if out.Baselines, err = ex.BaselineAccuracies(cfg.Extract.Config, res); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ExtractProvenance is the provenance of models extracted from the supernet file at path
// (its content hash recorded) with the stored configuration.
func ExtractProvenance(path string, stored []byte) (*modelfile.Provenance, error) {
	sha, err := modelfile.FileSHA256(path)
	if err != nil {
		return nil, err
	}
	return &modelfile.Provenance{Supernet: path, SupernetSHA256: sha, Step: "extract", Config: string(stored)}, nil
}

// ExtractSelection is what e selects: its ratios, thresholds or target, the target
// fetched from e.Remote when one is configured.
func ExtractSelection(ctx context.Context, e ExtractConfig) (extract.Selection, error) {
	sel, err := e.Selection()
	if err != nil || !e.HasRemote() {
		return sel, err
	}
	f, err := budget.Fetch(ctx, e.Remote)
	if err != nil {
		return sel, err
	}
	t := f.Target
	sel.Target, sel.TargetFrom = &t, f.From
	return sel, nil
}

// Model turns an extraction result into a model of kind extracted, with its manifest and
// provenance.
func (e *Extractor) Model(res *extract.Result, prov *modelfile.Provenance) (*modelfile.Model, error) {
	m, err := extractedModel(e.supernet, res, prov, nil)
	if err == nil {
		m.Data = e.data.Record() // the data it was scored, searched and measured on
	}
	return m, err
}

// extractedModel turns an extraction from model from into a model of kind extracted, with
// its manifest, provenance and extra metadata.
func extractedModel(from *modelfile.Model, res *extract.Result, prov *modelfile.Provenance, extra map[string]string) (*modelfile.Model, error) {
	mj, err := jsonString(res.Manifest)
	if err != nil {
		return nil, err
	}
	if extra == nil {
		extra = map[string]string{}
	}
	extra[modelfile.KeyManifest] = mj
	return derive(from, modelfile.KindExtracted, res.Arch, res.Params, prov, extra), nil
}

// derive is a model made from model from: its preprocessing, data record and class names
// carry over, so that every model derived from a supernet names its classes as the data
// did and remembers the data it was trained on.
func derive(from *modelfile.Model, kind string, a arch.Arch, p *supernet.Params, prov *modelfile.Provenance, extra map[string]string) *modelfile.Model {
	return &modelfile.Model{Kind: kind, Arch: a, Params: p, Preprocess: from.Preprocess, Provenance: prov, Data: from.Data, Extra: modelfile.CopyClassNames(extra, from)}
}

// extraction is an extracted model and its manifest, as saved in a model directory.
type extraction struct {
	model    *modelfile.Model
	manifest *extract.Manifest
	test     float64 // test accuracy, where measured
}

// loadExtraction reads an extraction's model directory (SaveModelDir with a manifest).
func loadExtraction(dir string) (*extraction, error) {
	m, err := modelfile.Load(filepath.Join(dir, FileModel))
	if err != nil {
		return nil, err
	}
	var mf extract.Manifest
	if err := readJSON(filepath.Join(dir, FileManifest), &mf); err != nil {
		return nil, err
	}
	return &extraction{model: m, manifest: &mf}, nil
}

// SaveModelDir writes a model directory atomically: dir is marked incomplete, the model
// (dir/model.safetensors) and the side files (name -> JSON value, e.g. manifest.json) are
// written, then the mark is removed. A crash leaves a directory that readers refuse.
func SaveModelDir(dir string, m *modelfile.Model, side map[string]any) error {
	if err := modelfile.BeginDir(dir, "model"); err != nil {
		return err
	}
	if err := modelfile.Save(filepath.Join(dir, FileModel), m); err != nil {
		return err
	}
	for name, v := range side {
		if err := modelfile.WriteJSON(filepath.Join(dir, name), v); err != nil {
			return err
		}
	}
	return modelfile.CommitDir(dir)
}
