// Package decision turns a snapshot of a service's signals into a desired replica count and the reason for
// it. It is pure: plain structs in, a Decision out, time taken from the snapshot (the caller's clock), no I/O
// and no Kubernetes types, so the scaler, the trace simulator and the tests run the very same code.
//
// How many pods (each step's details are in its file):
//   - The capacity model (capacity.go, demand.go): demand measured from the pods' counters (requests/s,
//     uncached prompt and output tokens per request), what one pod sustains from a step cost model (a prior
//     refined by what the pods report), and the fewest pods whose prefill queues keep the time to first token
//     within the objective, or without one, the queue target's worth of waiting, for the attainment's share
//     of requests.
//   - Burst headroom (headroom.go): that count is for the current demand grown by the most it has grown within
//     one startup delay in the service's recent history.
//   - The queue target is the primary scale-up trigger: when waiting requests per ready pod exceed it, the
//     service scales up at once to serve running + waiting against the batch a saturated pod sustains plus the
//     target queue, even on partial data. Starting pods are capacity already on its way: the counts include
//     them.
//   - Without the capacity model, a pod whose own queue exceeds the target while the average does not adds a
//     replica (hot pods: the Service routes at random). The model sizes each pod's queue under random
//     routing, so with its data a hot pod is that queue's variation, and the model's count stands.
//     KV-cache headroom (kvcache.go) keeps the chance that any pod's cache is full small.
//   - Without the counters the capacity model needs (an old vLLM), the throughput floor decides scale-down
//     as its field says: scale down when decode tokens/s per pod is under it and the queue is under target,
//     to the count that keeps the pods at the floor.
//   - A scale-down takes effect only when every recommendation in the stabilization window allowed it (the
//     HPA's rule: the highest recommendation in the window wins). Scale-up is immediate.
//   - Missing data is not zero: a ready pod without fresh data (or with counts no vLLM reports), or no ready
//     pod at all, holds the current size, and a hold counts as a recommendation in the window. After a
//     (re)start, nothing scales down before one full window of data.
package decision

import (
	"fmt"
	"math"
	"time"
)

// RateWindow is the span the pods' counter rates cover (package signals keeps the scrapes for it): long
// enough that a few requests make a rate (a pod serving 2 requests/s sees ~60), short enough that a burst
// shows within an HPA sync or two.
const RateWindow = 30 * time.Second

// Policy is what an SRE sets in the LLMInferenceService's autoscaling block, and the capacity prior.
type Policy struct {
	MinReplicas int32
	MaxReplicas int32
	// TargetQueue is the tolerated number of waiting requests per ready pod (RequestQueue metric).
	TargetQueue float64
	// TargetDecodeTPS is the floor of decode tokens/s per pod below which a pod is under-used (Throughput
	// metric); 0 means no floor. It decides scale-down only for pods without the counters the capacity model
	// needs.
	TargetDecodeTPS float64
	// ScaleDownWindow is scaleDownStabilizationSeconds.
	ScaleDownWindow time.Duration
	// Objective is what the capacity model sizes for; DefaultObjective when its TTFT is 0.
	Objective Objective
	// Capacity is the prior of what one pod can do; the zero value leaves the capacity model off, and the
	// queue and throughput rules decide alone.
	Capacity Capacity
}

// Objective is a time-to-first-token objective.
type Objective struct {
	// TTFT is the time to first token a request should meet; 0 means no objective.
	TTFT time.Duration
	// Attainment is the share of requests that should meet it (DefaultObjective's if 0).
	Attainment float64
}

// DefaultObjective is what the capacity model sizes for when the service sets no objective: a first token
// within 2 s for 99 % of the requests, the usual objective of interactive chat. The queue target bounds the
// average queue per pod besides, and triggers a scale-up at once when the queue exceeds it.
var DefaultObjective = Objective{TTFT: 2 * time.Second, Attainment: 0.99}

