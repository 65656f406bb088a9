package onnx

import (
	"encoding/json"
	"fmt"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/modelfile"
)

// ExportModel is Export for a model file's model: subnet s of a supernet, or the whole
// model of any other kind (extracted, expanded, fine-tuned), for which s must be
// arch.Largest(m.Arch). The file records the model's kind, its preprocessing metadata and
// its class names when the checkpoint has them.
func ExportModel(m *modelfile.Model, s arch.Subnet, producerVersion string) ([]byte, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: no model", ErrExport)
	}
	switch m.Kind {
	case modelfile.KindSupernet:
	case modelfile.KindExtracted, modelfile.KindExpanded, modelfile.KindFinetuned, modelfile.KindDense:
		if !s.Equal(arch.Largest(m.Arch)) {
			return nil, fmt.Errorf("%w: subnet %s of a %s model: only a supernet exports a subnet; this model exports as a whole (largest)",
				ErrExport, s.Key(), m.Kind)
		}
	default:
		return nil, fmt.Errorf("%w: model kind %q, want supernet, extracted, expanded, finetuned or dense", ErrExport, m.Kind)
	}
	pre, err := json.Marshal(m.Preprocess)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding the preprocessing metadata: %w", ErrExport, err)
	}
	return Export(m.Arch, m.Float32Params(), s, Options{Kind: m.Kind, Preprocess: string(pre),
		Classes: m.Extra[modelfile.KeyClasses], ProducerVersion: producerVersion})
}
