package extract

import (
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/ofa-go/ofa/arch"
)

// SearchConfig configures the evolutionary search (Once-for-All style) for the most
// accurate subnet within a budget.
type SearchConfig struct {
	// Population is the number of candidates per generation; Generations the number of
	// generations after the first (0 disables the search: the greedy selection is used).
	Population  int `mapstructure:"population" json:"population"`
	Generations int `mapstructure:"generations" json:"generations"`
	// Parents is the fraction of each generation kept as parents.
	Parents float64 `mapstructure:"parents" json:"parents"`
	// Mutation is the probability that a gene (a layer's heads or width, or the depth)
	// is redrawn in a mutated child; half of each new generation comes from mutation and
	// half from crossover of two parents.
	Mutation float64 `mapstructure:"mutation" json:"mutation"`
	// MLPStep is the granularity of MLP widths drawn by the search.
	MLPStep int `mapstructure:"mlp_step" json:"mlp_step"`
	// Seed makes the search reproducible.
	Seed uint64 `mapstructure:"seed" json:"seed"`
}

// DefaultSearch is a small search: 16 candidates for 6 generations.
func DefaultSearch() SearchConfig {
	return SearchConfig{Population: 16, Generations: 6, Parents: 0.25, Mutation: 0.3, MLPStep: 8, Seed: 1}
}

// Validate checks ranges; errors name the key.
func (c SearchConfig) Validate() error {
	switch {
	case c.Generations < 0:
		return fmt.Errorf("%w: extract.search.generations: got %d, want >= 0", ErrExtract, c.Generations)
	case c.Generations > 0 && c.Population < 4:
		return fmt.Errorf("%w: extract.search.population: got %d, want >= 4", ErrExtract, c.Population)
	case !(c.Parents > 0 && c.Parents <= 1):
		return fmt.Errorf("%w: extract.search.parents: got %g, want in (0, 1]", ErrExtract, c.Parents)
	case !(c.Mutation >= 0 && c.Mutation <= 1):
		return fmt.Errorf("%w: extract.search.mutation: got %g, want in [0, 1]", ErrExtract, c.Mutation)
	case c.MLPStep < 1:
		return fmt.Errorf("%w: extract.search.mlp_step: got %d, want >= 1", ErrExtract, c.MLPStep)
	}
	return nil
}

// Fitness scores a candidate (higher is better): the supernet's accuracy on a validation
// split for that subnet.
type Fitness func(arch.Subnet) (float64, error)

// Candidate is one evaluated subnet.
type Candidate struct {
	Subnet   arch.Subnet `json:"subnet"`
	Cost     Cost        `json:"cost"`
	Accuracy float64     `json:"val_accuracy"`
}

// Generation summarises one generation of the search.
type Generation struct {
	Index int       `json:"generation"`
	Best  Candidate `json:"best"`
	Mean  float64   `json:"mean_val_accuracy"`
}

// Evolve searches for the most accurate subnet within budget b. start (e.g. the greedy
// selection) joins the first generation; every candidate respects the floors and the budget.
func Evolve(cm CostModel, s *Scores, b Budget, f Floors, mode string, cfg SearchConfig, start []arch.Subnet, fit Fitness) (Candidate, []Generation, error) {
	if err := cfg.Validate(); err != nil {
		return Candidate{}, nil, err
	}
	e := &evolver{cm: cm, s: s, b: b, f: f, mode: mode, cfg: cfg, fit: fit, seen: map[string]float64{},
		r: rand.New(rand.NewPCG(cfg.Seed, 0x5eed))}
	var pop []Candidate
	for _, st := range start {
		c, err := e.eval(st)
		if err != nil {
			return Candidate{}, nil, err
		}
		pop = append(pop, c)
	}
	for tries := 0; len(pop) < cfg.Population && tries < 20*cfg.Population; tries++ {
		cand, ok := e.random()
		if !ok || e.has(pop, cand) {
			continue
		}
		c, err := e.eval(cand)
		if err != nil {
			return Candidate{}, nil, err
		}
		pop = append(pop, c)
	}
	if len(pop) == 0 {
		return Candidate{}, nil, fmt.Errorf("%w: the search found no subnet within budget %s", ErrExtract, b)
	}
	var hist []Generation
	sortPop(pop)
	hist = append(hist, summary(0, pop))
	nParents := max(2, int(cfg.Parents*float64(cfg.Population)))
	for g := 1; g <= cfg.Generations; g++ {
		parents := pop[:min(nParents, len(pop))]
		next := append([]Candidate(nil), parents...)
		for tries := 0; len(next) < cfg.Population && tries < 20*cfg.Population; tries++ {
			var child arch.Subnet
			if len(next)%2 == 0 {
				child = e.mutate(parents[e.r.IntN(len(parents))].Subnet)
			} else {
				child = e.crossover(parents[e.r.IntN(len(parents))].Subnet, parents[e.r.IntN(len(parents))].Subnet)
			}
			child, ok := e.repair(child)
			if !ok || e.has(next, child) {
				continue
			}
			c, err := e.eval(child)
			if err != nil {
				return Candidate{}, nil, err
			}
			next = append(next, c)
		}
		pop = next
		sortPop(pop)
		hist = append(hist, summary(g, pop))
	}
	return pop[0], hist, nil
}

