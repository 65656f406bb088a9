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
// that the expansion with closed gates computes exactly what m computes (every reused
// position starts as the identity). With c.InitGate 0 (the default) that model is the
// result; with another starting gate the reused positions of the result start open, so it
// no longer computes what m computes: the check then covers the shared weights and the
// transforms, and the gates are set after it. The result is a model of kind expanded that
// records its plan and transforms (and its starting gate when not 0).
func Expand(m *modelfile.Model, c expand.Config, verify data.Batch) (*modelfile.Model, error) {
	plan, err := expand.ParsePlan(c.Plan, len(m.Arch.Layers))
	if err != nil {
		return nil, err
	}
	if err := expand.ValidateGate(c.InitGate); err != nil {
		return nil, err
	}
	ea, ep, err := expand.Expand(m.Arch, m.Params, plan, c.Transforms)
	if err != nil {
		return nil, err
	}
	if _, err := extract.Verify(m.Arch, m.Params, arch.Largest(m.Arch), ea, ep, verify); err != nil {
		return nil, fmt.Errorf("expand: the expanded model does not reproduce the original: %w", err)
	}
	if c.InitGate != 0 {
		if ea, ep, err = expand.ExpandGated(m.Arch, m.Params, plan, c.Transforms, c.InitGate); err != nil {
			return nil, err
		}
	}
	tj, err := json.Marshal(struct {
		expand.Transforms
		InitGate float64 `json:"init_gate,omitempty"`
	}{c.Transforms, c.InitGate})
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
	return &modelfile.Model{Kind: modelfile.KindExpanded, Arch: ea, Params: ep, Preprocess: m.Preprocess, Provenance: prov, Data: m.Data, Extra: extra}, nil
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
