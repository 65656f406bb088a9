package arch

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// fuzzArchs are valid architectures of every kind: a supernet, an extracted model with
// layers of different sizes, a speech model and an expanded model.
func fuzzArchs() []Arch {
	extracted := Default()
	extracted.Layers = []Layer{{Heads: 2, MLP: 96}, {Heads: 4, MLP: 17}, {Heads: 1, MLP: 1}}
	speech := Default()
	speech.Task, speech.InHeight, speech.InWidth, speech.PatchHeight, speech.PatchWidth = TaskSpeech, 40, 96, 8, 8
	expanded := extracted.Clone()
	expanded.Positions = []Position{{Layer: 0}, {Layer: 0, Affine: true, LowRank: 4, HeadMix: true}, {Layer: 1}, {Layer: 2}, {Layer: 1, Affine: true}}
	return []Arch{Default(), extracted, speech, expanded}
}

// FuzzParseArch: ParseArch reads checkpoint metadata, which may be hostile. It must not
// panic, must refuse with ErrArch, and what it accepts must be one valid JSON value that
// validates and survives a round trip through its canonical encoding.
func FuzzParseArch(f *testing.F) {
	for _, a := range fuzzArchs() {
		f.Add(a.JSON())
	}
	f.Add(`{"task":"image","layers":[]}`)
	f.Add(`{"positions":[{"layer":-1}]}`)
	f.Add(Default().JSON() + ` {}`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseArch(s)
		if err != nil {
			if !errors.Is(err, ErrArch) {
				t.Fatalf("error %v does not wrap ErrArch", err)
			}
			return
		}
		if !json.Valid([]byte(s)) {
			t.Fatalf("accepted %q, which is not one JSON value", s)
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("accepted an invalid architecture: %v", err)
		}
		if err := Largest(a).Validate(a); err != nil {
			t.Fatalf("the largest subnet of an accepted architecture is invalid: %v", err)
		}
		canon := a.JSON()
		b, err := ParseArch(canon)
		if err != nil {
			t.Fatalf("canonical encoding %s refused: %v", canon, err)
		}
		if b.JSON() != canon {
			t.Fatalf("round trip changed %s into %s", canon, b.JSON())
		}
		// counts past the limits would mean int64 overflow went unnoticed
		if c := a.ModelCost(); c.Params <= 0 || c.MACs <= 0 || c.Params > maxParams || c.MACs > maxMACs {
			t.Fatalf("accepted architecture costs %+v", c)
		}
	})
}

// FuzzParseSubnet: ParseSubnet reads subnets from checkpoint metadata and manifests. It
// must not panic, must refuse with ErrArch, and what it accepts must be one valid JSON
// value, valid for the architecture and unchanged by a round trip.
func FuzzParseSubnet(f *testing.F) {
	archs := fuzzArchs()
	for i, a := range archs {
		f.Add([]byte(mustJSON(Largest(a))), uint8(i))
	}
	f.Add([]byte(`{"layers":[{"layer":0,"heads":1,"mlp":64},{"layer":3,"heads":4,"mlp":256}]}`), uint8(0))
	f.Add([]byte(`{"layers":[{"layer":1,"heads":3,"mlp":17}]}`), uint8(1))
	f.Add([]byte(mustJSON(DefaultSpace().Smallest())), uint8(0))
	f.Add([]byte(`{"layers":[{"layer":1,"heads":2,"mlp":10}]}{"layers":[]}`), uint8(0))
	f.Add([]byte(`{"layers":[{"layer":0,"heads":0,"mlp":1}]}`), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		a := archs[int(which)%len(archs)]
		s, err := ParseSubnet(data, a)
		if err != nil {
			if !errors.Is(err, ErrArch) {
				t.Fatalf("error %v does not wrap ErrArch", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted %q, which is not one JSON value", data)
		}
		if err := s.Validate(a); err != nil {
			t.Fatalf("accepted an invalid subnet: %v", err)
		}
		canon := mustJSON(s)
		back, err := ParseSubnet([]byte(canon), a)
		if err != nil {
			t.Fatalf("canonical encoding %s refused: %v", canon, err)
		}
		if !back.Equal(s) || back.Key() != s.Key() {
			t.Fatalf("round trip changed %s into %s", s.Key(), back.Key())
		}
		if c := a.SubnetCost(s); !a.Expanded() && (c.Params <= 0 || c.MACs <= 0 || c.Params > maxParams || c.MACs > maxMACs) {
			t.Fatalf("accepted subnet costs %+v", c)
		}
	})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestParsersRefuseWhatTheFuzzersFound: data after the JSON value (once silently ignored)
// and a model whose counts overflow int64 (every field within its own limit).
func TestParsersRefuseWhatTheFuzzersFound(t *testing.T) {
	if _, err := ParseArch(Default().JSON() + ` {"dim":8}`); !errors.Is(err, ErrArch) || !strings.Contains(err.Error(), "after the JSON value") {
		t.Errorf("trailing architecture: %v", err)
	}
	if _, err := ParseArch(Default().JSON() + "\n"); err != nil {
		t.Errorf("trailing newline: %v", err)
	}
	if _, err := ParseSubnet([]byte(`{"layers":[{"layer":0,"heads":1,"mlp":1}]}]`), Default()); !errors.Is(err, ErrArch) {
		t.Errorf("trailing bracket: %v", err)
	}
	huge := Default()
	huge.InHeight, huge.InWidth, huge.PatchHeight, huge.PatchWidth, huge.Dim, huge.HeadDim = 4096, 4096, 1, 1, 8192, 8192
	huge.Layers = Uniform(256, Layer{Heads: 256, MLP: 65536})
	if err := huge.Validate(); !errors.Is(err, ErrArch) || !strings.Contains(err.Error(), "MACs per example") {
		t.Errorf("huge model: %v", err)
	}
}
