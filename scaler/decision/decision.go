// Package decision turns a snapshot of a service's signals into a desired replica count and the reason for
// it. It is pure: plain structs in, a Decision out, time taken from the snapshot (the caller's clock), no I/O
// and no Kubernetes types, so the scaler, the trace simulator and the tests run the very same code.
//
// The rules (see DESIGN.md section 4):
//   - Demand is running + waiting requests against the batch a saturated pod sustains plus the queue the SRE
//     tolerates per pod: desired = ceil((running + waiting) / (batch + targetQueue)). Waiting alone overstates
//     demand when pods run large batches.
//   - Scale up when waiting per ready pod exceeds the target. Starting pods are capacity already on its way:
//     the desired count includes them, so demand they will absorb adds nothing.
//   - Scale up by one replica per pod whose own queue exceeds the target while the average does not (beyond the
//     pods already starting). The Service spreads requests at random, so queues pile on single pods (a long
//     prompt fills one pod's KV cache) well before the average moves; the requests on that pod miss their
//     TTFT all the same. A hot pod also counts as a recommendation in the window, so it holds scale-down.
//   - Keep KV-cache headroom (see kvcache.go): the Service routes at random, so each pod's KV cache holds a
//     random share of the requests in flight, and a pod whose cache is full makes its new requests wait
//     whatever the averages say. The replica count is at least the fewest pods for which, with the KV load
//     of the last minute spread over them, the chance that any one pod's cache is full stays under 5 %; it
//     scales up when the current count falls short of it and holds scale-down otherwise.
//   - Scale down only when the queue is under its target and, if a Throughput floor is set, decode tokens/s per
//     pod is under it; never while requests queue above target. A pod that has just become ready has no decode
//     rate yet (a rate needs two scrapes): like the HPA with a pod's missing metric on a scale-down, it counts
//     at the floor, and the other pods' rates decide.
//   - With the queue under its target, a pod with a request or two waiting is caught between scheduler steps,
//     not saturated: the batch a pod sustains is then at least the largest batch any pod runs.
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

// Policy is what an SRE sets in the LLMInferenceService's autoscaling block.
type Policy struct {
	MinReplicas int32
	MaxReplicas int32
	// TargetQueue is the tolerated number of waiting requests per ready pod (RequestQueue metric).
	TargetQueue float64
	// TargetDecodeTPS is the floor of decode tokens/s per pod below which a pod is under-used (Throughput
	// metric); 0 means no floor, and scale-down follows the queue alone.
	TargetDecodeTPS float64
	// ScaleDownWindow is scaleDownStabilizationSeconds.
	ScaleDownWindow time.Duration
}

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
	}
	return nil
}

// Pod is what one ready pod's latest scrapes say.
type Pod struct {
	Waiting float64
	Running float64
	// DecodeTPS is the rate of vllm:generation_tokens_total between the last two scrapes; valid only if
	// HasDecodeTPS (a rate needs two scrapes of the same process).
	DecodeTPS    float64
	HasDecodeTPS bool
	KVCacheUsage float64
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
}

// Rule names the rule that produced a decision; it is also a metric label, so the set is fixed.
type Rule string

const (
	RuleNoReadyPod     Rule = "NoReadyPod"
	RuleScaleUpQueue   Rule = "ScaleUpQueue"
	RuleScaleUpHotPod  Rule = "ScaleUpHotPod"
	RuleStartingAbsorb Rule = "StartingPodsAbsorbDemand"
	RuleSteady         Rule = "Steady"
	RuleScaleDown      Rule = "ScaleDown"
	RuleQueueHoldsDown Rule = "QueueAboveTarget"
	RuleBusyHoldsDown  Rule = "ThroughputAboveFloor"
	RuleScaleUpKVCache Rule = "ScaleUpKVCache"
	RuleKVHoldsDown    Rule = "KVCacheHeadroom"
	RuleMissingData    Rule = "MissingData"
	RuleStabilizing    Rule = "ScaleDownStabilizing"
	RuleWarmingUp      Rule = "WarmingUp"
	RuleAtMax          Rule = "AtMaxReplicas"
	RuleAtMin          Rule = "AtMinReplicas"
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
}

type record struct {
	at      time.Time
	desired int32
}

