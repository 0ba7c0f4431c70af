package sim

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/pool"
)

// PoolService is one member of a multi-service run: its own trace, its own LLMInferenceService policy and
// its own Deployment, Service and HPA, with its place in the LLMInferencePool.
type PoolService struct {
	// Name is the LLMInferenceService's name, as the pool lists it; names must be unique.
	Name string
	// Config is the service's run configuration: replica model, policy, seed. The control intervals and
	// the warm-up must be the same for every member, since they share one clock.
	Config Config
	// Trace is the service's requests, sorted by arrival.
	Trace []Request
	// Priority and Weight are the member's entry in the pool.
	Priority pool.Priority
	Weight   int32
	// GPUsPerReplica is what one replica holds (the service's nvidia.com/gpu limit).
	GPUsPerReplica int64
}

// Pool is an LLMInferencePool and its members.
type Pool struct {
	// BudgetGPUs is the pool's gpuBudget; Eviction its evictionPolicy.
	BudgetGPUs int64
	Eviction   pool.EvictionPolicy
	Services   []PoolService
}

// Setups of a multi-service run.
const (
	// SetupShared runs every member on the pool's one budget, divided by pool.Allocate every cycle.
	SetupShared = "shared"
	// SetupSplit gives each member a fixed part of the budget (SplitBudget) as its maxReplicas.
	SetupSplit = "split"
)

// PoolResult is what one setup did with the members' traces.
type PoolResult struct {
	Setup string `json:"setup"`
	// Services holds one Result per member, in the order of Pool.Services; Result.Policy is the member's
	// name. Rules counts a decision the pool capped as "PoolBudget", as the scaler labels it.
	Services []Result `json:"services"`
	// CapsGPUs is each member's fixed budget (split only).
	CapsGPUs []int64 `json:"caps_gpus,omitempty"`
	// Requests, SLOAttainment and GPUHours are over all members: attainment weighted by requests.
	Requests      int     `json:"requests"`
	SLOAttainment float64 `json:"slo_attainment"`
	GPUHours      float64 `json:"gpu_hours"`
	// MaxGPUsHeld is the most GPUs the members' pods held at once, warm-up included: Σ pods (starting,
	// ready or terminating) × GPUs per replica.
	MaxGPUsHeld int64 `json:"max_gpus_held"`
	// Held is the most GPUs held within each SeriesStep of the measured part.
	Held []HeldPoint `json:"-"`
}

// HeldPoint is the most GPUs held in the SeriesStep ending at T.
type HeldPoint struct {
	T    time.Duration
	GPUs int64
}

// RunPool replays every member's trace at once, on one clock, with the llmd policy and the pool in the
// loop, as the scaler runs it: every ScrapeInterval each member decides with decision.Decide on its own
// pods, then pool.Allocate divides the budget among the members' demands, and the metric KEDA reads for
// each member is its grant, which its HPA acts on at every sync.
func RunPool(p Pool) (PoolResult, error) {
	p.Services = slices.Clone(p.Services) // validate fills in defaults: leave the caller's slice alone
	if err := p.validate(); err != nil {
		return PoolResult{}, err
	}
	return runMembers(p, SetupShared, nil)
}

// RunSplit is the baseline: every member alone on a fixed part of the budget, SplitBudget's, as its
// maxReplicas (cap / GPUs per replica, never above its own max), scaled by llmd as usual. The members
// share nothing, so each one serves its requests exactly as Run with that maxReplicas would.
func RunSplit(p Pool) (PoolResult, error) {
	p.Services = slices.Clone(p.Services) // the caps below change each member's maxReplicas on the copy
	if err := p.validate(); err != nil {
		return PoolResult{}, err
	}
	caps := SplitBudget(p)
	for i := range p.Services {
		s := &p.Services[i]
		if s.GPUsPerReplica <= 0 {
			continue
		}
		n := caps[i] / s.GPUsPerReplica
		if n < int64(s.Config.Policy.MinReplicas) {
			return PoolResult{}, fmt.Errorf("service %s: its split of %d GPUs holds %d replicas, fewer than its minReplicas %d",
				s.Name, caps[i], n, s.Config.Policy.MinReplicas)
		}
		s.Config.Policy.MaxReplicas = int32(min(n, int64(s.Config.Policy.MaxReplicas)))
	}
	return runMembers(p, SetupSplit, caps)
}

