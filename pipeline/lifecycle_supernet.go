package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/go-viper/mapstructure/v2"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/report"
	"github.com/ofa-go/ofa/sampler"
	"github.com/ofa-go/ofa/train"
	"go.yaml.in/yaml/v3"
)

// lifecycleSupernet loads run.supernet, or trains the supernet in Dir/supernet (continuing
// or reusing it when resuming), and says what training it cost.
func lifecycleSupernet(ctx context.Context, cfg Config, ds *Dataset, opts LifecycleOptions, rep *report.Report) (*modelfile.Model, string, *supernetRun, error) {
	if path := cfg.Run.Supernet; path != "" {
		sn, err := modelfile.Load(path)
		if err != nil {
			return nil, "", nil, err
		}
		if sn.Kind != modelfile.KindSupernet {
			return nil, "", nil, fmt.Errorf("%w: run.supernet %s is a %s model, not a supernet", ErrConfig, path, sn.Kind)
		}
		opts.log("== supernet: %s", path)
		rep.Notes = append(rep.Notes, "supernet: "+path)
		return sn, path, storedRun(cfg, sn, path), nil
	}
	dir := filepath.Join(opts.Dir, DirSupernet)
	path := filepath.Join(dir, FileSupernet)
	to := TrainOptions{Output: opts.Output, Dir: dir, StoredConfig: opts.StoredConfig, World: opts.World}
	if opts.Resume {
		if sn, err := modelfile.Load(path); err == nil {
			opts.log("== 1/3 supernet: reusing the finished run in %s", dir)
			rep.Notes = append(rep.Notes, "supernet: "+path+" (finished before the lifecycle was resumed)")
			if l, a, err := metricsCurves(filepath.Join(dir, FileMetrics)); err == nil {
				rep.Losses, rep.Accuracies = append(rep.Losses, l), append(rep.Accuracies, a)
			} else {
				rep.Notes = append(rep.Notes, fmt.Sprintf("supernet: no training curves (%v)", err))
			}
			return sn, path, storedRun(cfg, sn, path), nil
		}
		r, err := modelfile.LoadResume(filepath.Join(dir, FileResume))
		switch {
		case err == nil:
			if r.RunConfig != string(opts.StoredConfig) {
				return nil, "", nil, fmt.Errorf("%w: %s was written with another configuration; resume with the lifecycle's own (`--config %s`) or start over with --force",
					ErrConfig, filepath.Join(dir, FileResume), filepath.Join(opts.Dir, FileConfig))
			}
			to.Resume = r
			opts.log("== 1/3 training the supernet: continuing at step %d", r.Step)
		case errors.Is(err, fs.ErrNotExist):
		default:
			return nil, "", nil, err
		}
	}
	if to.Resume == nil {
		opts.log("== 1/3 training the supernet")
	}
	res, err := TrainSupernet(ctx, cfg, ds, to)
	if err != nil {
		return nil, "", nil, err
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("supernet trained for %d steps (%s)", res.Steps, dir))
	rep.Losses = append(rep.Losses, res.Losses)
	rep.Accuracies = append(rep.Accuracies, res.Accuracies)
	run := &supernetRun{known: true, steps: res.Steps, batch: cfg.Train.BatchSize, train: cfg.Train, seconds: res.Seconds,
		timed: to.Resume == nil, source: "trained in this run"}
	run.replay(cfg.Sampler, res.Model)
	return res.Model, res.Path, run, nil
}

// supernetRun is what training the supernet cost: its steps and examples per step, the
// training MACs per example and step (replayed from its sampler: every subnet it trained,
// forward and backward), its wall time and its train section.
type supernetRun struct {
	known          bool // the step count is known
	steps, batch   int
	train          train.Config
	sampler        string
	macsPerExample float64 // training MACs per example and step, mean over the steps
	seconds        float64
	timed          bool
	source         string // where the figures come from
}

