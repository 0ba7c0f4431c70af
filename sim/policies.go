package sim

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/llm-d/llm-d/scaler/decision"
)

// Policy names, as the CLI takes them.
const (
	LLMD       = "llmd"
	HPAQueue   = "hpa-queue"
	TokenAware = "token-aware"
	// TokenAwareShipped is the token-aware recipe with the behavior its ScaledObject ships.
	TokenAwareShipped = "token-aware-shipped"
	StaticPeak        = "static-peak"
	LowerBound        = "lower-bound"
	// IdealLearner is a reference: what a policy that learns from bursts could do knowing all else.
	IdealLearner = "ideal-learner"
	// ReactiveLearner is IdealLearner seeing the demand between bursts one horizon late, as a reactive
	// policy does.
	ReactiveLearner = "reactive-learner"
	// StaticPrefix names a fixed count: "static:3" is three replicas, ready from the start.
	StaticPrefix = "static:"
)

// Policies lists every policy in report order (fixed counts, static:N, are named by their count).
var Policies = []string{LLMD, HPAQueue, TokenAware, TokenAwareShipped, StaticPeak, LowerBound, IdealLearner, ReactiveLearner}

// Learners are the reference learners, which LearnerOf builds from the fixed counts' runs.
var Learners = []string{IdealLearner, ReactiveLearner}

// Static names the fixed count n as a policy.
func Static(n int32) string { return StaticPrefix + strconv.Itoa(int(n)) }

// ParseStatic reads a fixed count's policy name, "static:N" with N at least 1; ok is false for any other
// policy name.
func ParseStatic(policy string) (n int32, ok bool, err error) {
	v, found := strings.CutPrefix(policy, StaticPrefix)
	if !found {
		return 0, false, nil
	}
	i, err := strconv.ParseInt(v, 10, 32)
	if err != nil || i < 1 {
		return 0, true, fmt.Errorf("policy %q: the fixed count after %q must be a whole number of at least 1", policy, StaticPrefix)
	}
	return int32(i), true, nil
}

// ValidPolicy says what is wrong with a policy name.
func ValidPolicy(policy string) error {
	if _, ok, err := ParseStatic(policy); ok {
		return err
	}
	for _, p := range Policies {
		if p == policy {
			return nil
		}
	}
	return fmt.Errorf("unknown policy %q: want one of %s or %sN", policy, strings.Join(Policies, ", "), StaticPrefix)
}

// Run replays reqs (sorted by arrival) under one policy.
func Run(cfg Config, policy string, reqs []Request) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.WithDefaults()
	if err := checkTrace(reqs); err != nil {
		return Result{}, err
	}
	switch policy {
	case LLMD:
		return simulate(cfg, newLLMD(&cfg), reqs, runOpts{name: LLMD, chargeDrain: true, warmup: cfg.Warmup})
	case HPAQueue:
		return simulate(cfg, newQueue(&cfg), reqs, runOpts{name: HPAQueue, chargeDrain: true, warmup: cfg.Warmup})
	case TokenAware, TokenAwareShipped:
		b := DefaultBehavior()
		if policy == TokenAwareShipped {
			b = ShippedTokenAwareBehavior()
		}
		ctl, err := newTokenAware(&cfg, reqs, b)
		if err != nil {
			return Result{}, err
		}
		return simulate(cfg, ctl, reqs, runOpts{name: policy, chargeDrain: true, warmup: cfg.Warmup})
	case StaticPeak:
		res, err := staticPeak(cfg, reqs)
		res.Policy = StaticPeak
		return res, err
	case LowerBound:
		return lowerBound(cfg, reqs)
	case IdealLearner, ReactiveLearner:
		return learner(cfg, policy, reqs)
	}
	n, ok, err := ParseStatic(policy)
	if !ok {
		err = ValidPolicy(policy)
	}
	if err != nil {
		return Result{}, err
	}
	return runFixed(cfg, n, reqs)
}

// checkTrace refuses what the event loop cannot replay: requests out of order or before the start.
func checkTrace(reqs []Request) error {
	for i, r := range reqs {
		if r.At < 0 || (i > 0 && r.At < reqs[i-1].At) {
			return fmt.Errorf("request %d arrives at %s, before its predecessor or the start: sort the trace", i, r.At)
		}
	}
	return nil
}

// RunFixed replays reqs on n replicas that are ready from the start and never change (policy static:n).
func RunFixed(cfg Config, n int32, reqs []Request) (Result, error) {
	return Run(cfg, Static(n), reqs)
}

// runFixed is RunFixed on a validated configuration and trace.
func runFixed(cfg Config, n int32, reqs []Request) (Result, error) {
	cfg.InitialReplicas = n
	cfg.Policy.MinReplicas, cfg.Policy.MaxReplicas = n, max(n, cfg.Policy.MaxReplicas)
	res, err := simulate(cfg, &scheduleControl{plan: []int32{n}}, reqs, runOpts{name: Static(n), chargeDrain: true})
	res.Replicas = n
	return res, err
}

