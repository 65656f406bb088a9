package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/configfile"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/extract/budget"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/report"
	"github.com/ofa-go/ofa/sampler"
	"github.com/ofa-go/ofa/train"
	"go.yaml.in/yaml/v3"
)

// lifecycleSupernet loads run.supernet, or trains the supernet in Dir/supernet (continuing
// or reusing it when resuming), and says what training it cost.
func lifecycleSupernet(ctx context.Context, cfg Config, ds *Dataset, opts LifecycleOptions, rep *report.Report, teacher *modelfile.Model) (*modelfile.Model, string, *supernetRun, error) {
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
	to := TrainOptions{Output: opts.Output, Dir: dir, StoredConfig: opts.StoredConfig, Teacher: teacher, World: opts.World}
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
			if !configfile.SameStored([]byte(r.RunConfig), opts.StoredConfig) {
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
	if len(res.Eval) > 0 {
		var parts []string
		for _, e := range res.Eval {
			parts = append(parts, fmt.Sprintf("%s (%s, %d params) %.2f%%", e.Name, e.Key, e.Params, 100*e.Accuracy))
		}
		rep.Notes = append(rep.Notes, "supernet subnets, test accuracy: "+strings.Join(parts, "; "))
	}
	rep.Losses = append(rep.Losses, res.Losses)
	rep.Accuracies = append(rep.Accuracies, res.Accuracies)
	run := &supernetRun{known: true, steps: res.Steps, batch: cfg.Train.BatchSize, train: cfg.Train, seconds: res.RunSeconds,
		timed: res.RunTimed, source: "trained in this run", teacherMACs: teacherMACs(teacher)}
	run.replay(cfg.Sampler, cfg.Run, res.Model.Arch, res.Model.Space)
	return res.Model, res.Path, run, nil
}

// plannedRun is the supernet run cfg will train on ds, known before it is trained (its
// steps and sampled MACs), and a weightless model of its architecture: what the dense
// teacher needs to match the supernet's training MACs.
func plannedRun(cfg Config, ds *Dataset) (*supernetRun, *modelfile.Model, error) {
	ar, space, err := cfg.Model.Arch(ds.Task, ds.Channels, ds.Height, ds.Width, len(ds.Classes))
	if err != nil {
		return nil, nil, err
	}
	tl, err := TrainLoader(ds.Train, cfg.Train.BatchSize, cfg.Train.Seed, ds.Preprocess())
	if err != nil {
		return nil, nil, err
	}
	run := &supernetRun{known: true, steps: cfg.Train.TotalSteps(tl.BatchesPerEpoch()), batch: cfg.Train.BatchSize, train: cfg.Train,
		source: "planned"}
	run.replay(cfg.Sampler, cfg.Run, ar, &space)
	if !run.known {
		return nil, nil, fmt.Errorf("dense teacher: the supernet's compute cannot be planned: %s", run.source)
	}
	return run, &modelfile.Model{Kind: modelfile.KindSupernet, Arch: ar, Space: &space, Preprocess: ds.Preprocess()}, nil
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
	teacherMACs    float64 // a fixed teacher's forward MACs per example and step (0: in-place)
	seconds        float64
	timed          bool
	source         string // where the figures come from
	// fixed are the subnets a "budgets" sampler with budget_fixed trained at every step,
	// one per budget limit (nil for other samplers)
	fixed []fixedSubnet
}

// fixedSubnet is the subnet a supernet trained at every step for one budget limit.
type fixedSubnet struct {
	limit  sampler.Limit
	subnet arch.Subnet
}

// TrainedSubnets are the subnets supernet sn was trained as at target t when cfg's sampler
// is a "budgets" sampler with budget_fixed over cfg's run budgets (for a supernet file,
// the configuration it stores): an extraction's search starts from them
// (extract.Selection.Trained). None for other samplers or targets.
func TrainedSubnets(cfg Config, sn *modelfile.Model, t budget.Target) []arch.Subnet {
	return trainedFor(fixedSubnets(cfg.Sampler, cfg.Run, sn.Arch, sn.Space), t, sn.Arch)
}

// trainedFor returns the fixed subnets trained for the limits that target t resolves to
// on supernet a.
func trainedFor(fixed []fixedSubnet, t budget.Target, a arch.Arch) []arch.Subnet {
	b := extract.Resolve(t, a)
	var out []arch.Subnet
	for _, f := range fixed {
		if f.limit.Params == b.Params && f.limit.MACs == b.MACs {
			out = append(out, f.subnet)
		}
	}
	return out
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
	if r.Timed {
		run.seconds, run.timed = r.Seconds, true
		run.source = "step count and wall time from " + rpath
	}
	doc := r.RunConfig
	if doc == "" && sn.Provenance != nil {
		doc = sn.Provenance.Config
	}
	tc, sc, rc, err := storedSections(doc, cfg.Run)
	if err != nil {
		tc, sc, rc = cfg.Train, cfg.Sampler, cfg.Run
		run.source += fmt.Sprintf("; its configuration is unreadable (%v), so this run's train, sampler and run sections are assumed", err)
	} else {
		run.source += ", train, sampler and run sections from its stored configuration"
	}
	run.batch, run.train = tc.BatchSize, tc
	switch rc.Teacher {
	case "":
	case TeacherDense:
		run.teacherMACs = float64(sn.Arch.ModelCost().MACs)
	default:
		if t, err := modelfile.Load(rc.Teacher); err == nil {
			run.teacherMACs = teacherMACs(t)
		} else {
			run.source += fmt.Sprintf("; its teacher %s is unreadable (%v), so its forward passes are not counted", rc.Teacher, err)
		}
	}
	run.replay(sc, rc, sn.Arch, sn.Space)
	return run
}

// storedSections decodes a stored configuration (YAML with the configuration's keys) with
// the same strict loader as a configuration file (configfile: unknown keys, ill-typed and
// invalid values are errors naming the key) and returns its train and sampler sections,
// which it must hold, and, when it has a run section, its budgets and teacher (the ones a
// budget-aware sampler and a fixed teacher need) over run's.
func storedSections(doc string, run RunConfig) (train.Config, sampler.Config, RunConfig, error) {
	c, err := configfile.Loader{Stored: []byte(doc), Where: "stored configuration"}.Load()
	if err != nil {
		return c.Train, c.Sampler, run, err
	}
	var root map[string]any
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		return c.Train, c.Sampler, run, fmt.Errorf("stored configuration: %w", err)
	}
	for _, key := range []string{"train", "sampler"} {
		if _, ok := root[key]; !ok {
			return c.Train, c.Sampler, run, fmt.Errorf("stored configuration: no %s section", key)
		}
	}
	if _, ok := root["run"]; ok {
		if len(c.Run.Budgets) > 0 {
			run.Budgets = c.Run.Budgets
		}
		run.Teacher = c.Run.Teacher
	}
	return c.Train, c.Sampler, run, nil
}

