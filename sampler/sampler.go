// Package sampler chooses the subnets trained at each step of once-for-all supernet
// training: the sandwich rule, uniform sampling, progressive shrinking and budget-aware
// sampling (a subnet at each deployment budget every step). It returns plain
// arch.Subnet values and holds no state, so it needs no numeric code.
//
// Every draw is a pure function of (seed, step, index): the index-th subnet of a step comes
// from its own generator rand.New(rand.NewPCG(seed, mix(step, index))), where
//
//	mix(step, index) = splitmix64(uint64(step)<<20 ^ uint64(index))
//
// and splitmix64 is Vigna's finaliser (add 0x9e3779b97f4a7c15, then xor-shift-multiply by
// 0xbf58476d1ce4e5b9 and 0x94d049bb133111eb). A shared stateful generator would make a
// step's subnets depend on how many draws came before it; with this scheme a resumed run
// draws exactly what an uninterrupted run would, steps may be sampled in any order or
// concurrently, and adding random subnets to a step leaves the earlier ones unchanged.
// With reuse-aware training (Config.Reuse > 0) whether the index-th draw is a reuse draw
// comes from a second generator, rand.NewPCG(seed ^ reuseSalt, mix(step, index)), so a
// sampler without reuse draws exactly what it drew before reuse existed.
// mix is a bijection on (step, index) for index < MaxDraws and step < 2^44, so no two draws
// share a stream. Changing mix, the PCG seeding or the order of draws in a subnet changes
// every run's subnets: testdata/sandwich.golden pins the stream.
package sampler

import (
	"fmt"
	"math/rand/v2"

	"github.com/ofa-go/ofa/arch"
)

// Sampler returns the subnets to train at a step; the first is always the teacher (the
// largest allowed at that step), so in-place distillation has a target.
type Sampler interface {
	// Sample returns the subnets to train at step (step >= 0; a negative step panics). The
	// result depends only on the sampler's fields and step, never on earlier calls, and the
	// caller owns it.
	Sample(step int) []arch.Subnet
	// Name is the sampler's kind as written in Config.Kind.
	Name() string
}

// indexBits is how many low bits of the mixed word carry the draw index.
const indexBits = 20

// MaxDraws bounds the number of subnets one step may return: the index of a draw must fit
// in the low indexBits bits of the mixed stream selector.
const MaxDraws = 1 << indexBits

// mix selects the random stream of the index-th draw of a step (see the package comment).
func mix(step, index int) uint64 {
	z := uint64(step)<<indexBits ^ uint64(index)
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// newRand returns the generator of one draw.
func newRand(seed uint64, step, index int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, mix(step, index)))
}

// draw returns a random subnet of sp: a depth uniformly from DepthChoices keeping the first
// layers (as Once-for-All does), then for each active layer in order its heads and then its
// MLP width, each uniformly and independently. The order of the calls is part of the stream.
func draw(sp arch.Space, r *rand.Rand) arch.Subnet {
	return drawLayers(sp, r, sp.DepthChoices[r.IntN(len(sp.DepthChoices))], 0)
}

// drawLayers returns the first d layers, each running repeat times (0: once), with for
// each layer in order its heads and then its MLP width drawn uniformly from sp.
func drawLayers(sp arch.Space, r *rand.Rand, d, repeat int) arch.Subnet {
	s := arch.Subnet{Layers: make([]arch.SubLayer, d)}
	for i := range s.Layers {
		h := sp.HeadChoices[r.IntN(len(sp.HeadChoices))]
		m := sp.MLPChoices[r.IntN(len(sp.MLPChoices))]
		s.Layers[i] = arch.SubLayer{Layer: i, Heads: h, MLP: m, Repeat: repeat}
	}
	return s
}

// reuseSalt separates the reuse decisions' streams from the draws' (ASCII "reuse").
const reuseSalt = 0x7265757365

