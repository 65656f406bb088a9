package arch

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// SubLayer is one active block of a subnet: which stored layer it runs and how many of that
// layer's leading heads and MLP neurons it uses.
type SubLayer struct {
	Layer int `json:"layer"`
	Heads int `json:"heads"`
	MLP   int `json:"mlp"`
	// Repeat runs the block this many times in a row with the same weights and norms (0
	// and 1: once). Reuse-aware supernet training samples such subnets so that a layer
	// learns to be applied twice, as an expanded model's reused positions apply it (see
	// sampler.Config.Reuse); extraction and export take subnets without repeats.
	Repeat int `json:"repeat,omitempty"`
}

// MaxRepeat bounds SubLayer.Repeat.
const MaxRepeat = 4

// Runs is how many times the block runs: Repeat, or 1 when Repeat is 0.
func (l SubLayer) Runs() int {
	if l.Repeat > 1 {
		return l.Repeat
	}
	return 1
}

// Subnet selects, for each active layer (in increasing layer order), the number of leading
// heads and MLP neurons. Layers not listed are skipped (depth reduction). A subnet is a plain
// value passed explicitly to whatever runs it; the weights hold no "active subnet".
type Subnet struct {
	Layers []SubLayer `json:"layers"`
}

// Largest is the subnet that uses every unit of every layer of a.
func Largest(a Arch) Subnet {
	s := Subnet{Layers: make([]SubLayer, len(a.Layers))}
	for i, l := range a.Layers {
		s.Layers[i] = SubLayer{Layer: i, Heads: l.Heads, MLP: l.MLP}
	}
	return s
}

// Depth is the number of active layers.
func (s Subnet) Depth() int { return len(s.Layers) }

// Validate checks the subnet against a's stored sizes; errors name the offending entry.
func (s Subnet) Validate(a Arch) error {
	if len(s.Layers) == 0 {
		return fmt.Errorf("%w: subnet: depth is 0, want at least 1 layer", ErrArch)
	}
	if a.Expanded() {
		if !s.Equal(Largest(a)) {
			return fmt.Errorf("%w: subnet: an expanded model runs only as a whole (its largest subnet)", ErrArch)
		}
		return nil
	}
	prev := -1
	for i, l := range s.Layers {
		if l.Layer <= prev || l.Layer >= len(a.Layers) {
			return fmt.Errorf("%w: subnet.layers[%d].layer: got %d, want increasing indices in %d..%d",
				ErrArch, i, l.Layer, prev+1, len(a.Layers)-1)
		}
		prev = l.Layer
		max := a.Layers[l.Layer]
		if l.Heads < 1 || l.Heads > max.Heads {
			return fmt.Errorf("%w: subnet.layers[%d].heads: got %d, layer %d allows 1..%d",
				ErrArch, i, l.Heads, l.Layer, max.Heads)
		}
		if l.MLP < 1 || l.MLP > max.MLP {
			return fmt.Errorf("%w: subnet.layers[%d].mlp: got %d, layer %d allows 1..%d",
				ErrArch, i, l.MLP, l.Layer, max.MLP)
		}
		if l.Repeat < 0 || l.Repeat > MaxRepeat {
			return fmt.Errorf("%w: subnet.layers[%d].repeat: got %d, want 0..%d",
				ErrArch, i, l.Repeat, MaxRepeat)
		}
	}
	return nil
}

// Repeats reports whether some block of s runs more than once.
func (s Subnet) Repeats() bool {
	for _, l := range s.Layers {
		if l.Runs() > 1 {
			return true
		}
	}
	return false
}

// Positions is the number of blocks s runs, repeats counted.
func (s Subnet) Positions() int {
	n := 0
	for _, l := range s.Layers {
		n += l.Runs()
	}
	return n
}

// Equal reports whether two subnets select the same units.
func (s Subnet) Equal(o Subnet) bool {
	if len(s.Layers) != len(o.Layers) {
		return false
	}
	for i, l := range s.Layers {
		m := o.Layers[i]
		if l.Layer != m.Layer || l.Heads != m.Heads || l.MLP != m.MLP || l.Runs() != m.Runs() {
			return false
		}
	}
	return true
}

// Key is a canonical, human-readable identifier such as "0:h4m256,1:h2m128" ("x2" follows
// a block that runs twice: "0:h4m256x2").
func (s Subnet) Key() string {
	parts := make([]string, len(s.Layers))
	for i, l := range s.Layers {
		parts[i] = strconv.Itoa(l.Layer) + ":h" + strconv.Itoa(l.Heads) + "m" + strconv.Itoa(l.MLP)
		if l.Runs() > 1 {
			parts[i] += "x" + strconv.Itoa(l.Runs())
		}
	}
	return strings.Join(parts, ",")
}