// replay counts the forward MACs of every subnet the sampler drew over the run's steps
// (a budget-aware sampler with rc's budgets).
func (r *supernetRun) replay(sc sampler.Config, rc RunConfig, a arch.Arch, space *arch.Space) {
	r.fixed = fixedSubnets(sc, rc, a, space)
	if !r.known || r.steps == 0 {
		return
	}
	if space == nil {
		r.source += "; the supernet has no search space, so its sampler cannot be replayed"
		r.known = false
		return
	}
	b, err := samplerBudgets(sc, rc, a)
	if err != nil {
		r.source += fmt.Sprintf("; its sampler's budgets cannot be read (%v)", err)
		r.known = false
		return
	}
	smp, err := sampler.NewForBudgets(sc, *space, r.steps, b)
	if err != nil {
		r.source += fmt.Sprintf("; its sampler cannot be replayed (%v)", err)
		r.known = false
		return
	}
	total := 0.0
	for step := 0; step < r.steps; step++ {
		for _, s := range smp.Sample(step) {
			total += float64(a.SubnetCost(s).MACs)
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
	per := r.macsPerExample + r.teacherMACs
	return report.Stage{Name: "supernet", Steps: r.steps, Batch: r.batch, MACsPerExample: per,
		MACs: float64(r.steps) * float64(r.batch) * per, Seconds: r.seconds, Untimed: !r.timed, Shared: true}
}

// notes describe the supernet's compute for the report.
func (r *supernetRun) notes() []string {
	if !r.known {
		return []string{"supernet compute unknown: " + r.source}
	}
	st := r.stage()
	n := fmt.Sprintf("supernet compute: %d steps x %d examples x %s training MACs per example and step (%s sampler: every subnet trained "+
		"at a step, forward and backward, replayed from the sampler", r.steps, r.batch, report.SI(st.MACsPerExample), r.sampler)
	if r.teacherMACs > 0 {
		n += fmt.Sprintf("; plus the fixed teacher's forward pass, %s MACs", report.SI(r.teacherMACs))
	}
	n += fmt.Sprintf("), %s training MACs in all; %s", report.SI(st.MACs), r.source)
	if !r.timed {
		n += "; its wall time was not measured in this run"
	}
	return []string{n}
}

// fixedSubnets are the subnets that a sampler of configuration sc with rc's budgets
// trains at every step for each budget (sampler.budget_fixed or budget_subnets), else nil.
func fixedSubnets(sc sampler.Config, rc RunConfig, a arch.Arch, space *arch.Space) []fixedSubnet {
	if space == nil || sc.Kind != sampler.KindBudgets || !sc.FixedBudgets() {
		return nil
	}
	b, err := samplerBudgets(sc, rc, a)
	if err != nil {
		return nil
	}
	smp, err := sampler.NewForBudgets(sc, *space, 0, b)
	if err != nil {
		return nil
	}
	var out []fixedSubnet
	for k, s := range sampler.FixedSubnets(smp) {
		out = append(out, fixedSubnet{limit: b.Limits[k], subnet: s})
	}
	return out
}