// ReuseDraw returns a random subnet of sp whose every layer runs twice in a row: a depth
// uniformly from the depth choices d with 2d <= the largest depth (the smallest choice if
// none is), keeping the first layers, then each layer's heads and MLP width as draw does.
// Its positions use at most the largest subnet's depth, as an expansion of a half-depth,
// wider extraction with plan "repeat:2" does.
func ReuseDraw(sp arch.Space, r *rand.Rand) arch.Subnet {
	maxDepth := sp.DepthChoices[len(sp.DepthChoices)-1]
	var depths []int
	for _, d := range sp.DepthChoices {
		if 2*d <= maxDepth {
			depths = append(depths, d)
		}
	}
	if len(depths) == 0 {
		depths = sp.DepthChoices[:1]
	}
	return drawLayers(sp, r, depths[r.IntN(len(depths))], 2)
}

// randomDraw is the index-th random draw of a step: a reuse draw with probability reuse,
// else a uniform one.
func randomDraw(sp arch.Space, seed uint64, step, index int, reuse float64) arch.Subnet {
	if reuse > 0 && newRand(seed^reuseSalt, step, index).Float64() < reuse {
		return ReuseDraw(sp, newRand(seed, step, index))
	}
	return draw(sp, newRand(seed, step, index))
}

// single reports whether sp holds one subnet only; samplers then return just the teacher,
// since training the same subnet again in a step repeats its update (and distils it from
// itself).
func single(sp arch.Space) bool {
	return len(sp.DepthChoices) == 1 && len(sp.HeadChoices) == 1 && len(sp.MLPChoices) == 1
}

// sandwich returns the largest and smallest subnets of sp followed by random draws with
// indices 2..random+1 (each a reuse draw with probability reuse).
func sandwich(sp arch.Space, seed uint64, step, random int, reuse float64) []arch.Subnet {
	largest := sp.Largest()
	if single(sp) {
		return []arch.Subnet{largest}
	}
	out := make([]arch.Subnet, 0, 2+random)
	out = append(out, largest, sp.Smallest())
	for i := 2; i < 2+random; i++ {
		out = append(out, randomDraw(sp, seed, step, i, reuse))
	}
	return out
}

// checkStep panics on a negative step: steps count from 0, and a negative one is a bug in
// the caller's loop, not a configuration error.
func checkStep(step int) {
	if step < 0 {
		panic(fmt.Sprintf("sampler: negative step %d", step))
	}
}

// checkCount panics when a sampler built without New asks for a count of draws outside
// lo..hi.
func checkCount(field string, n, lo, hi int) {
	if n < lo || n > hi {
		panic(fmt.Sprintf("sampler: %s is %d, want %d..%d", field, n, lo, hi))
	}
}

// Sandwich is the sandwich rule (BigNAS, Once-for-All's elastic stage): each step trains the
// largest subnet, the smallest, then Random subnets drawn uniformly from Space. Training the
// two extremes every step keeps the whole range of sizes improving together. When Space
// holds a single subnet only that one is returned.
type Sandwich struct {
	Space  arch.Space
	Seed   uint64
	Random int
	// Reuse is the probability that a random draw is a ReuseDraw (Config.Reuse).
	Reuse float64
}

// Sample returns Largest, Smallest and Random uniform draws (draw indices 2, 3, ...).
func (s Sandwich) Sample(step int) []arch.Subnet {
	checkStep(step)
	checkCount("Sandwich.Random", s.Random, 0, MaxDraws-2)
	return sandwich(s.Space, s.Seed, step, s.Random, s.Reuse)
}

// Name is "sandwich".
func (Sandwich) Name() string { return KindSandwich }

// Uniform trains Count subnets drawn uniformly from Space each step, except that the first
// draw is replaced by the largest subnet so that distillation always has a teacher; the
// random draws have indices 1..Count-1. When Space holds a single subnet only that one is
// returned. Count must be at least 1.
type Uniform struct {
	Space arch.Space
	Seed  uint64
	Count int
	// Reuse is the probability that a random draw is a ReuseDraw (Config.Reuse).
	Reuse float64
}

// Sample returns Largest followed by Count-1 uniform draws.
func (u Uniform) Sample(step int) []arch.Subnet {
	checkStep(step)
	checkCount("Uniform.Count", u.Count, 1, MaxDraws)
	largest := u.Space.Largest()
	if single(u.Space) {
		return []arch.Subnet{largest}
	}
	out := make([]arch.Subnet, 0, u.Count)
	out = append(out, largest)
	for i := 1; i < u.Count; i++ {
		out = append(out, randomDraw(u.Space, u.Seed, step, i, u.Reuse))
	}
	return out
}