// SplitBudget divides the budget by weight into fixed whole-GPU parts that add up to the budget: each
// member gets floor(budget × weight / Σweights) and the GPUs the floors leave go one each to the largest
// remainders (ties: higher priority, then name), Hamilton's method. Members that use no GPUs get 0.
func SplitBudget(p Pool) []int64 {
	caps := make([]int64, len(p.Services))
	var sum int64
	var idx []int
	for i, s := range p.Services {
		if s.GPUsPerReplica > 0 {
			sum += int64(weight(s))
			idx = append(idx, i)
		}
	}
	if sum == 0 {
		return caps
	}
	rem := make([]int64, len(p.Services))
	left := p.BudgetGPUs
	for _, i := range idx {
		w := int64(weight(p.Services[i]))
		caps[i], rem[i] = p.BudgetGPUs*w/sum, p.BudgetGPUs*w%sum
		left -= caps[i]
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		sa, sb := p.Services[a], p.Services[b]
		return cmp.Or(cmp.Compare(rem[b], rem[a]), cmp.Compare(sb.Priority, sa.Priority), cmp.Compare(sa.Name, sb.Name))
	})
	for k := 0; left > 0; k, left = k+1, left-1 {
		caps[idx[k%len(idx)]]++
	}
	return caps
}

// weight is the member's weight as pool.Allocate reads it: values <= 0 count as 1.
func weight(s PoolService) int32 { return max(s.Weight, 1) }

func (p *Pool) validate() error {
	if len(p.Services) == 0 {
		return fmt.Errorf("a pool needs at least one service")
	}
	if p.BudgetGPUs <= 0 {
		return fmt.Errorf("the pool's budget is %d GPUs: it must be positive", p.BudgetGPUs)
	}
	first := p.Services[0].Config.WithDefaults()
	seen := map[string]bool{}
	var minGPUs int64
	for i := range p.Services {
		s := &p.Services[i]
		if err := s.Config.Validate(); err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
		s.Config = s.Config.WithDefaults()
		if err := checkTrace(s.Trace); err != nil {
			return fmt.Errorf("service %s: %w", s.Name, err)
		}
		switch c := s.Config; {
		case s.Name == "" || seen[s.Name]:
			return fmt.Errorf("service %d: name %q is empty or repeated", i, s.Name)
		case s.GPUsPerReplica < 0:
			return fmt.Errorf("service %s: negative GPUs per replica", s.Name)
		case c.Warmup != first.Warmup || c.ScrapeInterval != first.ScrapeInterval || c.HPASync != first.HPASync ||
			c.SeriesStep != first.SeriesStep:
			return fmt.Errorf("service %s: warm-up, scrape, HPA sync and series step must be the same for every service", s.Name)
		}
		seen[s.Name] = true
		minGPUs += int64(s.Config.initial()) * s.GPUsPerReplica
	}
	// The HPA never goes below minReplicas, whatever the pool grants: minimums beyond the budget cannot
	// be simulated as the pool promises.
	if minGPUs > p.BudgetGPUs {
		return fmt.Errorf("the members' minReplicas need %d GPUs, more than the budget of %d", minGPUs, p.BudgetGPUs)
	}
	return nil
}

// memberControl is a pool member's KEDA and HPA: the HPA acts on the grant, which the pool's cycle sets
// after every member has decided. The scaler's decisions themselves are made by runMembers.
type memberControl struct {
	*llmdControl
	grant int32
}

func (m *memberControl) tick(now time.Duration, c *cluster) (int32, bool) {
	if now%m.cfg.HPASync != 0 {
		return 0, false
	}
	return m.hpa.Sync(now, c.replicas, float64(m.grant), 1), true
}

// resetRules is runMembers' job: it must happen before the round's decisions, which precede the runner's
// control step.
func (m *memberControl) resetRules() {}