// Validate says what is wrong with a policy.
func (p Policy) Validate() error {
	switch {
	case p.MinReplicas < 1:
		return fmt.Errorf("minReplicas is %d: it must be at least 1", p.MinReplicas)
	case p.MaxReplicas < p.MinReplicas:
		return fmt.Errorf("maxReplicas %d is below minReplicas %d", p.MaxReplicas, p.MinReplicas)
	case !(p.TargetQueue > 0):
		return fmt.Errorf("targetAverageQueueDepth is %v: it must be above 0", p.TargetQueue)
	case p.TargetDecodeTPS < 0 || math.IsNaN(p.TargetDecodeTPS):
		return fmt.Errorf("targetDecodeTokensPerSecond is %v: it must be 0 (unset) or above", p.TargetDecodeTPS)
	case p.ScaleDownWindow < 0:
		return fmt.Errorf("scaleDownStabilizationSeconds is negative")
	case p.Objective.TTFT < 0:
		return fmt.Errorf("objective.timeToFirstToken is negative")
	case p.Objective.Attainment < 0 || p.Objective.Attainment >= 1 || math.IsNaN(p.Objective.Attainment):
		return fmt.Errorf("objective.attainment is %v: it must be in (0, 1), 0.99 for 99 %%", p.Objective.Attainment)
	}
	if p.Capacity != (Capacity{}) {
		if err := p.Capacity.Validate(); err != nil {
			return fmt.Errorf("capacity prior: %w", err)
		}
	}
	return nil
}

// budget is what the capacity model sizes the pods' prefill queues for.
func (p Policy) budget() Budget {
	o := p.Objective
	if o.TTFT == 0 {
		o = DefaultObjective
	}
	if o.Attainment == 0 {
		o.Attainment = DefaultObjective.Attainment
	}
	return Budget{TTFT: o.TTFT, Attainment: o.Attainment, QueueDepth: p.TargetQueue}
}

// Pod is what one ready pod's latest scrapes say.
type Pod struct {
	Waiting float64
	Running float64
	// DecodeTPS is the rate of vllm:generation_tokens_total over the last rate window; valid only if
	// HasDecodeTPS (a rate needs two scrapes of the same process).
	DecodeTPS    float64
	HasDecodeTPS bool
	KVCacheUsage float64
	// Over the same window, valid only if HasTokenRates (the pod exports the prompt and first-token
	// counters, and was scraped twice): PromptTPS is uncached prompt tokens/s (prompt tokens less those the
	// prefix cache served), FirstTokensPS requests/s whose first token was sampled, WaitingGrowth the change
	// of Waiting per second.
	PromptTPS, FirstTokensPS, WaitingGrowth float64
	HasTokenRates                           bool
	// RateSpan is the time the rates cover: RateWindow once the pod has been scraped that long, less for a
	// pod that has just started.
	RateSpan time.Duration
	// RecentArrivals is first tokens/s plus the waiting queue's growth over the last scrape interval only,
	// RecentSpan: a burst shorter than the rate window shows in it undiluted.
	RecentArrivals float64
	RecentSpan     time.Duration
	// KVCacheTokens is the pod's KV-cache size in tokens, 0 if unknown.
	KVCacheTokens float64
	// PromptLengths is requests/s by prompt length over the rate window (vllm:request_prompt_tokens, counted
	// as requests finish), valid only if HasTokenRates; zero if the pod does not export it.
	PromptLengths Histogram
}

// Snapshot is a service's state at one instant.
type Snapshot struct {
	Now time.Time
	// Current is the replica count the scale target has now (Deployment spec.replicas).
	Current int32
	// Ready is the number of ready pods; Starting the number created but not yet ready.
	Ready    int
	Starting int
	// Pods holds the signals of the ready pods that have fresh data; Missing counts ready pods that do not
	// (scrape failed, stale, or bad payload).
	Pods    []Pod
	Missing int
	// StartupDelay is how long the service's pods take from creation to ready, as observed; 0 if unknown.
	StartupDelay time.Duration
}

// Rule names the rule that produced a decision; it is also a metric label, so the set is fixed.
type Rule string

