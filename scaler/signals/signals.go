// Package signals turns successive scrapes of each pod into the per-pod signals the decision package reads:
// the gauges as scraped, decode tokens/s as the rate of vllm:generation_tokens_total between two scrapes of
// the same process, and whether the data is fresh enough to act on.
package signals

import (
	"fmt"
	"time"

	"github.com/llm-d/llm-d/scaler/decision"
)

// Sample is what one successful scrape of one pod read.
type Sample struct {
	Waiting          float64
	Running          float64
	KVCacheUsage     float64
	GenerationTokens float64 // the counter's value
}

// Pod is the state of one pod between scrapes.
type Pod struct {
	last, prev     Sample
	lastAt, prevAt time.Time
	// tps is the rate between prev and last, valid when hasTPS.
	tps    float64
	hasTPS bool
	// err is the latest scrape's failure, if the latest scrape failed.
	err   error
	errAt time.Time
}

// Observe records a successful scrape taken at.
func (p *Pod) Observe(at time.Time, s Sample) {
	p.prev, p.prevAt = p.last, p.lastAt
	p.last, p.lastAt = s, at
	p.err = nil
	p.hasTPS = false
	if p.prevAt.IsZero() || !at.After(p.prevAt) {
		return
	}
	if s.GenerationTokens < p.prev.GenerationTokens {
		// The counter went backwards: vLLM restarted inside the pod. The increase since the restart is
		// unknown over this interval, so this round has no rate rather than a wrong one.
		return
	}
	p.tps = (s.GenerationTokens - p.prev.GenerationTokens) / at.Sub(p.prevAt).Seconds()
	p.hasTPS = true
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
	case p.lastAt.IsZero():
		return decision.Pod{}, fmt.Errorf("not scraped yet")
	case now.Sub(p.lastAt) > maxAge:
		return decision.Pod{}, fmt.Errorf("latest metrics are %s old (limit %s)", now.Sub(p.lastAt).Round(time.Millisecond), maxAge)
	}
	return decision.Pod{
		Waiting: p.last.Waiting, Running: p.last.Running, KVCacheUsage: p.last.KVCacheUsage,
		DecodeTPS: p.tps, HasDecodeTPS: p.hasTPS,
	}, nil
}