// staticPeak is the fewest fixed replicas, between min and max, whose run meets the SLO for SLOTarget of
// the requests; the trace's peak is what decides it. If even max does not, max.
func staticPeak(cfg Config, reqs []Request) (Result, error) {
	lo, hi := cfg.Policy.MinReplicas, cfg.Policy.MaxReplicas
	best, err := runFixed(cfg, hi, reqs)
	if err != nil || best.SLOAttainment < cfg.SLOTarget {
		return best, err
	}
	for lo < hi { // attainment grows with replicas: binary search the smallest that meets the target
		mid := lo + (hi-lo)/2
		r, err := runFixed(cfg, mid, reqs)
		if err != nil {
			return r, err
		}
		if r.SLOAttainment >= cfg.SLOTarget {
			hi, best = mid, r
		} else {
			lo = mid + 1
		}
	}
	return best, nil
}

// lowerBound plans, for each BoundStep-long interval, the fewest replicas (within min and max) that serve
// that interval's requests alone, on pods that start empty and ready, with SLOTarget of them within the
// SLO; then it replays the whole trace with that plan, pods ready the moment they are created, and charges
// each interval's planned count only. No policy that reacts to load can do better: it would need to know
// each interval's demand in advance, start pods in zero time and never carry a backlog between intervals.
func lowerBound(cfg Config, reqs []Request) (Result, error) {
	edges := intervals(reqs, cfg.BoundStep)
	plan := []int32{cfg.Policy.MinReplicas} // without a request, the minimum
	if len(edges) > 1 {
		plan = make([]int32, len(edges)-1)
	}
	for k := range len(edges) - 1 {
		part := slices.Clone(reqs[edges[k]:edges[k+1]])
		if len(part) == 0 {
			plan[k] = cfg.Policy.MinReplicas // no request in the interval: the minimum
			continue
		}
		for i := range part {
			part[i].At -= time.Duration(k) * cfg.BoundStep
		}
		n, err := fewest(cfg, part)
		if err != nil {
			return Result{}, err
		}
		plan[k] = n
	}
	return replayPlan(cfg, reqs, plan, LowerBound)
}

// intervals is, for each step-long interval from the start to the last request of reqs (sorted by
// arrival), the index of its first request, then len(reqs): interval k holds reqs[edges[k]:edges[k+1]].
func intervals(reqs []Request, step time.Duration) []int {
	edges := []int{0}
	if len(reqs) == 0 {
		return edges
	}
	for k := time.Duration(1); k <= reqs[len(reqs)-1].At/step+1; k++ {
		edges = append(edges, sort.Search(len(reqs), func(i int) bool { return reqs[i].At >= k*step }))
	}
	return edges
}

// learner replays the plan of a policy that knows all it could learn (ideal-learner): each BoundStep-long
// interval gets the fewest fixed replicas whose own run served SLOTarget of that interval's requests (the
// count that interval's demand, backlog included, asks for), except that a burst of a size not seen before
// meets the count before it for one startup delay (no history announces it), and from the end of the
// first burst of a size, each later burst of that size is held for until it starts (it comes at a time
// no history tells). It knows everything else in advance: the demand between bursts and the exact need
// of each later burst. It is a reference, not a bound: its counts are those of fixed runs, which carry
// their own backlogs. reactive-learner is the same plan with the demand between bursts seen one horizon
// late (decision.Horizon, rounded up to whole intervals), as any policy that reacts to it sees it: what
// separates the two is what foresight of that demand is worth.
func learner(cfg Config, policy string, reqs []Request) (Result, error) {
	var fixed []Result
	for n := cfg.Policy.MinReplicas; n <= cfg.Policy.MaxReplicas; n++ {
		res, err := runFixed(cfg, n, reqs)
		if err != nil {
			return Result{}, err
		}
		fixed = append(fixed, res)
	}
	return learnerOf(cfg, policy, reqs, fixed)
}

// LearnerOf is ideal-learner or reactive-learner (learner) from the runs of every fixed count between min
// and max (static:N, as Run returns them), which it would otherwise run again.
func LearnerOf(cfg Config, policy string, reqs []Request, fixed []Result) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if !slices.Contains(Learners, policy) {
		return Result{}, fmt.Errorf("policy %q is not a learner: want one of %s", policy, strings.Join(Learners, ", "))
	}
	cfg = cfg.WithDefaults()
	if err := checkTrace(reqs); err != nil {
		return Result{}, err
	}
	return learnerOf(cfg, policy, reqs, fixed)
}