const (
	RuleNoReadyPod               Rule = "NoReadyPod"
	RuleScaleUpQueue             Rule = "ScaleUpQueue"
	RuleScaleUpHotPod            Rule = "ScaleUpHotPod"
	RuleStartingPodsAbsorbDemand Rule = "StartingPodsAbsorbDemand"
	RuleSteady                   Rule = "Steady"
	RuleScaleDown                Rule = "ScaleDown"
	RuleQueueAboveTarget         Rule = "QueueAboveTarget"
	RuleThroughputAboveFloor     Rule = "ThroughputAboveFloor"
	RuleScaleUpCapacity          Rule = "ScaleUpCapacity"
	RuleScaleUpHeadroom          Rule = "ScaleUpHeadroom"
	RuleHeadroom                 Rule = "Headroom"
	RuleScaleUpKVCache           Rule = "ScaleUpKVCache"
	RuleKVCacheHeadroom          Rule = "KVCacheHeadroom"
	RuleMissingData              Rule = "MissingData"
	RuleScaleDownStabilizing     Rule = "ScaleDownStabilizing"
	RuleWarmingUp                Rule = "WarmingUp"
	RuleAtMaxReplicas            Rule = "AtMaxReplicas"
	RuleAtMinReplicas            Rule = "AtMinReplicas"
)

// Decision is the outcome for one snapshot.
type Decision struct {
	// Desired is the replica count to run, within [MinReplicas, MaxReplicas].
	Desired int32
	// Recommendation is the count the signals alone ask for, before the window and the bounds.
	Recommendation int32
	Rule           Rule
	// Reason explains Desired in a sentence an SRE can act on.
	Reason string
	// The signals behind the decision, per ready pod with data.
	WaitingPerPod   float64
	RunningPerPod   float64
	DecodeTPSPerPod float64
	KVCacheUsage    float64
	// Batch is the estimated number of sequences a saturated pod sustains.
	Batch float64
	// Capacity is the capacity model's count for the current demand and Headroom the factor on the
	// baseline the burst headroom keeps pods for; both 0 when the model did not run.
	Capacity int32
	Headroom float64
}

type record struct {
	at      time.Time
	desired int32
}

// Autoscaler decides for one service. It keeps the recommendations of the last window, the demand's recent
// history and the per-request sizes; it is not safe for concurrent use.
type Autoscaler struct {
	policy  Policy
	started time.Time // when this process first had data; no scale-down for one window after it
	history []record
	kv      []kvSample // the KV-cache load of the last kvWindow
	sizes   sizes
	growth  growth
	calib   calibration
	window  time.Duration
	off     map[Mechanism]bool
}

// New returns an Autoscaler for policy.
func New(p Policy, opts ...Option) *Autoscaler {
	a := &Autoscaler{policy: p, window: RateWindow}
	for _, o := range opts {
		o(a)
	}
	a.growth.levelOnly = !a.on(MechanismRisingLevel)
	a.growth.everyRatio = !a.on(MechanismBurstRatio)
	a.growth.noReturns = !a.on(MechanismSilenceReturn)
	a.growth.bothForms = !a.on(MechanismBurstForm)
	return a
}

// SetPolicy applies an edited policy from the next decision on, keeping the window's history.
func (a *Autoscaler) SetPolicy(p Policy) { a.policy = p }

// Decide returns the decision for s and records it in the window.
func (a *Autoscaler) Decide(s Snapshot) Decision {
	p := a.policy
	s = plausible(s)
	d := a.rules(p, s)
	a.observeKV(s)
	modelled := a.model(p, s, &d)
	if d.Rule == RuleNoReadyPod || d.Rule == RuleMissingData {
		// Hold: the hold is recorded so the window does not forget it, but it starts no warm-up.
		d.Desired = clamp(d.Recommendation, p)
		a.remember(s.Now, d.Desired)
		return d
	}
	if a.started.IsZero() {
		a.started = s.Now
	}
	if a.on(MechanismKVHeadroom) && !modelled {
		a.kvHeadroom(s, &d)
	}
	rec := clamp(d.Recommendation, p)
	a.remember(s.Now, rec)
	d.Desired = rec
	a.stabilize(p, s, &d)
	return d
}

