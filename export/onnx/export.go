// Package onnx exports a model of this tool as an ONNX model (opset 17, IR version 8) that
// any ONNX runtime can run: a supernet's subnet, an extracted or fine-tuned model, or an
// expanded model with layer reuse and every feature transform. The graph computes the
// same function as supernet.Build: input "input" (batch, C, H, W) holding the normalised
// input, output "logits" (batch, classes); docs/DEPLOY.md says how to feed and run it.
//
// Weights become initializers named like the checkpoint's tensors (docs/FORMAT.md), so an
// expanded model's shared layers are stored once and read by every position that runs them.
// The protobuf messages come from ONNX's own onnx.proto (package onnxpb).
package onnx

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/checkpoint"
	"github.com/ofa-go/ofa/export/onnx/onnxpb"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/supernet"
	"google.golang.org/protobuf/proto"
)

// Names and versions of the exported graph's interface.
const (
	// InputName is the graph input: float32 (batch, C, H, W), the normalised input.
	InputName = "input"
	// OutputName is the graph output: float32 (batch, classes), the logits.
	OutputName = "logits"
	// BatchDim is the symbolic name of the dynamic first dimension of input and output.
	BatchDim = "batch"
	// Opset is the version of the default ONNX operator set the graph uses (17 is the first
	// with LayerNormalization).
	Opset = 17
	// IRVersion is the ONNX IR version of the file (8, the version paired with opset 17).
	IRVersion = 8
	// ProducerName is the ModelProto's producer_name.
	ProducerName = "ofa"
)

// Metadata keys (ModelProto.metadata_props) of an exported model.
const (
	// KeyKind is the model's kind as in its checkpoint: supernet, extracted, expanded or
	// finetuned.
	KeyKind = "kind"
	// KeyArch is the architecture the graph computes, as the checkpoint's arch JSON. For a
	// proper subnet of a supernet it is that subnet as an extracted model (its layers have
	// the subnet's sizes), so it describes the graph's own tensors.
	KeyArch = "arch"
	// KeySourceArch is the supernet's architecture, written only for a proper subnet.
	KeySourceArch = "source_arch"
	// KeySubnet is the exported subnet of the supernet (JSON {"layers":[...]}), written only
	// for a proper subnet.
	KeySubnet = "subnet"
	// KeyPreprocess is the checkpoint's preprocessing JSON ({"mean": m, "std": s, ...}),
	// written when Options.Preprocess is set.
	KeyPreprocess = "preprocess"
	// KeyClasses is the class names in label order (JSON list of strings), the checkpoint's
	// "classes" metadata, written when Options.Classes is set.
	KeyClasses = "classes"
)

// ErrExport is wrapped by every error about a model that cannot be exported.
var ErrExport = errors.New("onnx export")

// Options are what the exported file records besides the graph.
type Options struct {
	// Kind is the model's kind (KeyKind); required.
	Kind string
	// Preprocess is the checkpoint's preprocessing metadata, JSON, recorded verbatim under
	// KeyPreprocess; empty omits it.
	Preprocess string
	// Classes is the checkpoint's class names, a JSON list of strings recorded verbatim
	// under KeyClasses; empty omits it.
	Classes string
	// ProducerVersion is the ModelProto's producer_version (the tool's version); optional.
	ProducerVersion string
}

// Export returns the serialized ONNX ModelProto of subnet s of the model (a, p). For
// extracted, fine-tuned and expanded models s is arch.Largest(a); for a supernet any valid
// subnet, whose leading heads and neurons the graph's weights hold (the same slices
// `ofa extract` would copy out).
func Export(a arch.Arch, p *supernet.Params, s arch.Subnet, opts Options) ([]byte, error) {
	m, err := Model(a, p, s, opts)
	if err != nil {
		return nil, err
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding the model: %w", ErrExport, err)
	}
	return b, nil
}

// Model is Export without the serialization: the ModelProto itself.
func Model(a arch.Arch, p *supernet.Params, s arch.Subnet, opts Options) (*onnxpb.ModelProto, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrExport, err)
	}
	if err := s.Validate(a); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrExport, err)
	}
	if p == nil || p.Len() == 0 {
		return nil, fmt.Errorf("%w: no weights", ErrExport)
	}
	if opts.Kind == "" {
		return nil, fmt.Errorf("%w: Options.Kind is empty; want the model's kind (supernet, extracted, expanded, finetuned or dense)", ErrExport)
	}
	if opts.Preprocess != "" && !json.Valid([]byte(opts.Preprocess)) {
		return nil, fmt.Errorf("%w: Options.Preprocess is not JSON: %q", ErrExport, opts.Preprocess)
	}
	if opts.Classes != "" {
		if _, err := modelfile.DecodeClasses(opts.Classes, a.Classes); err != nil {
			return nil, fmt.Errorf("%w: Options.Classes %q: want a JSON list of %d class names (%v)", ErrExport, opts.Classes, a.Classes, err)
		}
	}
	g, err := buildGraph(a, p, s)
	if err != nil {
		return nil, err
	}

	own := a
	meta := []*onnxpb.StringStringEntryProto{{Key: proto.String(KeyKind), Value: proto.String(opts.Kind)}}
	if !a.Expanded() && !s.Equal(arch.Largest(a)) {
		own = a.Clone()
		own.Layers = nil
		for _, l := range s.Layers {
			own.Layers = append(own.Layers, arch.Layer{Heads: l.Heads, MLP: l.MLP})
		}
		sj, err := json.Marshal(s)
		if err != nil {
			return nil, fmt.Errorf("%w: encoding the subnet: %w", ErrExport, err)
		}
		meta = append(meta,
			&onnxpb.StringStringEntryProto{Key: proto.String(KeySourceArch), Value: proto.String(a.JSON())},
			&onnxpb.StringStringEntryProto{Key: proto.String(KeySubnet), Value: proto.String(string(sj))})
	}
	meta = append(meta, &onnxpb.StringStringEntryProto{Key: proto.String(KeyArch), Value: proto.String(own.JSON())})
	if opts.Preprocess != "" {
		meta = append(meta, &onnxpb.StringStringEntryProto{Key: proto.String(KeyPreprocess), Value: proto.String(opts.Preprocess)})
	}
	if opts.Classes != "" {
		meta = append(meta, &onnxpb.StringStringEntryProto{Key: proto.String(KeyClasses), Value: proto.String(opts.Classes)})
	}

	m := &onnxpb.ModelProto{
		IrVersion:       proto.Int64(IRVersion),
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}},
		ProducerName:    proto.String(ProducerName),
		ProducerVersion: proto.String(opts.ProducerVersion),
		DocString: proto.String(fmt.Sprintf("ofa %s model (%s task). Input %q: float32 (%s, %d, %d, %d), NCHW, "+
			"already normalised (see metadata %q). Output %q: float32 (%s, %d), logits.",
			opts.Kind, a.Task, InputName, BatchDim, a.InChannels, a.InHeight, a.InWidth, KeyPreprocess,
			OutputName, BatchDim, a.Classes)),
		Graph:         g,
		MetadataProps: meta,
	}
	return m, nil
}

// WriteFile writes an exported model (Export's bytes) to path atomically: into a temporary
// file in the same directory, synced and closed, then renamed over path, and the directory
// synced, so readers and crashes see either the old file or the complete new one. On error
// the temporary file is removed. A replaced file keeps its permission bits; a new one gets
// 0644 (checkpoint.WriteFileAtomic, whose temporary files a later command cleans up after
// a crash).
func WriteFile(path string, model []byte) error {
	if err := checkpoint.WriteFileAtomic(path, model, 0o644); err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	return nil
}
