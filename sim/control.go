package sim

import (
	"math"
	"time"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/signals"
	"github.com/llm-d/llm-d/scaler/vllmmetrics"
	"github.com/llm-d/llm-d/vllmsim"
)

// epoch anchors the decision package's wall clock; any fixed instant would do.
var epoch = time.Date(2023, 11, 16, 18, 0, 0, 0, time.UTC)

// controller is a scaling policy's control path. tick runs at every multiple of the base tick (5 s) and
// returns the Deployment's new replica count, or ok false to leave it alone.
type controller interface {
	tick(now time.Duration, c *cluster) (replicas int32, ok bool)
}

// llmdControl is the llm-d scaler in the loop: every ScrapeInterval it scrapes every ready pod into
// signals.Pod and calls decision.Decide, as scaler/engine does; every HPA sync, KEDA's GetMetrics returns
// the latest Desired and the HPA, configured by the operator's ScaledObject (AverageValue target 1), acts
// on it.
type llmdControl struct {
	cfg    *Config
	auto   *decision.Autoscaler
	hpa    HPA
	latest int32         // the scaler's latest Desired: what GetMetrics returns
	last   decision.Rule // the rule of the latest decision
	rules  map[decision.Rule]int
}

func newLLMD(cfg *Config) *llmdControl {
	policy := cfg.Policy
	policy.Capacity = Prior(cfg.Replica).Scaled(max(cfg.PriorSpeed, 0))
	return &llmdControl{cfg: cfg, auto: decision.New(policy, decision.Without(cfg.Off...)), latest: cfg.initial(),
		hpa:   HPA{Behavior: OperatorBehavior(), Min: cfg.Policy.MinReplicas, Max: cfg.Policy.MaxReplicas},
		rules: map[decision.Rule]int{}}
}

func (l *llmdControl) tick(now time.Duration, c *cluster) (int32, bool) {
	if now%l.cfg.ScrapeInterval == 0 {
		l.decide(now, c)
	}
	if now%l.cfg.HPASync != 0 {
		return 0, false
	}
	return l.hpa.Sync(now, c.replicas, float64(l.latest), 1), true
}

// decide is one scrape-and-decide round of the scaler: it sets latest to the service's own Desired.
func (l *llmdControl) decide(now time.Duration, c *cluster) {
	wall := epoch.Add(now)
	snap := decision.Snapshot{Now: wall, Current: c.replicas, StartupDelay: l.cfg.Replica.StartupDelay}
	for _, p := range c.pods {
		switch {
		case p.removed: // terminating: discovery skips it
		case !p.ready:
			snap.Starting++
		default:
			snap.Ready++
			p.sig.Observe(wall, signals.FromVLLM(exported(p.r.Metrics(), l.cfg.Replica)))
			s, err := p.sig.Signals(wall, 3*l.cfg.ScrapeInterval)
			if err != nil {
				snap.Missing++
				continue
			}
			snap.Pods = append(snap.Pods, s)
		}
	}
	d := l.auto.Decide(snap)
	l.latest, l.last = d.Desired, d.Rule
	l.rules[d.Rule]++
}

func (l *llmdControl) resetRules() { clear(l.rules) }

func (l *llmdControl) ruleCounts() map[string]int {
	m := map[string]int{}
	for r, n := range l.rules {
		if n == 0 {
			continue // a pool member's decision relabelled PoolBudget
		}
		m[string(r)] = n
	}
	return m
}

// queueControl is the common recipe: KEDA's Prometheus scaler on sum(vllm:num_requests_waiting) and the HPA,
// with its default behavior, against an AverageValue target.
type queueControl struct {
	cfg     *Config
	hpa     HPA
	target  float64
	waiting promSum
}

func newQueue(cfg *Config) *queueControl {
	return &queueControl{cfg: cfg, target: cfg.QueueTarget,
		hpa:     HPA{Behavior: DefaultBehavior(), Min: cfg.Policy.MinReplicas, Max: cfg.Policy.MaxReplicas},
		waiting: newPromSum(cfg, func(p *pod) float64 { return float64(p.r.Metrics().Waiting) })}
}

func (q *queueControl) tick(now time.Duration, c *cluster) (int32, bool) {
	seen := q.waiting.read(now, c)
	if now%q.cfg.HPASync != 0 {
		return 0, false
	}
	return q.hpa.Sync(now, c.replicas, seen, q.target), true
}

// scheduleControl sets the replica count from a fixed plan: one count per Step (static-peak has a single
// step; lower-bound and the learners one per interval).
type scheduleControl struct {
	step time.Duration
	plan []int32
}

func (s *scheduleControl) tick(now time.Duration, c *cluster) (int32, bool) {
	i := 0
	if s.step > 0 {
		i = min(int(now/s.step), len(s.plan)-1)
	}
	return s.plan[i], true
}

// Prior is the capacity prior the simulated scaler starts from: the replica model's own parameters, as the
// scaler's table of GPUs gives them for a real pod (TestPriorMatchesPresets).
func Prior(p vllmsim.Params) decision.Capacity {
	return decision.Capacity{
		PrefillTPS: float64(p.PrefillTokensPerSec), StepBase: p.IterationBase, StepPerSeq: p.DecodePerSeq,
		StepPerContextToken: p.DecodePerContextToken, StepTokens: float64(p.MaxNumBatchedTokens),
		MaxSeqs: float64(p.MaxNumSeqs), KVTokens: float64(p.KVCacheTokens / p.BlockSize * p.BlockSize),
	}
}

// exported is what a replica's /metrics says, as package vllmmetrics reads it (vllmsim/server exports the
// same series).
func exported(m vllmsim.Metrics, p vllmsim.Params) vllmmetrics.Snapshot {
	return vllmmetrics.Snapshot{
		Waiting: float64(m.Waiting), Running: float64(m.Running), KVCacheUsage: m.KVCacheUsage,
		GenerationTokens: float64(m.GenerationTokensTotal), PromptTokens: float64(m.PromptTokensTotal),
		FirstTokens: float64(m.FirstTokensTotal), HasTokenCounters: true,
		KVCacheTokens: float64(p.KVCacheTokens / p.BlockSize * p.BlockSize),
		PromptLengths: promptLengths(m.PromptTokensCumulative(p)),
	}
}

// promptLengths is vllm:request_prompt_tokens's buckets as package vllmmetrics reads them.
func promptLengths(cumulative []uint64) []vllmmetrics.Bucket {
	b := make([]vllmmetrics.Bucket, len(cumulative))
	for i, c := range cumulative {
		b[i] = vllmmetrics.Bucket{UpperBound: math.Inf(1), Count: float64(c)}
		if i < len(cumulative)-1 {
			b[i].UpperBound = vllmsim.PromptTokenBounds[i]
		}
	}
	return b
}