// stabilize holds a scale-down for the window (and, after a restart, for one whole window of data) and names
// the bound a decision was clamped to.
func (a *Autoscaler) stabilize(p Policy, s Snapshot, d *Decision) {
	rec := d.Desired
	if peak := clamp(a.peak(s.Now), p); peak > rec {
		// The peak is clamped too: after an edit lowers maxReplicas, the window may remember a count above it.
		d.Desired = peak
		d.Rule = RuleScaleDownStabilizing
		d.Reason = fmt.Sprintf("signals allow %d replicas, but within the last %s a recommendation asked for %d: "+
			"scale-down waits until every recommendation in the window allows it (%s)", rec, p.ScaleDownWindow, peak, d.Reason)
	}
	if d.Desired < s.Current && s.Now.Sub(a.started) < p.ScaleDownWindow {
		d.Desired = clamp(s.Current, p)
		d.Rule = RuleWarmingUp
		d.Reason = fmt.Sprintf("the scaler has had data for %s, less than one scale-down window (%s): holding %d until it has seen a full window",
			s.Now.Sub(a.started).Round(time.Second), p.ScaleDownWindow, d.Desired)
	}
	switch {
	case d.Recommendation > p.MaxReplicas && d.Desired == p.MaxReplicas:
		d.Rule = RuleAtMaxReplicas
		d.Reason = fmt.Sprintf("demand asks for %d replicas; holding at maxReplicas %d (%s)", d.Recommendation, p.MaxReplicas, d.Reason)
	case d.Recommendation < p.MinReplicas && d.Desired == p.MinReplicas && d.Rule == RuleScaleDown:
		d.Rule = RuleAtMinReplicas
		d.Reason = fmt.Sprintf("at minReplicas %d (%s)", p.MinReplicas, d.Reason)
	}
}

// remember records a recommendation and forgets those older than the window.
func (a *Autoscaler) remember(now time.Time, desired int32) {
	cut := 0
	for cut < len(a.history) && now.Sub(a.history[cut].at) > a.policy.ScaleDownWindow {
		cut++
	}
	a.history = append(a.history[cut:], record{now, desired})
}

// peak is the highest recommendation within the window.
func (a *Autoscaler) peak(now time.Time) int32 {
	var m int32
	for _, r := range a.history {
		if now.Sub(r.at) <= a.policy.ScaleDownWindow && r.desired > m {
			m = r.desired
		}
	}
	return m
}

// maxPlausibleRequests bounds a pod's waiting or running count: vLLM runs at most --max-num-seqs requests
// (256 or 1024 by default) and a million waiting would take days to serve. A larger, negative or non-finite
// count comes from a broken exporter, not from load.
const maxPlausibleRequests = 1e6

// plausible returns s with the pods whose signals cannot be real moved to Missing: missing data is not zero,
// and impossible data is missing. (A running count of 1e12 would otherwise read as "one pod runs batches of
// 1e12" and fit any demand in one pod; a NaN decode rate would read as under any floor.)
func plausible(s Snapshot) Snapshot {
	count := func(x float64) bool { return x >= 0 && x <= maxPlausibleRequests } // false for NaN
	ok := func(p Pod) bool {
		return count(p.Waiting) && count(p.Running) && (!p.HasDecodeTPS || p.DecodeTPS >= 0 && !math.IsInf(p.DecodeTPS, 1))
	}
	for i, p := range s.Pods {
		if ok(p) {
			continue
		}
		kept := append([]Pod(nil), s.Pods[:i]...)
		for _, q := range s.Pods[i:] {
			if ok(q) {
				kept = append(kept, q)
			} else {
				s.Missing++
			}
		}
		s.Pods = kept
		break
	}
	return s
}

