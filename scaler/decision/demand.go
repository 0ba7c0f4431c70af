package decision

import (
	"math"
	"slices"
	"time"
)

// Demand estimation.
//
//   - Arrivals are the ready pods' first tokens/s plus the growth of their waiting queues over the rate
//     window (what arrived was either started or is still waiting). While a ready pod has no rates yet (it
//     has just started, or its scrape failed) the sum misses its share, so the estimate is partial: it may
//     raise the count, never lower it, and teaches the burst headroom nothing. (Giving it the others' share
//     would be wrong the other way: right after a scale-up the old pods admit their backlog at full speed.)
//     A pod whose rates span less than half the rate window (it started moments ago) counts as missing.
//   - Per-request sizes (uncached prompt tokens, output tokens) come from counters summed over a longer
//     span, perRequestHalfLife, weighted by the requests they cover: one window holds few requests at low
//     load, and output tokens lag the prompts that started them by a request's whole decode.
//   - The prompt lengths' distribution (shape.go) is the pods' vllm:request_prompt_tokens buckets over the
//     rate window, summed and forgotten the same way.
//   - The context a running sequence holds is the KV-cache tokens in use over the requests running (usage ×
//     cache size / running), averaged the same way; the pods' own cache size replaces the prior's.
//   - The KV load's index of dispersion across the pods, with the batch's own dispersion at their count taken
//     out (Capacity.BaseDispersion), is a property of the mix too, averaged the same way.

// perRequestHalfLife is how fast the per-request sizes forget.
const perRequestHalfLife = 5 * time.Minute

// sizes accumulates per-request sizes with exponential forgetting.
type sizes struct {
	at                               time.Time
	requests, prompt, decode         float64
	contextWeight, context, kvTokens float64
	kvSamples                        float64
	lengths                          Histogram
	// dispersion is the sum of the KV load's base dispersions measured, dispersionSamples their count.
	dispersion, dispersionSamples float64
}

// decay forgets in proportion to the time since the last update.
func (z *sizes) decay(now time.Time) {
	if !z.at.IsZero() && now.After(z.at) {
		f := math.Exp2(-now.Sub(z.at).Seconds() / perRequestHalfLife.Seconds())
		z.requests, z.prompt, z.decode = z.requests*f, z.prompt*f, z.decode*f
		z.contextWeight, z.context = z.contextWeight*f, z.context*f
		z.kvTokens, z.kvSamples = z.kvTokens*f, z.kvSamples*f
		z.dispersion, z.dispersionSamples = z.dispersion*f, z.dispersionSamples*f
		z.lengths.scale(f)
	}
	z.at = now
}

// measured is one snapshot's demand as the pods report it.
type measured struct {
	Demand
	// Window is the rate window's share of a second the rates cover, to turn rates into counts.
	window time.Duration
	// ok is false when the pods lack the counters the model needs (an old vLLM, or no pod with rates yet).
	ok bool
	// partial is true when some ready pods' rates are missing from the sums.
	partial bool
	// count is the arrivals the rates are made of: the rate times each pod's span.
	count float64
	// recent and recentCount are the same over the last scrape interval.
	recent, recentCount float64
}

// measure reads the snapshot's demand into the autoscaler's running sizes and returns the estimate. window
// is the rate window the pods' rates span (signals.RateWindow in the scaler and the simulator).
func (a *Autoscaler) measure(s Snapshot, prior Capacity) measured {
	var arrivals, count, recent, recentCount, prompt, decode, first, running, kvUsed, kvCap float64
	var withRates, withCap int
	var lengths Histogram
	for _, p := range s.Pods {
		if p.KVCacheTokens > 0 {
			kvCap += p.KVCacheTokens
			withCap++
		}
		if !p.HasTokenRates || !p.HasDecodeTPS || p.RateSpan < a.window/2 {
			continue
		}
		withRates++
		arrivals += p.FirstTokensPS + p.WaitingGrowth
		count += (p.FirstTokensPS + p.WaitingGrowth) * p.RateSpan.Seconds()
		recent += p.RecentArrivals
		recentCount += p.RecentArrivals * p.RecentSpan.Seconds()
		prompt += p.PromptTPS
		decode += p.DecodeTPS
		first += p.FirstTokensPS
		running += p.Running
		cache := prior.KVTokens
		if p.KVCacheTokens > 0 {
			cache = p.KVCacheTokens
		}
		kvUsed += kvUsage(p) * cache
		if h := p.PromptLengths; h.Valid() && (lengths.Bounds == nil || slices.Equal(h.Bounds, lengths.Bounds)) {
			// Pods of different --max-model-len (a rollout) have different bounds: the first pod's count.
			lengths.add(h, 1)
		}
	}
	if withRates == 0 {
		return measured{}
	}
	z := &a.sizes
	z.decay(s.Now)
	dt := a.window.Seconds()
	z.requests += first * dt
	z.prompt += prompt * dt
	z.decode += decode * dt
	if running > 0 {
		z.contextWeight += running
		z.context += kvUsed
	}
	if lengths.Bounds != nil {
		z.lengths.add(lengths, dt)
	}
	if withCap > 0 {
		z.kvSamples++
		z.kvTokens += kvCap / float64(withCap)
	}
	m := measured{window: a.window, ok: true, partial: withRates < max(s.Ready, len(s.Pods))}
	m.Arrivals, m.count = max(arrivals, 0), max(count, 0)
	m.recent, m.recentCount = max(recent, 0), max(recentCount, 0)
	if z.requests > 0 {
		m.PromptPerRequest = z.prompt / z.requests
		m.DecodePerRequest = z.decode / z.requests
	}
	if z.contextWeight > 0 {
		m.ContextPerSeq = z.context / z.contextWeight
	} else {
		// Nothing has run yet: a sequence holds its prompt and, on average, half its output.
		m.ContextPerSeq = m.PromptPerRequest + m.DecodePerRequest/2
	}
	m.PromptShape = z.lengths.Shape()
	return m
}

// capacity is the prior with the pods' own KV-cache size when they report it.
func (a *Autoscaler) capacity(prior Capacity) Capacity {
	if a.sizes.kvSamples > 0 {
		prior.KVTokens = a.sizes.kvTokens / a.sizes.kvSamples
	}
	return prior
}

// kvDispersion folds in the KV load's index of dispersion measured across the pods of s, with the batch's own
// dispersion at their count taken out, and returns its running average. It is a property of the mix, like
// the per-request sizes, and is averaged the same way: across a handful of pods, one minute's spread varies
// by half its value and would move the count with it. It returns 0 (the model's own dispersion) when the
// samples left weigh less than one, half an hour after the last at a sample every 5 s: a spread measured on
// another mix says nothing about a service that has run on one pod since.
func (z *sizes) kvDispersion(c Capacity, s Snapshot, d Demand) float64 {
	if _, r, ok := spread(s); ok {
		z.dispersion += c.BaseDispersion(r, int32(s.Ready), d)
		z.dispersionSamples++
	}
	if z.dispersionSamples < 1 {
		return 0
	}
	return z.dispersion / z.dispersionSamples
}