type evolver struct {
	cm   CostModel
	s    *Scores
	b    Budget
	f    Floors
	mode string
	cfg  SearchConfig
	fit  Fitness
	seen map[string]float64
	r    *rand.Rand
}

func sortPop(p []Candidate) {
	sort.SliceStable(p, func(i, j int) bool {
		if p[i].Accuracy != p[j].Accuracy {
			return p[i].Accuracy > p[j].Accuracy
		}
		return p[i].Cost.Params < p[j].Cost.Params // same accuracy: the smaller one
	})
}

func summary(g int, p []Candidate) Generation {
	m := 0.0
	for _, c := range p {
		m += c.Accuracy
	}
	return Generation{Index: g, Best: p[0], Mean: m / float64(len(p))}
}

func (e *evolver) has(p []Candidate, s arch.Subnet) bool {
	for _, c := range p {
		if c.Subnet.Equal(s) {
			return true
		}
	}
	return false
}

func (e *evolver) eval(s arch.Subnet) (Candidate, error) {
	c := Candidate{Subnet: s, Cost: e.cm.Of(s)}
	if !e.b.Fits(c.Cost) {
		return c, fmt.Errorf("extract: search: candidate %s is over budget (programmer error)", s.Key())
	}
	if acc, ok := e.seen[s.Key()]; ok {
		c.Accuracy = acc
		return c, nil
	}
	acc, err := e.fit(s)
	if err != nil {
		return c, err
	}
	e.seen[s.Key()] = acc
	c.Accuracy = acc
	return c, nil
}

func (e *evolver) heads(l int) int {
	return e.f.MinHeads + e.r.IntN(e.cm.Arch.Layers[l].Heads-e.f.MinHeads+1)
}

func (e *evolver) mlp(l int) int {
	m := e.cm.Arch.Layers[l].MLP
	steps := (m - e.f.MinMLP) / e.cfg.MLPStep
	v := e.f.MinMLP + e.r.IntN(steps+1)*e.cfg.MLPStep
	if e.r.IntN(steps+2) == 0 {
		v = m // the full width is always reachable
	}
	return min(v, m)
}

func (e *evolver) depth() int {
	return e.f.MinDepth + e.r.IntN(len(e.cm.Arch.Layers)-e.f.MinDepth+1)
}

// withDepth keeps the sizes of layers present in s and draws sizes for new ones.
func (e *evolver) withDepth(s arch.Subnet, d int) arch.Subnet {
	old := map[int]arch.SubLayer{}
	for _, l := range s.Layers {
		old[l.Layer] = l
	}
	out := arch.Subnet{}
	for _, l := range keptLayers(e.cm.Arch, e.s, d, e.mode) {
		sl, ok := old[l]
		if !ok {
			sl = arch.SubLayer{Layer: l, Heads: e.heads(l), MLP: e.mlp(l)}
		}
		out.Layers = append(out.Layers, sl)
	}
	return out
}

func (e *evolver) random() (arch.Subnet, bool) {
	return e.repair(e.withDepth(arch.Subnet{}, e.depth()))
}

func (e *evolver) mutate(s arch.Subnet) arch.Subnet {
	c := s.Clone()
	if e.r.Float64() < e.cfg.Mutation {
		c = e.withDepth(c, e.depth())
	}
	for i, l := range c.Layers {
		if e.r.Float64() < e.cfg.Mutation {
			c.Layers[i].Heads = e.heads(l.Layer)
		}
		if e.r.Float64() < e.cfg.Mutation {
			c.Layers[i].MLP = e.mlp(l.Layer)
		}
	}
	return c
}

func (e *evolver) crossover(x, y arch.Subnet) arch.Subnet {
	d := x.Depth()
	if e.r.IntN(2) == 1 {
		d = y.Depth()
	}
	pick := map[int]arch.SubLayer{}
	for _, l := range y.Layers {
		pick[l.Layer] = l
	}
	for _, l := range x.Layers {
		if _, ok := pick[l.Layer]; !ok || e.r.IntN(2) == 0 {
			pick[l.Layer] = l
		}
	}
	base := arch.Subnet{}
	for _, l := range pick {
		base.Layers = append(base.Layers, l)
	}
	sort.Slice(base.Layers, func(i, j int) bool { return base.Layers[i].Layer < base.Layers[j].Layer })
	return e.withDepth(base, d)
}

// repair shrinks a candidate at random until it fits the budget.
func (e *evolver) repair(s arch.Subnet) (arch.Subnet, bool) {
	c := s.Clone()
	for tries := 0; tries < 10000; tries++ {
		if e.b.Fits(e.cm.Of(c)) {
			return c, true
		}
		i := e.r.IntN(len(c.Layers))
		l := &c.Layers[i]
		switch {
		case e.r.IntN(3) == 0 && l.Heads > e.f.MinHeads:
			l.Heads--
		case l.MLP > e.f.MinMLP:
			l.MLP = max(e.f.MinMLP, l.MLP-e.cfg.MLPStep)
		case l.Heads > e.f.MinHeads:
			l.Heads--
		default:
			if c.Depth() > e.f.MinDepth && e.atFloors(c) {
				c = e.withDepth(c, c.Depth()-1)
			}
		}
	}
	return c, false
}

func (e *evolver) atFloors(s arch.Subnet) bool {
	for _, l := range s.Layers {
		if l.Heads > e.f.MinHeads || l.MLP > e.f.MinMLP {
			return false
		}
	}
	return true
}
