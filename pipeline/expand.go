package pipeline

import (
	"encoding/json"
	"fmt"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/expand"
	"github.com/ofa-go/ofa/extract"
	"github.com/ofa-go/ofa/modelfile"
)

// Expand expands model m with the plan and transforms of c and checks on the verify batch
// that the expanded model computes exactly what m computes (every reused position starts
// as the identity). The result is a model of kind expanded that records its plan and
// transforms.
func Expand(m *modelfile.Model, c expand.Config, verify data.Batch) (*modelfile.Model, error) {
	plan, err := expand.ParsePlan(c.Plan, len(m.Arch.Layers))
	if err != nil {
		return nil, err
	}
	ea, ep, err := expand.Expand(m.Arch, m.Params, plan, c.Transforms)
	if err != nil {
		return nil, err
	}
	if _, err := extract.Verify(m.Arch, m.Params, arch.Largest(m.Arch), ea, ep, verify); err != nil {
		return nil, fmt.Errorf("expand: the expanded model does not reproduce the original: %w", err)
	}
	tj, err := json.Marshal(c.Transforms)
	if err != nil {
		return nil, err
	}
	extra := map[string]string{}
	for k, v := range m.Extra {
		extra[k] = v
	}
	extra[modelfile.KeyPlan], extra[modelfile.KeyTransforms] = plan.String(), string(tj)
	var prov *modelfile.Provenance
	if m.Provenance != nil {
		p := *m.Provenance
		p.Step = "expand"
		prov = &p
	}
	return &modelfile.Model{Kind: modelfile.KindExpanded, Arch: ea, Params: ep, Preprocess: m.Preprocess, Provenance: prov, Extra: extra}, nil
}

// VerifyBatch is a validation batch of ds for equivalence checks (50 examples).
func VerifyBatch(ds *Dataset, pre modelfile.Preprocess) (data.Batch, error) {
	var b data.Batch
	l, _, err := EvalLoader(ds.Val, 50, pre)
	if err != nil {
		return b, err
	}
	l.Batch(0, 0, &b)
	return b, nil
}