// Name is "uniform".
func (Uniform) Name() string { return KindUniform }

// Stage is one phase of progressive shrinking: the choices unlocked for steps before Until.
// Depth, Heads and MLP count the unlocked choices from the largest one (Heads=1: only the
// maximum head count; Heads=2: the two largest); 0 unlocks every choice, which keeps a
// schedule independent of the space's size.
type Stage struct {
	// Until is the first step not in this stage; 0 in the last stage means forever.
	Until int `mapstructure:"until" json:"until"`
	// Depth is the number of depth choices unlocked, from the largest; 0 means all.
	Depth int `mapstructure:"depth" json:"depth"`
	// Heads is the number of head choices unlocked, from the largest; 0 means all.
	Heads int `mapstructure:"heads" json:"heads"`
	// MLP is the number of MLP width choices unlocked, from the largest; 0 means all.
	MLP int `mapstructure:"mlp" json:"mlp"`
}

// Progressive is Once-for-All's progressive shrinking: the sandwich rule within the choices
// unlocked by the current stage, so the largest subnet is trained alone first and smaller
// ones join only once the large ones are good teachers. The unlocking order (say elastic
// depth, then MLP width, then heads) is whatever Stages says. Steps past the last stage's
// Until stay in the last stage; with no stages every choice is unlocked. For the same seed,
// step and unlocked space it draws exactly what Sandwich draws.
type Progressive struct {
	Space  arch.Space
	Seed   uint64
	Random int
	// Reuse is the probability that a random draw is a ReuseDraw (Config.Reuse).
	Reuse  float64
	Stages []Stage
}

// StageAt returns the index in Stages of the stage that step belongs to, or -1 when there
// are no stages.
func (p Progressive) StageAt(step int) int {
	checkStep(step)
	for i, st := range p.Stages {
		if st.Until == 0 || step < st.Until {
			return i
		}
	}
	return len(p.Stages) - 1
}

// Unlocked returns the part of Space that step may draw from: the largest choices of each
// list, as many as its stage unlocks. A stage unlocking more choices than Space has panics
// (New rejects it).
func (p Progressive) Unlocked(step int) arch.Space {
	i := p.StageAt(step)
	if i < 0 {
		return p.Space.Clone()
	}
	st := p.Stages[i]
	field := func(name string) string { return fmt.Sprintf("Progressive.Stages[%d].%s", i, name) }
	return arch.Space{
		HeadChoices:  unlock(field("Heads"), p.Space.HeadChoices, st.Heads),
		MLPChoices:   unlock(field("MLP"), p.Space.MLPChoices, st.MLP),
		DepthChoices: unlock(field("Depth"), p.Space.DepthChoices, st.Depth),
	}
}

// unlock returns a copy of the n largest of the increasing choices c (all of them for 0).
func unlock(field string, c []int, n int) []int {
	checkCount(field, n, 0, len(c))
	if n == 0 {
		n = len(c)
	}
	return append([]int(nil), c[len(c)-n:]...)
}

// Sample returns the largest subnet, the smallest unlocked one and Random uniform draws from
// the unlocked choices (draw indices 2, 3, ...).
func (p Progressive) Sample(step int) []arch.Subnet {
	checkStep(step)
	checkCount("Progressive.Random", p.Random, 0, MaxDraws-2)
	return sandwich(p.Unlocked(step), p.Seed, step, p.Random, p.Reuse)
}

// Name is "progressive".
func (Progressive) Name() string { return KindProgressive }

// Warm is a dense warm phase in front of another sampler: steps before Steps train the
// largest subnet of Space alone, later steps are Next's. The step numbers Next sees are
// the run's own, so a progressive schedule after a warm phase keeps its boundaries.
type Warm struct {
	Next  Sampler
	Space arch.Space
	Steps int
}

// Sample returns the largest subnet alone before Steps, else Next's subnets.
func (w Warm) Sample(step int) []arch.Subnet {
	checkStep(step)
	if step < w.Steps {
		return []arch.Subnet{w.Space.Largest()}
	}
	return w.Next.Sample(step)
}

// Name is Next's name: the warm phase is not a kind of its own.
func (w Warm) Name() string { return w.Next.Name() }
