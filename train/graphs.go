package train

import (
	"container/list"
	"fmt"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/nn"
	"github.com/ofa-go/ofa/supernet"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// role says what a subnet graph computes.
type role int

const (
	// roleForward: logits only (evaluation, external teachers).
	roleForward role = iota
	// roleTeacher: loss = cross-entropy with the labels.
	roleTeacher
	// roleStudent: loss = (1-α)·cross-entropy + α·distillation from the teacher's soft targets.
	roleStudent
)

// subnetGraph is one subnet's compiled graph with its inputs wired to shared tensors.
type subnetGraph struct {
	net   *supernet.Net
	loss  *G.Node // nil for roleForward
	grads G.Nodes // aligned with net.Weights
	index []int   // position of each of net.Weights in the parameter order
	vm    G.VM    // training roles
	// fwd runs roleForward graphs: the forward runner that predictions, latency and
	// export checks use too.
	fwd *supernet.Runner
}

// run executes the graph once.
func (s *subnetGraph) run() error {
	if s.fwd != nil {
		return s.fwd.Run()
	}
	s.vm.Reset()
	return s.vm.RunAll()
}

// resize makes the graph compute subnet s (same active layers).
func (s *subnetGraph) resize(sub arch.Subnet) error {
	if s.fwd != nil {
		return s.fwd.Resize(sub)
	}
	return s.net.Resize(sub)
}

// close releases the compiled graph.
func (s *subnetGraph) close() {
	if s.fwd != nil {
		s.fwd.Close()
		return
	}
	s.vm.Close()
}

// graphInputs are the tensors every graph of one model and batch size reads.
type graphInputs struct {
	patches *tensor.Dense // (B*P, PatchSize)
	labels  *tensor.Dense // (B, C), one-hot (smoothed) labels
	// teacherLabels (B, C) are the in-place teacher's labels when it has a label smoothing
	// of its own; nil: labels.
	teacherLabels *tensor.Dense
	soft          *tensor.Dense // (B, C), teacher's soft targets at the distillation temperature
	// hidden are the external teacher's residual stream after each of its blocks, each
	// (B*T, D) (only with hidden-state distillation)
	hidden []*tensor.Dense
}

// lossSpec is the part of the configuration a training graph's loss depends on.
type lossSpec struct {
	temperature float64
	alpha       float64 // weight of distillation for students
	hidden      float64 // weight of hidden-state distillation for students (needs graphInputs.hidden)
	scale       float64 // multiplies the whole loss (1/shards); 0 means 1
}

// graphCache keeps the most recently used compiled graphs (building and compiling one costs
// milliseconds; a cached one costs its activation buffers). It is keyed by subnet and role.
type graphCache struct {
	arch   arch.Arch
	params *supernet.Params
	ops    nn.Ops
	in     graphInputs
	loss   lossSpec
	order  map[string]int // parameter name -> index
	cap    int
	lru    *list.List // of *cacheEntry, most recent first
	byKey  map[string]*list.Element
	builds int // graphs built so far (for reports)
}

type cacheEntry struct {
	key string
	g   *subnetGraph
}

func newGraphCache(a arch.Arch, p *supernet.Params, ops nn.Ops, in graphInputs, loss lossSpec, capacity int) *graphCache {
	order := make(map[string]int, p.Len())
	for i, n := range p.Names() {
		order[n] = i
	}
	if capacity < 1 {
		capacity = 1
	}
	return &graphCache{arch: a, params: p, ops: ops, in: in, loss: loss, order: order, cap: capacity,
		lru: list.New(), byKey: map[string]*list.Element{}}
}

// get returns a graph computing subnet s in role r. With resizable (fused) ops one graph
// serves every subnet with the same active layers: it is resized instead of rebuilt.
func (c *graphCache) get(s arch.Subnet, r role) (*subnetGraph, error) {
	key := fmt.Sprintf("%d|%s", r, s.Key())
	if rz, ok := c.ops.(interface{ Resizable() bool }); ok && rz.Resizable() && !c.arch.Expanded() {
		key = fmt.Sprintf("%d|layers %s", r, supernet.LayerKey(s))
	}
	if e, ok := c.byKey[key]; ok {
		c.lru.MoveToFront(e)
		g := e.Value.(*cacheEntry).g
		if err := g.resize(s); err != nil {
			return nil, err
		}
		return g, nil
	}
	g, err := c.build(s, r)
	if err != nil {
		return nil, err
	}
	c.builds++
	c.byKey[key] = c.lru.PushFront(&cacheEntry{key: key, g: g})
	for c.lru.Len() > c.cap {
		last := c.lru.Back()
		c.lru.Remove(last)
		e := last.Value.(*cacheEntry)
		e.g.close()
		delete(c.byKey, e.key)
	}
	return g, nil
}

func (c *graphCache) build(s arch.Subnet, r role) (*subnetGraph, error) {
	if r == roleForward {
		fwd, err := supernet.NewRunnerOn(c.arch, c.params, s, c.in.patches, c.ops)
		if err != nil {
			return nil, err
		}
		return &subnetGraph{net: fwd.Net, fwd: fwd}, nil
	}
	g := G.NewGraph()
	net, err := supernet.Build(g, c.arch, c.params, s, c.in.patches, c.ops)
	if err != nil {
		return nil, err
	}
	sg := &subnetGraph{net: net}
	b := nn.Builder{Ops: c.ops}
	lab := c.in.labels
	if r == roleTeacher && c.in.teacherLabels != nil {
		lab = c.in.teacherLabels
	}
	labels := G.NodeFromAny(g, lab, G.WithName("labels"))
	scale := c.loss.scale
	if scale == 0 {
		scale = 1
	}
	ceWeight := scale
	if r == roleStudent {
		ceWeight = scale * (1 - c.loss.alpha)
	}
	sg.loss = b.SoftCrossEntropy("loss.labels", net.Logits, labels, 1, ceWeight)
	if r == roleStudent && c.loss.alpha > 0 {
		soft := G.NodeFromAny(g, c.in.soft, G.WithName("teacher"))
		kd := b.SoftCrossEntropy("loss.distill", net.Logits, soft, c.loss.temperature, scale*c.loss.alpha)
		sg.loss = b.Add("loss", sg.loss, kd)
	}
	if r == roleStudent && c.loss.hidden > 0 && len(c.in.hidden) > 0 {
		ps, pt := len(net.Blocks), len(c.in.hidden)
		for i, h := range net.Blocks {
			j := HiddenTarget(i, ps, pt)
			target := G.NodeFromAny(g, c.in.hidden[j], G.WithName(fmt.Sprintf("teacher.blocks.%d", j)))
			// mean over the positions of each position's mean squared difference
			hd := b.SquaredError(fmt.Sprintf("loss.hidden.%d", i), h, target, scale*c.loss.hidden/float64(ps))
			sg.loss = b.Add(fmt.Sprintf("loss.with_hidden.%d", i), sg.loss, hd)
		}
	}
	if err := b.Err(); err != nil {
		return nil, fmt.Errorf("train: loss of subnet %s: %w", s.Key(), err)
	}
	if sg.grads, err = G.Grad(sg.loss, net.Weights...); err != nil {
		return nil, fmt.Errorf("train: gradients of subnet %s: %w", s.Key(), err)
	}
	for _, name := range net.WeightNames {
		sg.index = append(sg.index, c.order[name])
	}
	sg.vm = G.NewTapeMachine(g)
	return sg, nil
}

// HiddenTarget is the teacher block whose output student position i (of ps) distils in
// hidden-state distillation: the uniform map ⌈(i+1)·pt/ps⌉ − 1 over the teacher's pt
// blocks, so the last position always matches the teacher's last block.
func HiddenTarget(i, ps, pt int) int {
	return ((i+1)*pt+ps-1)/ps - 1
}

// close releases every cached graph.
func (c *graphCache) close() {
	for e := c.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*cacheEntry).g.close()
	}
	c.lru.Init()
	c.byKey = map[string]*list.Element{}
}