// storedRun reads what a supernet trained elsewhere cost from the resume file beside it
// (its step count) and its stored configuration (train and sampler sections); the
// configuration's own sections stand in for ones that cannot be read, and say so.
func storedRun(cfg Config, sn *modelfile.Model, path string) *supernetRun {
	run := &supernetRun{batch: cfg.Train.BatchSize, train: cfg.Train}
	rpath := filepath.Join(filepath.Dir(path), FileResume)
	r, err := modelfile.LoadResume(rpath)
	if err != nil {
		run.source = fmt.Sprintf("no readable resume file beside the supernet: %v", err)
		return run
	}
	run.known, run.steps, run.source = true, r.Step, "step count from "+rpath
	doc := r.RunConfig
	if doc == "" && sn.Provenance != nil {
		doc = sn.Provenance.Config
	}
	tc, sc, err := storedSections(doc)
	if err != nil {
		tc, sc = cfg.Train, cfg.Sampler
		run.source += fmt.Sprintf("; its configuration is unreadable (%v), so this run's train and sampler sections are assumed", err)
	} else {
		run.source += ", train and sampler sections from its stored configuration"
	}
	run.batch, run.train = tc.BatchSize, tc
	run.replay(sc, sn)
	return run
}

// storedSections decodes the train and sampler sections of a stored configuration (YAML
// with the configuration's keys) over their defaults.
func storedSections(doc string) (train.Config, sampler.Config, error) {
	tc, sc := train.Default(), sampler.DefaultConfig()
	var root map[string]any
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		return tc, sc, fmt.Errorf("stored configuration: %w", err)
	}
	for key, out := range map[string]any{"train": &tc, "sampler": &sc} {
		sec, ok := root[key]
		if !ok {
			return tc, sc, fmt.Errorf("stored configuration: no %s section", key)
		}
		d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{Result: out, TagName: "mapstructure", ErrorUnused: true})
		if err != nil {
			return tc, sc, err
		}
		if err := d.Decode(sec); err != nil {
			return tc, sc, fmt.Errorf("stored configuration: %s: %w", key, err)
		}
	}
	if err := tc.Validate("train"); err != nil {
		return tc, sc, fmt.Errorf("stored configuration: %w", err)
	}
	return tc, sc, sc.Validate()
}

// replay counts the forward MACs of every subnet the sampler drew over the run's steps.
func (r *supernetRun) replay(sc sampler.Config, sn *modelfile.Model) {
	if !r.known || r.steps == 0 {
		return
	}
	if sn.Space == nil {
		r.source += "; the supernet has no search space, so its sampler cannot be replayed"
		r.known = false
		return
	}
	smp, err := sampler.NewForRun(sc, *sn.Space, r.steps)
	if err != nil {
		r.source += fmt.Sprintf("; its sampler cannot be replayed (%v)", err)
		r.known = false
		return
	}
	total := 0.0
	for step := 0; step < r.steps; step++ {
		for _, s := range smp.Sample(step) {
			total += float64(sn.Arch.SubnetCost(s).MACs)
		}
	}
	r.sampler = smp.Name()
	r.macsPerExample = trainingMACs(total, 0) / float64(r.steps)
}

// stage is the supernet's compute as a report stage.
func (r *supernetRun) stage() report.Stage {
	if !r.known {
		return report.Stage{Name: "supernet (steps unknown)", Untimed: true, Shared: true}
	}
	return report.Stage{Name: "supernet", Steps: r.steps, Batch: r.batch, MACsPerExample: r.macsPerExample,
		MACs: float64(r.steps) * float64(r.batch) * r.macsPerExample, Seconds: r.seconds, Untimed: !r.timed, Shared: true}
}

// notes describe the supernet's compute for the report.
func (r *supernetRun) notes() []string {
	if !r.known {
		return []string{"supernet compute unknown: " + r.source}
	}
	n := fmt.Sprintf("supernet compute: %d steps x %d examples x %s training MACs per example and step (%s sampler: every subnet trained "+
		"at a step, forward and backward, replayed from the sampler), %s training MACs in all; %s",
		r.steps, r.batch, report.SI(r.macsPerExample), r.sampler, report.SI(float64(r.steps)*float64(r.batch)*r.macsPerExample), r.source)
	if !r.timed {
		n += "; its wall time was not measured in this run"
	}
	return []string{n}
}
