// Package signals turns successive scrapes of each pod into the per-pod signals the decision package reads:
// the gauges as scraped, the counters' rates over the last decision.RateWindow of scrapes of the same process, and
// whether the data is fresh enough to act on.
package signals

import (
	"fmt"
	"math"
	"time"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/vllmmetrics"
)

// Sample is what one successful scrape of one pod read.
type Sample struct {
	Waiting      float64
	Running      float64
	KVCacheUsage float64
	// The counters: output tokens, prompt tokens, prompt tokens served from the prefix cache, and requests
	// whose first token was sampled. HasTokenCounters says whether PromptTokens and FirstTokens were read.
	GenerationTokens   float64
	PromptTokens       float64
	CachedPromptTokens float64
	FirstTokens        float64
	HasTokenCounters   bool
	// KVCacheTokens is the pod's KV-cache size in tokens, 0 if unknown.
	KVCacheTokens float64
	// PromptLengths is the cumulative histogram vllm:request_prompt_tokens, nil if the pod does not export it.
	PromptLengths []vllmmetrics.Bucket
}

// FromVLLM is the sample one parsed vLLM /metrics payload gives: the one conversion from vLLM's series to
// the scaler's signals, used by the scaler, the simulator and `llmd probe`.
func FromVLLM(s vllmmetrics.Snapshot) Sample {
	return Sample{
		Waiting: s.Waiting, Running: s.Running, KVCacheUsage: s.KVCacheUsage,
		GenerationTokens: s.GenerationTokens, PromptTokens: s.PromptTokens, CachedPromptTokens: s.CachedPromptTokens,
		FirstTokens: s.FirstTokens, HasTokenCounters: s.HasTokenCounters, KVCacheTokens: s.KVCacheTokens,
		PromptLengths: s.PromptLengths,
	}
}

type timed struct {
	at time.Time
	s  Sample
}

// Pod is the state of one pod between scrapes. The zero value is a pod never scraped.
type Pod struct {
	// history holds the samples since the process started that the rates need: every sample within
	// decision.RateWindow of the latest, and the last one before that, so the rates span the whole window.
	history []timed
	// err is the latest scrape's failure, if the latest scrape failed.
	err   error
	errAt time.Time
}

// Observe records a successful scrape taken at.
func (p *Pod) Observe(at time.Time, s Sample) {
	p.err = nil
	if n := len(p.history); n > 0 {
		last := p.history[n-1]
		if !at.After(last.at) {
			p.history[n-1] = timed{at, s} // a repeated instant: keep the newer reading, no rate from it
			return
		}
		if restarted(last.s, s) {
			// A counter went backwards: vLLM restarted inside the pod. Its increase since the restart is
			// unknown, so the rates start again from this scrape rather than be wrong.
			p.history = p.history[:0]
		}
	}
	p.history = append(p.history, timed{at, s})
	cut := 0
	for cut+1 < len(p.history) && at.Sub(p.history[cut+1].at) >= decision.RateWindow {
		cut++
	}
	if cut > 0 {
		p.history = append(p.history[:0], p.history[cut:]...)
	}
}

func restarted(prev, s Sample) bool {
	return s.GenerationTokens < prev.GenerationTokens || s.PromptTokens < prev.PromptTokens ||
		s.CachedPromptTokens < prev.CachedPromptTokens || s.FirstTokens < prev.FirstTokens ||
		total(s.PromptLengths) < total(prev.PromptLengths)
}

// total is a cumulative histogram's count, 0 for none.
func total(h []vllmmetrics.Bucket) float64 {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].Count
}

// lengthRates is the requests/s by prompt length between two cumulative histograms dt apart; zero when
// either is missing or their bounds differ (the pod's --max-model-len changed with its process).
func lengthRates(first, last []vllmmetrics.Bucket, dt float64) decision.Histogram {
	n := len(last)
	if n == 0 || len(first) != n || !math.IsInf(last[n-1].UpperBound, 1) {
		return decision.Histogram{}
	}
	h := decision.Histogram{Bounds: make([]float64, n-1), Counts: make([]float64, n)}
	var below float64 // the window's count at or under the previous bound
	for i := range last {
		if first[i].UpperBound != last[i].UpperBound {
			return decision.Histogram{}
		}
		if i < n-1 {
			h.Bounds[i] = last[i].UpperBound
		}
		upTo := last[i].Count - first[i].Count
		h.Counts[i] = max(upTo-below, 0) / dt
		below = max(upTo, below)
	}
	return h
}

// Fail records a failed scrape: the pod's data is missing until the next success.
func (p *Pod) Fail(at time.Time, err error) {
	p.err, p.errAt = err, at
}

// Signals returns the pod's signals for a decision at now, or an error saying why they are missing: the
// latest scrape failed, there was none yet, or the latest success is older than maxAge.
func (p *Pod) Signals(now time.Time, maxAge time.Duration) (decision.Pod, error) {
	switch {
	case p.err != nil:
		return decision.Pod{}, p.err
	case len(p.history) == 0:
		return decision.Pod{}, fmt.Errorf("not scraped yet")
	}
	last := p.history[len(p.history)-1]
	if now.Sub(last.at) > maxAge {
		return decision.Pod{}, fmt.Errorf("latest metrics are %s old (limit %s)", now.Sub(last.at).Round(time.Millisecond), maxAge)
	}
	d := decision.Pod{Waiting: last.s.Waiting, Running: last.s.Running, KVCacheUsage: last.s.KVCacheUsage,
		KVCacheTokens: last.s.KVCacheTokens}
	if len(p.history) < 2 {
		return d, nil // a rate needs two scrapes of the same process
	}
	first := p.history[0]
	dt := last.at.Sub(first.at).Seconds()
	d.RateSpan = last.at.Sub(first.at)
	d.DecodeTPS, d.HasDecodeTPS = (last.s.GenerationTokens-first.s.GenerationTokens)/dt, true
	if first.s.HasTokenCounters && last.s.HasTokenCounters {
		uncached := (last.s.PromptTokens - last.s.CachedPromptTokens) - (first.s.PromptTokens - first.s.CachedPromptTokens)
		d.PromptTPS = max(uncached, 0) / dt
		d.FirstTokensPS = (last.s.FirstTokens - first.s.FirstTokens) / dt
		d.WaitingGrowth = (last.s.Waiting - first.s.Waiting) / dt
		d.PromptLengths = lengthRates(first.s.PromptLengths, last.s.PromptLengths, dt)
		d.HasTokenRates = true
		if prev := p.history[len(p.history)-2]; prev.s.HasTokenCounters {
			d.RecentSpan = last.at.Sub(prev.at)
			d.RecentArrivals = (last.s.FirstTokens - prev.s.FirstTokens + last.s.Waiting - prev.s.Waiting) / d.RecentSpan.Seconds()
		}
	}
	return d, nil
}