// String is Key.
func (s Subnet) String() string { return s.Key() }

// Clone returns a deep copy.
func (s Subnet) Clone() Subnet { return Subnet{Layers: append([]SubLayer(nil), s.Layers...)} }

// ParseSubnet decodes a subnet from JSON ({"layers":[{"layer":0,"heads":4,"mlp":256},...]}),
// rejecting unknown fields and anything after the JSON object, and validates it against a.
func ParseSubnet(data []byte, a Arch) (Subnet, error) {
	var s Subnet
	if err := decodeStrict(string(data), &s); err != nil {
		return Subnet{}, fmt.Errorf("%w: subnet JSON: %w", ErrArch, err)
	}
	return s, s.Validate(a)
}

// Space is the elastic search space of a supernet: the choices the sampler draws from. The
// maximum of each choice list must equal the supernet's stored size; subnets outside the
// choices are still valid to run and extract (any count from 1 to the maximum).
type Space struct {
	HeadChoices  []int `json:"head_choices" mapstructure:"head_choices"`
	MLPChoices   []int `json:"mlp_choices" mapstructure:"mlp_choices"`
	DepthChoices []int `json:"depth_choices" mapstructure:"depth_choices"`
}

// DefaultSpace returns the search space used with Default(): 1-4 heads, MLP 64-256, depth 2-4.
func DefaultSpace() Space {
	return Space{HeadChoices: []int{1, 2, 3, 4}, MLPChoices: []int{64, 128, 192, 256}, DepthChoices: []int{2, 3, 4}}
}

// Validate checks the space against a supernet architecture (uniform layers).
func (sp Space) Validate(a Arch) error {
	if a.Expanded() {
		return fmt.Errorf("%w: an expanded model is not a supernet", ErrArch)
	}
	for i, l := range a.Layers {
		if l != a.Layers[0] {
			return fmt.Errorf("%w: layers[%d] is %+v but layers[0] is %+v: a supernet has uniform layers",
				ErrArch, i, l, a.Layers[0])
		}
	}
	check := func(name string, c []int, max int) error {
		if len(c) == 0 {
			return fmt.Errorf("%w: space.%s is empty", ErrArch, name)
		}
		if !sort.IntsAreSorted(c) {
			return fmt.Errorf("%w: space.%s %v must be increasing", ErrArch, name, c)
		}
		for i, v := range c {
			if v < 1 || (i > 0 && v == c[i-1]) {
				return fmt.Errorf("%w: space.%s %v must hold distinct positive values", ErrArch, name, c)
			}
		}
		if c[len(c)-1] != max {
			return fmt.Errorf("%w: space.%s %v must end at the supernet's size %d", ErrArch, name, c, max)
		}
		return nil
	}
	if err := check("head_choices", sp.HeadChoices, a.Layers[0].Heads); err != nil {
		return err
	}
	if err := check("mlp_choices", sp.MLPChoices, a.Layers[0].MLP); err != nil {
		return err
	}
	return check("depth_choices", sp.DepthChoices, len(a.Layers))
}

// Smallest is the subnet with the smallest choice everywhere (the first layers are kept).
func (sp Space) Smallest() Subnet {
	return sp.uniform(sp.DepthChoices[0], sp.HeadChoices[0], sp.MLPChoices[0])
}

// Largest is the subnet with the largest choice everywhere.
func (sp Space) Largest() Subnet {
	return sp.uniform(sp.DepthChoices[len(sp.DepthChoices)-1], sp.HeadChoices[len(sp.HeadChoices)-1],
		sp.MLPChoices[len(sp.MLPChoices)-1])
}

// Middle is the subnet with the middle choice everywhere (used to monitor training).
func (sp Space) Middle() Subnet {
	return sp.uniform(sp.DepthChoices[len(sp.DepthChoices)/2], sp.HeadChoices[len(sp.HeadChoices)/2],
		sp.MLPChoices[len(sp.MLPChoices)/2])
}

func (sp Space) uniform(depth, heads, mlp int) Subnet {
	s := Subnet{Layers: make([]SubLayer, depth)}
	for i := range s.Layers {
		s.Layers[i] = SubLayer{Layer: i, Heads: heads, MLP: mlp}
	}
	return s
}

// Clone returns a deep copy.
func (sp Space) Clone() Space {
	return Space{HeadChoices: append([]int(nil), sp.HeadChoices...), MLPChoices: append([]int(nil), sp.MLPChoices...),
		DepthChoices: append([]int(nil), sp.DepthChoices...)}
}
