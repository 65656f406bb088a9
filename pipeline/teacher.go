package pipeline

import (
	"fmt"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/config"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/sampler"
)

// TeacherDense is the run.teacher value that trains the dense model first and distils
// every model of the run from it.
const TeacherDense = config.TeacherDense

// SamplerBudgets are the run's budgets (run.budgets) as the limits a "budgets" sampler
// trains supernet a for; other sampler kinds get none. Latency limits are left out (the
// sampler costs subnets by parameters and MACs).
func SamplerBudgets(cfg Config, a arch.Arch) (sampler.Budgets, error) {
	return samplerBudgets(cfg.Sampler, cfg.Run, a)
}

func samplerBudgets(sc sampler.Config, rc RunConfig, a arch.Arch) (sampler.Budgets, error) {
	if sc.Kind != sampler.KindBudgets {
		return sampler.Budgets{}, nil
	}
	targets, err := rc.Targets()
	if err != nil {
		return sampler.Budgets{}, err
	}
	b := sampler.Budgets{Arch: a}
	for i, t := range targets {
		r := extract.Resolve(t, a)
		if r.Params <= 0 && r.MACs <= 0 {
			return b, fmt.Errorf("%w: sampler.kind %q: run.budgets[%d] %q limits neither parameters nor MACs", ErrConfig,
				sampler.KindBudgets, i, rc.Budgets[i])
		}
		b.Limits = append(b.Limits, sampler.Limit{Params: r.Params, MACs: r.MACs})
	}
	return b, nil
}

// LoadTeacher reads the model file of run.teacher and checks that it reads the data's
// inputs and classes.
func LoadTeacher(path string, ds *Dataset) (*modelfile.Model, error) {
	m, err := modelfile.Load(path)
	if err != nil {
		return nil, fmt.Errorf("run.teacher: %w", err)
	}
	if err := ds.CheckModel("the teacher (run.teacher "+path+")", m); err != nil {
		return nil, err
	}
	return m, nil
}

// teacherMACs is the forward MACs per example of teacher m (0 for none).
func teacherMACs(m *modelfile.Model) float64 {
	if m == nil {
		return 0
	}
	return float64(m.Arch.SubnetCost(arch.Largest(m.Arch)).MACs)
}