// totals are a snapshot's signals summed over the ready pods with data.
type totals struct {
	waiting, running, tps, kv float64
	withTPS                   int
	allTPS                    bool
	maxRunning                float64
	hot                       int32 // pods whose own queue exceeds the target
	saturated                 int   // pods with requests waiting
	satRunning                float64
}

func sum(p Policy, s Snapshot) totals {
	t := totals{allTPS: true}
	for _, pod := range s.Pods {
		t.waiting += pod.Waiting
		t.running += pod.Running
		t.kv += pod.KVCacheUsage
		if pod.HasDecodeTPS {
			t.tps += pod.DecodeTPS
			t.withTPS++
		} else {
			t.allTPS = false
		}
		t.maxRunning = max(t.maxRunning, pod.Running)
		if pod.Waiting > p.TargetQueue {
			t.hot++
		}
		if pod.Waiting > 0 {
			t.saturated++
			t.satRunning += pod.Running
		}
	}
	return t
}

// rules applies the queue rules, and the throughput floor where the capacity model does not run, to one
// snapshot, without memory.
func (a *Autoscaler) rules(p Policy, s Snapshot) Decision {
	if s.Ready == 0 {
		return Decision{Recommendation: s.Current, Rule: RuleNoReadyPod,
			Reason: fmt.Sprintf("no ready pod to measure (%d starting): holding %d replicas", s.Starting, clamp(s.Current, p))}
	}
	t := sum(p, s)
	n := float64(len(s.Pods))
	d := Decision{}
	if n > 0 {
		d.WaitingPerPod, d.RunningPerPod, d.DecodeTPSPerPod, d.KVCacheUsage = t.waiting/n, t.running/n, t.tps/n, t.kv/n
	}
	// A pod with requests waiting runs the largest batch it can (sequence slots or KV cache): its running
	// count is the batch a saturated pod sustains. Without a saturated pod, the largest running count is a
	// lower bound of it.
	d.Batch = max(t.maxRunning, 1)
	if t.saturated > 0 {
		d.Batch = max(t.satRunning/float64(t.saturated), 1)
	}
	if a.queueRules(p, s, t, &d) {
		return d
	}
	a.floorRules(p, s, t, &d)
	return d
}

// queueRules decides when requests queue: above the target on average (scale up, or hold while starting
// pods absorb it), on single pods (hot pods), or when a pod has no data (hold). It reports whether it decided.
func (a *Autoscaler) queueRules(p Policy, s Snapshot, t totals, d *Decision) bool {
	needed := replicasFor(t.waiting+t.running, d.Batch+p.TargetQueue)
	queueAbove := d.WaitingPerPod > p.TargetQueue
	switch {
	case queueAbove && needed > s.Current:
		// Scale up, even on partial data: the waiting requests seen are a lower bound of demand.
		d.Recommendation, d.Rule = needed, RuleScaleUpQueue
		d.Reason = fmt.Sprintf("%.1f requests wait per ready pod (target %g) with batches of %.0f: %d replicas serve %.0f running + waiting",
			d.WaitingPerPod, p.TargetQueue, d.Batch, needed, t.waiting+t.running)
	case queueAbove && s.Starting > 0:
		d.Recommendation, d.Rule = s.Current, RuleStartingPodsAbsorbDemand
		d.Reason = fmt.Sprintf("%.1f requests wait per ready pod (target %g); the %d starting pods are capacity on its way and absorb them: holding %d",
			d.WaitingPerPod, p.TargetQueue, s.Starting, s.Current)
	case queueAbove:
		d.Recommendation, d.Rule = s.Current, RuleQueueAboveTarget
		d.Reason = fmt.Sprintf("%.1f requests wait per ready pod (target %g), but %d replicas with batches of %.0f serve them: never scale down while requests queue",
			d.WaitingPerPod, p.TargetQueue, s.Current, d.Batch)
	case t.hot > int32(s.Starting) && s.Missing == 0:
		d.Recommendation, d.Rule = s.Current+t.hot-int32(s.Starting), RuleScaleUpHotPod
		d.Reason = fmt.Sprintf("%d pods have more than %g requests waiting though the average is %.1f: %d more replicas spread the load",
			t.hot, p.TargetQueue, d.WaitingPerPod, t.hot-int32(s.Starting))
	case s.Missing > 0:
		d.Recommendation, d.Rule = s.Current, RuleMissingData
		d.Reason = fmt.Sprintf("%d of %d ready pods have no fresh metrics: holding %d replicas (missing data never scales down)",
			s.Missing, s.Ready, clamp(s.Current, p))
	default:
		return false
	}
	return true
}

