package supernet

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/nn"
	"gorgonia.org/tensor"
)

func newParamsWith(t *testing.T, a arch.Arch, seed uint64, o InitOptions) *Params {
	t.Helper()
	p, err := NewParamsWith(a, tensor.Float64, seed, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sameTensor(p, q *Params, name string) bool {
	return slices.Equal(p.Get(name).Float64s(), q.Get(name).Float64s())
}

// TestInitDefaultIsNewParams: the zero options and the explicit trunc_normal scheme give
// NewParams' weights bit for bit, so existing callers and checkpoints are unaffected.
func TestInitDefaultIsNewParams(t *testing.T) {
	a := tinyArch()
	want, err := NewParams(a, tensor.Float64, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []InitOptions{{}, {Scheme: SchemeTruncNormal}} {
		got := newParamsWith(t, a, 5, o)
		for _, name := range want.Names() {
			if !sameTensor(got, want, name) {
				t.Errorf("%+v: %s differs from NewParams", o, name)
			}
		}
	}
}

// TestInitPyTorch: every linear map's weight and bias is uniform in ±1/sqrt(fan_in) (its
// mean square within six standard errors of bound²/3); every other tensor is exactly what
// the default initialisation gives.
func TestInitPyTorch(t *testing.T) {
	a := arch.Default()
	def := newParamsWith(t, a, 3, InitOptions{})
	p := newParamsWith(t, a, 3, InitOptions{Scheme: SchemePyTorch})
	fan := map[string]int{}
	for _, s := range Spec(a) {
		if s.Decay {
			fan[s.Name] = s.Shape[1]
			fan[strings.TrimSuffix(s.Name, ".weight")+".bias"] = s.Shape[1]
		}
	}
	linear := 0
	for _, name := range p.Names() {
		v := p.Get(name).Float64s()
		f, ok := fan[name]
		if !ok {
			if !sameTensor(p, def, name) {
				t.Errorf("%s is not a linear map's but differs from the default initialisation", name)
			}
			continue
		}
		linear++
		bound := 1 / math.Sqrt(float64(f))
		var ms float64
		for _, x := range v {
			if math.Abs(x) > bound {
				t.Fatalf("%s: %g outside ±%g", name, x, bound)
			}
			ms += x * x
		}
		n := float64(len(v))
		ms /= n
		want := bound * bound / 3
		se := math.Sqrt(4.0/45/n) * bound * bound // std of the mean of x² for x ~ U(-b, b)
		if math.Abs(ms-want) > 6*se {
			t.Errorf("%s: mean square %g, want %g ± %g", name, ms, want, 6*se)
		}
	}
	if want := 2 * (2 + 4*len(a.Layers)); linear != want {
		t.Errorf("%d tensors of linear maps, want %d (patch embedding, 4 per block, head; weight and bias)", linear, want)
	}
}

// TestZeroInitResidual: the last map of every residual branch starts at zero, nothing else
// changes, and so every subnet first computes the same function (each block is the
// identity).
func TestZeroInitResidual(t *testing.T) {
	a := tinyArch()
	for _, scheme := range []string{SchemeTruncNormal, SchemePyTorch} {
		plain := newParamsWith(t, a, 4, InitOptions{Scheme: scheme})
		p := newParamsWith(t, a, 4, InitOptions{Scheme: scheme, ZeroInitResidual: true})
		zeroed := 0
		for _, name := range p.Names() {
			residual := strings.HasPrefix(name, "blocks.") &&
				(strings.Contains(name, ".attn.proj.") || strings.Contains(name, ".mlp.fc2."))
			if !residual {
				if !sameTensor(p, plain, name) {
					t.Errorf("%s: %s changed", scheme, name)
				}
				continue
			}
			zeroed++
			for _, x := range p.Get(name).Float64s() {
				if x != 0 {
					t.Fatalf("%s: %s holds %g, want 0", scheme, name, x)
				}
			}
		}
		if want := 4 * len(a.Layers); zeroed != want {
			t.Errorf("%s: %d residual tensors, want %d", scheme, zeroed, want)
		}
		images := randomImages(a, 2, 4)
		want := forward(t, a, p, arch.Largest(a), images, 2, nn.Fused{})
		small := arch.Subnet{Layers: []arch.SubLayer{{Layer: 0, Heads: 1, MLP: 1}}}
		assertClose(t, scheme+": smallest vs largest", forward(t, a, p, small, images, 2, nn.Fused{}), want, 1e-12)
	}
}

func TestInitRejectsUnknownScheme(t *testing.T) {
	if _, err := NewParamsWith(tinyArch(), tensor.Float32, 1, InitOptions{Scheme: "xavier"}); err == nil ||
		!strings.Contains(err.Error(), "xavier") {
		t.Fatalf("got %v, want an error naming the scheme", err)
	}
}