// Autoscaler decides for one service. It keeps the recommendations of the last window; it is not safe for
// concurrent use.
type Autoscaler struct {
	policy  Policy
	started time.Time // when this process first had data; no scale-down for one window after it
	history []record
	kv      []kvSample // the KV-cache load of the last kvWindow
	off     map[Mechanism]bool
}

// New returns an Autoscaler for policy.
func New(p Policy, opts ...Option) *Autoscaler {
	a := &Autoscaler{policy: p}
	for _, o := range opts {
		o(a)
	}
	return a
}

// SetPolicy applies an edited policy from the next decision on, keeping the window's history.
func (a *Autoscaler) SetPolicy(p Policy) { a.policy = p }

// Decide returns the decision for s and records it in the window.
func (a *Autoscaler) Decide(s Snapshot) Decision {
	p := a.policy
	s = plausible(s)
	d := recommend(p, s)
	a.observeKV(s)
	if d.Rule == RuleNoReadyPod || d.Rule == RuleMissingData {
		// Hold: the hold is recorded so the window does not forget it, but it starts no warm-up.
		d.Desired = clamp(s.Current, p)
		a.remember(s.Now, d.Desired)
		return d
	}
	if a.started.IsZero() {
		a.started = s.Now
	}
	a.kvHeadroom(s, &d)
	rec := clamp(d.Recommendation, p)
	a.remember(s.Now, rec)
	d.Desired = rec
	if peak := clamp(a.peak(s.Now), p); peak > rec {
		// The peak is clamped too: after an edit lowers maxReplicas, the window may remember a count above it.
		d.Desired = peak
		d.Rule = RuleStabilizing
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
		d.Rule = RuleAtMax
		d.Reason = fmt.Sprintf("demand asks for %d replicas; holding at maxReplicas %d (%s)", d.Recommendation, p.MaxReplicas, d.Reason)
	case d.Recommendation < p.MinReplicas && d.Desired == p.MinReplicas && d.Rule == RuleScaleDown:
		d.Rule = RuleAtMin
		d.Reason = fmt.Sprintf("at minReplicas %d (%s)", p.MinReplicas, d.Reason)
	}
	return d
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

// recommend applies the demand rules to one snapshot, without memory.
func recommend(p Policy, s Snapshot) Decision {
	if s.Ready == 0 {
		return Decision{Recommendation: s.Current, Rule: RuleNoReadyPod,
			Reason: fmt.Sprintf("no ready pod to measure (%d starting): holding %d replicas", s.Starting, clamp(s.Current, p))}
	}
	var waiting, running, tps, kv, satRunning float64
	var saturated, withTPS int
	maxRunning := 0.0
	var hot int32
	allTPS := true
	for _, pod := range s.Pods {
		waiting += pod.Waiting
		running += pod.Running
		kv += pod.KVCacheUsage
		if pod.HasDecodeTPS {
			tps += pod.DecodeTPS
			withTPS++
		} else {
			allTPS = false
		}
		maxRunning = max(maxRunning, pod.Running)
		if pod.Waiting > p.TargetQueue {
			hot++
		}
		if pod.Waiting > 0 {
			saturated++
			satRunning += pod.Running
		}
	}
	n := float64(len(s.Pods))
	d := Decision{}
	if n > 0 {
		d.WaitingPerPod, d.RunningPerPod, d.DecodeTPSPerPod, d.KVCacheUsage = waiting/n, running/n, tps/n, kv/n
	}
	// A pod with requests waiting runs the largest batch it can (sequence slots or KV cache): its running
	// count is the batch a saturated pod sustains. Without a saturated pod, the largest running count is a
	// lower bound of it.
	d.Batch = max(maxRunning, 1)
	if saturated > 0 {
		d.Batch = max(satRunning/float64(saturated), 1)
	}
	needed := replicasFor(waiting+running, d.Batch+p.TargetQueue)
	queueAbove := d.WaitingPerPod > p.TargetQueue

	switch {
	case queueAbove && needed > s.Current:
		// Scale up, even on partial data: the waiting requests seen are a lower bound of demand.
		d.Recommendation, d.Rule = needed, RuleScaleUpQueue
		d.Reason = fmt.Sprintf("%.1f requests wait per ready pod (target %g) with batches of %.0f: %d replicas serve %.0f running + waiting",
			d.WaitingPerPod, p.TargetQueue, d.Batch, needed, waiting+running)
		return d
	case queueAbove && s.Starting > 0:
		d.Recommendation, d.Rule = s.Current, RuleStartingAbsorb
		d.Reason = fmt.Sprintf("%.1f requests wait per ready pod (target %g); the %d starting pods are capacity on its way and absorb them: holding %d",
			d.WaitingPerPod, p.TargetQueue, s.Starting, s.Current)
		return d
	case queueAbove:
		d.Recommendation, d.Rule = s.Current, RuleQueueHoldsDown
		d.Reason = fmt.Sprintf("%.1f requests wait per ready pod (target %g), but %d replicas with batches of %.0f serve them: never scale down while requests queue",
			d.WaitingPerPod, p.TargetQueue, s.Current, d.Batch)
		return d
	case hot > int32(s.Starting) && s.Missing == 0:
		d.Recommendation, d.Rule = s.Current+hot-int32(s.Starting), RuleScaleUpHotPod
		d.Reason = fmt.Sprintf("%d pods have more than %g requests waiting though the average is %.1f: %d more replicas spread the load",
			hot, p.TargetQueue, d.WaitingPerPod, hot-int32(s.Starting))
		return d
	case s.Missing > 0:
		d.Recommendation, d.Rule = s.Current, RuleMissingData
		d.Reason = fmt.Sprintf("%d of %d ready pods have no fresh metrics: holding %d replicas (missing data never scales down)",
			s.Missing, s.Ready, clamp(s.Current, p))
		return d
	}

	// The queue is under its target: scale down as far as the queue and the throughput floor allow. A pod
	// with a request or two waiting is then caught between scheduler steps (a request waits until the next
	// step admits it, or behind a long prompt's prefill chunks), not saturated: the largest batch any pod
	// runs is a lower bound of what a pod sustains. Without it, one pod with 1 waiting and 2 running reads
	// as "a pod serves 2 + target requests" and the recommendation jumps for one scrape, which the window
	// then holds for a full window.
	if maxRunning > d.Batch {
		d.Batch = maxRunning
		needed = replicasFor(waiting+running, d.Batch+p.TargetQueue)
	}
	target := needed
	if p.TargetDecodeTPS > 0 {
		if withTPS == 0 {
			d.Recommendation, d.Rule = s.Current, RuleMissingData
			d.Reason = fmt.Sprintf("decode tokens/s needs two scrapes of a ready pod: holding %d replicas", clamp(s.Current, p))
			return d
		}
		if !allTPS {
			// A pod that has just become ready has no rate yet. As the HPA does with a pod's missing metric
			// on a scale-down, count it at the floor: it can only hold replicas, never remove them, and the
			// window is not re-armed at the current size each time a new pod comes up.
			tps += float64(len(s.Pods)-withTPS) * p.TargetDecodeTPS
			d.DecodeTPSPerPod = tps / n
		}
		if d.DecodeTPSPerPod >= p.TargetDecodeTPS {
			d.Recommendation, d.Rule = max(s.Current, needed), RuleBusyHoldsDown
			d.Reason = fmt.Sprintf("%.0f decode tokens/s per pod is at or above the floor %g: pods are busy, keeping %d",
				d.DecodeTPSPerPod, p.TargetDecodeTPS, d.Recommendation)
			return d
		}
		// ceil keeps the throughput per pod at or under the floor after the change, so the next decision
		// reaches the same count instead of stepping down again.
		target = max(target, replicasFor(tps, p.TargetDecodeTPS))
	}
	if target >= s.Current {
		d.Recommendation, d.Rule = s.Current, RuleSteady
		d.Reason = fmt.Sprintf("%.1f waiting and %.0f decode tokens/s per pod: %d replicas fit the targets", d.WaitingPerPod, d.DecodeTPSPerPod, s.Current)
		return d
	}
	d.Recommendation, d.Rule = target, RuleScaleDown
	d.Reason = fmt.Sprintf("queue %.1f per pod under target %g and %.0f decode tokens/s per pod under the floor %g: %d replicas carry the load",
		d.WaitingPerPod, p.TargetQueue, d.DecodeTPSPerPod, p.TargetDecodeTPS, target)
	return d
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