// floorRules decides with the queue under its target: as far down as the queue and the throughput floor
// allow. A pod with a request or two waiting is then caught between scheduler steps (a request waits until
// the next step admits it, or behind a long prompt's prefill chunks), not saturated: the largest batch any
// pod runs is a lower bound of what a pod sustains. Without it, one pod with 1 waiting and 2 running reads
// as "a pod serves 2 + target requests" and the recommendation jumps for one scrape, which the window then
// holds for a full window.
func (a *Autoscaler) floorRules(p Policy, s Snapshot, t totals, d *Decision) {
	if t.maxRunning > d.Batch {
		d.Batch = t.maxRunning
	}
	target := replicasFor(t.waiting+t.running, d.Batch+p.TargetQueue)
	if p.TargetDecodeTPS > 0 {
		if t.withTPS == 0 {
			d.Recommendation, d.Rule = s.Current, RuleMissingData
			d.Reason = fmt.Sprintf("decode tokens/s needs two scrapes of a ready pod: holding %d replicas", clamp(s.Current, p))
			return
		}
		tps := t.tps
		if !t.allTPS {
			// A pod that has just become ready has no rate yet. As the HPA does with a pod's missing metric
			// on a scale-down, count it at the floor: it can only hold replicas, never remove them, and the
			// window is not re-armed at the current size each time a new pod comes up.
			tps += float64(len(s.Pods)-t.withTPS) * p.TargetDecodeTPS
			d.DecodeTPSPerPod = tps / float64(len(s.Pods))
		}
		if d.DecodeTPSPerPod >= p.TargetDecodeTPS {
			d.Recommendation, d.Rule = max(s.Current, target), RuleThroughputAboveFloor
			d.Reason = fmt.Sprintf("%.0f decode tokens/s per pod is at or above the floor %g: pods are busy, keeping %d",
				d.DecodeTPSPerPod, p.TargetDecodeTPS, d.Recommendation)
			return
		}
		// ceil keeps the throughput per pod at or under the floor after the change, so the next decision
		// reaches the same count instead of stepping down again.
		target = max(target, replicasFor(tps, p.TargetDecodeTPS))
	}
	if target >= s.Current {
		d.Recommendation, d.Rule = s.Current, RuleSteady
		d.Reason = fmt.Sprintf("%.1f waiting and %.0f decode tokens/s per pod: %d replicas fit the targets", d.WaitingPerPod, d.DecodeTPSPerPod, s.Current)
		return
	}
	d.Recommendation, d.Rule = target, RuleScaleDown
	d.Reason = fmt.Sprintf("queue %.1f per pod under target %g and %.0f decode tokens/s per pod under the floor %g: %d replicas carry the load",
		d.WaitingPerPod, p.TargetQueue, d.DecodeTPSPerPod, p.TargetDecodeTPS, target)
}

func clamp(n int32, p Policy) int32 { return min(max(n, p.MinReplicas), p.MaxReplicas) }

// replicasFor is ceil(load/per) as a replica count, bounded so that absurd inputs (a broken exporter's
// running count) saturate instead of wrapping around int32.
func replicasFor(load, per float64) int32 {
	x := math.Ceil(load / per)
	switch {
	case !(x > 0): // 0, negative or NaN
		return 0
	case x >= math.MaxInt32:
		return math.MaxInt32
	}
	return int32(x)
}