// learnerOf is LearnerOf on a validated configuration, policy and trace.
func learnerOf(cfg Config, policy string, reqs []Request, fixed []Result) (Result, error) {
	plan, err := fixedPlan(cfg, reqs, fixed)
	if err != nil {
		return Result{}, err
	}
	var lag int
	if policy == ReactiveLearner {
		h := decision.Horizon(cfg.Replica.StartupDelay)
		lag = int((h + cfg.BoundStep - 1) / cfg.BoundStep)
	}
	return replayPlan(cfg, reqs, learnerPlan(plan, DetectBursts(reqs), cfg.BoundStep, cfg.Replica.StartupDelay, lag), policy)
}

// fixedPlan is, for each BoundStep-long interval of reqs, the fewest fixed replicas whose run (one of
// fixed) served SLOTarget of the interval's requests within the SLO, max if none did (min for an interval
// without one).
func fixedPlan(cfg Config, reqs []Request, fixed []Result) ([]int32, error) {
	edges := intervals(reqs, cfg.BoundStep)
	if len(edges) == 1 {
		return []int32{cfg.Policy.MinReplicas}, nil
	}
	met := map[int32][]bool{}
	for _, r := range fixed {
		if n, ok, _ := ParseStatic(r.Policy); ok && len(r.Met) == len(reqs) {
			met[n] = r.Met
		}
	}
	plan := make([]int32, len(edges)-1)
	for n := cfg.Policy.MaxReplicas; n >= cfg.Policy.MinReplicas; n-- {
		m, ok := met[n]
		if !ok {
			return nil, fmt.Errorf("a learner is built from every fixed count's run: the run of %s on this trace is missing", Static(n))
		}
		for k := range plan {
			if n == cfg.Policy.MaxReplicas || share(m[edges[k]:edges[k+1]]) >= cfg.SLOTarget {
				plan[k] = n
			}
		}
	}
	return plan, nil
}

// learnerPlan is plan (one count per step) as a learner that sees it lag steps late holds it (see
// learner): the intervals that start within a first burst's first startup delay lowered to the count
// before it, and the need of each later burst of a size (from plan itself) held from the end of the one
// before until the learner sees it start.
func learnerPlan(plan []int32, bursts []Burst, step, startup time.Duration, lag int) []int32 {
	late := make([]int32, len(plan)) // the demand as the learner sees it
	for k := range late {
		late[k] = plan[max(k-lag, 0)]
	}
	held := slices.Clone(late)
	at := func(t time.Duration) int { return min(int(t/step), len(plan)) }
	for _, b := range bursts {
		if b.First && b.Start >= step {
			for k := at(b.Start); k < at(b.Start+startup); k++ {
				held[k] = late[at(b.Start)-1]
			}
		}
	}
	for i, b := range bursts {
		if !b.First {
			continue
		}
		from := b.End
		for _, next := range bursts[i+1:] {
			if next.Size != b.Size {
				continue
			}
			var need int32
			for k := at(next.Start); k < at(next.End+step-1); k++ {
				need = max(need, plan[k])
			}
			// Held until the burst starts, and until the learner sees it has.
			for k := at(from); k < min(at(next.Start)+lag, len(held)); k++ {
				held[k] = max(held[k], need)
			}
			from = next.End
		}
	}
	return held
}

// replayPlan replays reqs with one count per BoundStep, pods ready the moment they are created, and
// charges the plan's own GPU time, not the replay's: a reference charges nothing for draining.
func replayPlan(cfg Config, reqs []Request, plan []int32, name string) (Result, error) {
	sc := &scheduleControl{step: cfg.BoundStep, plan: plan}
	cfg.InitialReplicas = plan[0]
	res, err := simulate(cfg, sc, reqs, runOpts{name: name, zeroStartup: true})
	if err != nil {
		return res, err
	}
	res.Plan = plan
	var horizon time.Duration // no request, no time to charge
	if len(reqs) > 0 {
		horizon = reqs[len(reqs)-1].At
	}
	var total time.Duration
	for i, n := range plan {
		from := time.Duration(i) * cfg.BoundStep
		to := min(from+cfg.BoundStep, horizon)
		if to > from {
			total += time.Duration(n) * (to - from)
		}
	}
	res.GPUHours = total.Hours()
	return res, nil
}

// fewest is the smallest replica count that serves part within the SLO target when started fresh.
func fewest(cfg Config, part []Request) (int32, error) {
	lo, hi := cfg.Policy.MinReplicas, cfg.Policy.MaxReplicas
	meets := func(n int32) (bool, error) {
		c := cfg
		c.InitialReplicas = n
		r, err := simulate(c, &scheduleControl{plan: []int32{n}}, part, runOpts{name: LowerBound, zeroStartup: true})
		return r.SLOAttainment >= cfg.SLOTarget, err
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		ok, err := meets(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}
