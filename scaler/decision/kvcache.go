package decision

import (
	"fmt"
	"math"
	"time"
)

// KV-cache headroom.
//
// vLLM admits a request only when its pod's KV cache has room for it; a pod whose cache is full makes every new
// request wait (and preempts running ones), so its requests miss their TTFT whatever the service's averages
// say. The operator fronts the pods with a ClusterIP Service, which sends each request to a pod at random, so
// each pod holds a random share of the KV load in flight. Decode tokens/s does not see this: long prompts fill
// an A10G's cache (33,600 tokens for Llama 3.1 8B) at ~250 decode tokens/s per pod, well under a 400 floor.
//
// The rule sizes the service so that the KV load of the last minute, spread at random over N pods, leaves
// every pod's cache room:
//
//   - K is the KV load, the sum of the ready pods' kv_cache_usage_perc (in caches: 2.4 means 2.4 full caches'
//     worth of tokens), averaged over the last kvWindow of scrapes.
//   - Under random routing a pod's load is a sum of independent requests' footprints, so its variance grows
//     with its mean: var = r·mean, where r, the index of dispersion (variance over mean across pods, in
//     caches), is measured across the pods at each scrape and averaged like K. A mix of long prompts has a
//     large r and needs more headroom than one of short ones; r needs no constant about the traffic.
//   - With N pods, each pod's load is about mean K/N and standard deviation sqrt(r·K/N). The chance that one
//     given pod is full is then P(load > 1) ≈ 1 − Φ((1 − K/N) / sqrt(r·K/N)), and the chance that any of the
//     N is full is at most N times that (union bound). kvFull is that chance's bound: the rule asks for the
//     fewest N with K/N + z_N·sqrt(r·K/N) ≤ 1, z_N = Φ⁻¹(1 − kvFull/N).
//
// That count scales up when it exceeds the current one (capacity ordered before the caches fill, instead of
// after a queue has built) and otherwise holds scale-down at it. The recommendation enters the window like any
// other. On an H100 (450,000 tokens) the count is almost always 1 and the rule never decides.
const (
	// kvFull bounds the chance, at any moment, that some pod's KV cache is full.
	kvFull = 0.05
	// kvWindow is how much history K and r average over: one minute of scrapes, long enough to smooth one
	// long prompt's arrival and short enough to follow a rising load before the pods started for it are ready.
	kvWindow = time.Minute
)

type kvSample struct {
	at time.Time
	k  float64 // KV load of the ready pods, in caches
	r  float64 // index of dispersion across pods, in caches; valid if hasR
	// hasR is false when fewer than two pods have data (no spread to measure) or the load is zero.
	hasR bool
}

// observeKV records the KV load of a snapshot and forgets samples older than kvWindow.
func (a *Autoscaler) observeKV(s Snapshot) {
	cut := 0
	for cut < len(a.kv) && s.Now.Sub(a.kv[cut].at) >= kvWindow {
		cut++
	}
	a.kv = a.kv[cut:]
	if len(s.Pods) == 0 {
		return
	}
	mean, r, ok := spread(s)
	// A pod without data counts as the mean.
	a.kv = append(a.kv, kvSample{at: s.Now, k: mean * float64(max(s.Ready, len(s.Pods))), r: r, hasR: ok})
}

// spread is the mean KV load of the pods of s with data (in caches, 0 without any) and its index of
// dispersion across them (variance over mean); ok is false when fewer than two pods have data or the load
// is zero.
func spread(s Snapshot) (mean, r float64, ok bool) {
	n := float64(len(s.Pods))
	if n == 0 {
		return 0, 0, false
	}
	var sum float64
	for _, p := range s.Pods {
		sum += kvUsage(p)
	}
	mean = sum / n
	if n < 2 || !(mean > 0) {
		return mean, 0, false
	}
	var v float64
	for _, p := range s.Pods {
		v += (kvUsage(p) - mean) * (kvUsage(p) - mean)
	}
	return mean, v / (n - 1) / mean, true
}

// kvUsage is a pod's KV-cache usage as a fraction, a bad value read as empty.
func kvUsage(p Pod) float64 {
	if !(p.KVCacheUsage > 0) { // negative or NaN
		return 0
	}
	return min(p.KVCacheUsage, 1)
}

// kvNeed is the fewest pods, at most limit, whose KV caches hold load k (in caches) with dispersion r, such
// that the chance that any of them is full stays under kvFull. It returns limit if none does.
func kvNeed(k, r float64, limit int32) int32 {
	if !(k > 0) {
		return 0
	}
	for n := int32(1); n < limit; n++ {
		mean := k / float64(n)
		z := math.Sqrt2 * math.Erfinv(1-2*kvFull/float64(n))
		if mean+z*math.Sqrt(r*mean) <= 1 {
			return n
		}
	}
	return limit
}

// kvHeadroom raises a recommendation that leaves too little KV-cache headroom, when the queue rules did not
// already decide (a queue above target, a hot pod, missing data).
func (a *Autoscaler) kvHeadroom(s Snapshot, d *Decision) {
	switch d.Rule {
	case RuleScaleDown, RuleSteady, RuleThroughputAboveFloor, RuleHeadroom:
	default:
		return
	}
	k, r, ok := a.kvLoad()
	if !ok {
		return
	}
	need := kvNeed(k, r, a.policy.MaxReplicas+1)
	if need <= max(d.Recommendation, a.policy.MinReplicas) {
		return
	}
	why := fmt.Sprintf("the last minute's KV-cache load is %.2f caches (dispersion %.3f): %d pods keep the chance that any pod's cache is full under %g %%",
		k, r, need, 100*kvFull)
	d.Recommendation = need
	if need > s.Current {
		d.Rule = RuleScaleUpKVCache
		d.Reason = fmt.Sprintf("%s; %d replicas are too few (%s)", why, s.Current, d.Reason)
		return
	}
	d.Rule = RuleKVCacheHeadroom
	d.Reason = fmt.Sprintf("%s; holding %d (%s)", why, need, d.Reason)
}

// kvLoad is the last kvWindow's mean KV-cache load (in caches) and dispersion.
func (a *Autoscaler) kvLoad() (k, r float64, ok bool) {
	if len(a.kv) == 0 {
		return 0, 0, false
	}
	var withR int
	for _, smp := range a.kv {
		k += smp.k
		if smp.hasR {
			r += smp.r
			withR++
		}
	}
	k /= float64(len(a.kv))
	if withR > 0 {
		r /= float64(withR)
	}
	return k, r, true
}
