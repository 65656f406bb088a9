package pipeline

import (
	"fmt"
	"path/filepath"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/extract"
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
	latency  *extract.LatencyTable
	scores   map[string]*extract.Scores
}

// NewExtractor prepares extractions from supernet sn on ds. latency may be nil (no latency
// budgets, no predicted latencies).
func NewExtractor(cfg Config, sn *modelfile.Model, ds *Dataset, latency *extract.LatencyTable) (*Extractor, error) {
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

// Model turns an extraction result into a model of kind extracted, with its manifest and
// provenance.
func (e *Extractor) Model(res *extract.Result, prov *modelfile.Provenance) (*modelfile.Model, error) {
	mj, err := jsonString(res.Manifest)
	if err != nil {
		return nil, err
	}
	return &modelfile.Model{Kind: modelfile.KindExtracted, Arch: res.Arch, Params: res.Params, Preprocess: e.supernet.Preprocess,
		Provenance: prov, Data: e.data.Record(), Extra: copyClasses(map[string]string{modelfile.KeyManifest: mj}, e.supernet)}, nil
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