// runMembers drives every member's runner on one clock. Each control tick it first moves every cluster to
// now, then runs the pool's cycle (every member decides; shared: pool.Allocate turns demands into grants;
// split: the grant is the demand), then lets each member's HPA act.
func runMembers(p Pool, setup string, caps []int64) (PoolResult, error) {
	out := PoolResult{Setup: setup, CapsGPUs: caps}
	cfg0 := p.Services[0].Config
	w := cfg0.Warmup
	runners := make([]*runner, len(p.Services))
	ctls := make([]*memberControl, len(p.Services))
	for i, s := range p.Services {
		cfg := s.Config
		ctls[i] = &memberControl{llmdControl: newLLMD(&cfg)}
		ctls[i].grant = ctls[i].latest
		r, err := newRunner(cfg, ctls[i], s.Trace, runOpts{name: s.Name, chargeDrain: true, warmup: w})
		if err != nil {
			return out, fmt.Errorf("service %s: %w", s.Name, err)
		}
		runners[i] = r
	}
	members := make([]pool.Member, len(p.Services))
	held := func() (g int64) {
		for i, r := range runners {
			g += int64(len(r.c.pods)) * p.Services[i].GPUsPerReplica
		}
		return g
	}
	out.MaxGPUsHeld = held()
	stepMax := int64(0)

	now, tick := time.Duration(0), time.Duration(0)
	for {
		t := time.Duration(math.MaxInt64)
		for _, r := range runners {
			r.nextTick = tick
			t = min(t, r.next(now))
		}
		if t == math.MaxInt64 {
			break
		}
		now = max(now, t)
		for _, r := range runners {
			if err := r.advance(now); err != nil {
				return out, err
			}
		}
		ticked := now == tick
		if ticked {
			if now%cfg0.ScrapeInterval == 0 {
				for i, m := range ctls {
					if now == w {
						clear(m.rules)
					}
					m.decide(now, runners[i].c)
					c, s := runners[i].c, p.Services[i]
					// InUse as scaler/engine counts it: the Deployment's size or its live pods, whichever is
					// larger, plus the terminating pods, which hold their GPUs until drained.
					ready, starting := c.live()
					members[i] = pool.Member{Name: s.Name, Priority: s.Priority, Weight: s.Weight,
						GPUsPerReplica: s.GPUsPerReplica, Min: s.Config.Policy.MinReplicas, Max: s.Config.Policy.MaxReplicas,
						Demand: m.latest, InUse: max(c.replicas, int32(ready+starting)) + int32(len(c.pods)-ready-starting)}
				}
				if setup == SetupShared {
					for i, g := range pool.Allocate(p.BudgetGPUs, p.Eviction, members) {
						ctls[i].regrant(g.Replicas)
					}
				} else {
					for _, m := range ctls {
						m.grant = m.latest
					}
				}
			}
			for _, r := range runners {
				if err := r.control(now); err != nil {
					return out, err
				}
			}
			tick += Base
		}
		g := held()
		out.MaxGPUsHeld = max(out.MaxGPUsHeld, g)
		stepMax = max(stepMax, g)
		if ticked && now > w && (now-w)%cfg0.SeriesStep == 0 {
			out.Held = append(out.Held, HeldPoint{T: now - w, GPUs: stepMax})
			stepMax = g
		}
	}

	var met float64
	for _, r := range runners {
		res := r.finish(now)
		out.Services = append(out.Services, res)
		out.Requests += res.Requests
		out.GPUHours += res.GPUHours
		met += res.SLOAttainment * float64(res.Requests)
	}
	if out.Requests > 0 {
		out.SLOAttainment = met / float64(out.Requests)
	}
	return out, nil
}

// regrant makes the grant what KEDA reads; a decision the pool changed counts as the scaler labels it,
// PoolBudget, instead of its own rule.
func (m *memberControl) regrant(g int32) {
	if g != m.latest {
		m.rules[m.last]--
		m.rules[poolBudget]++
	}
	m.grant = g
}

// poolBudget is the rule label of a decision the pool capped (scaler/engine.RulePoolBudget).
const poolBudget decision.Rule = "PoolBudget"
