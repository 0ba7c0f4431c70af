package sim

import (
	"math"
	"sort"
	"time"
)

// Bursts are found from the trace alone, by one rule applied to every trace (BurstRule): a burst is a run of
// one-minute windows, slid by 10 s, whose arrivals are at least 1.6 times the rate of the 5 minutes before
// the window, and at least 4 standard deviations of a Poisson count above it (so that noise on a quiet
// trace is not a burst), with at least 10 requests. The baseline is frozen while a burst lasts, for at most
// 6 minutes (the longest generated burst, 5 minutes, and the windows' edges): a level that lasts longer is
// the new normal. A burst's size is its busiest window's ratio to the baseline, bucketed at the geometric
// midpoints of 2, 4 and 8: under 2√2 is a 2x burst, under 4√2 a 4x, above an 8x (load after minutes of
// silence is an 8x burst).

// BurstRule is the detector's parameters.
type BurstRule struct {
	// Step is the windows' slide and the resolution of burst edges.
	Step time.Duration
	// Window is the short window whose rate is compared with the baseline.
	Window time.Duration
	// Baseline is the span before the window whose mean rate is the baseline.
	Baseline time.Duration
	// Ratio is the least window rate / baseline rate of a burst; Sigmas the least excess over the baseline's
	// expected count in Poisson standard deviations; MinRequests the least requests in a burst's window.
	Ratio, Sigmas float64
	MinRequests   int
	// MaxHold is how long a burst's baseline stays frozen: a longer burst ends there.
	MaxHold time.Duration
}

// DefaultBurstRule is the one rule every trace's bursts are found with.
var DefaultBurstRule = BurstRule{Step: 10 * time.Second, Window: time.Minute, Baseline: 5 * time.Minute,
	Ratio: 1.6, Sigmas: 4, MinRequests: 10, MaxHold: 6 * time.Minute}

// Burst is one burst found in a trace.
type Burst struct {
	// Start and End bound the burst's windows.
	Start time.Duration `json:"start_ns"`
	End   time.Duration `json:"end_ns"`
	// Ratio is the busiest window's rate over the baseline (the baseline floored at one request per
	// Baseline); Size its bucket: 2, 4 or 8.
	Ratio float64 `json:"ratio"`
	Size  int     `json:"size"`
	// First marks the first burst of its size in the trace.
	First bool `json:"first"`
}

// DetectBursts finds the bursts of reqs (sorted by arrival) with DefaultBurstRule.
func DetectBursts(reqs []Request) []Burst { return DefaultBurstRule.Detect(reqs) }

// Detect finds the bursts of reqs (sorted by arrival).
func (r BurstRule) Detect(reqs []Request) []Burst {
	if len(reqs) == 0 {
		return nil
	}
	nb := int(reqs[len(reqs)-1].At/r.Step) + 1
	counts := make([]int, nb)
	for _, q := range reqs {
		counts[q.At/r.Step]++
	}
	prefix := make([]int, nb+1)
	for i, c := range counts {
		prefix[i+1] = prefix[i] + c
	}
	sum := func(from, to int) int { return prefix[max(to, 0)] - prefix[max(from, 0)] } // bins [from, to)
	w, b := int(r.Window/r.Step), int(r.Baseline/r.Step)
	var out []Burst
	var cur *Burst
	var lambda float64                   // the baseline's expected count in one window, frozen during a burst
	for end := w + w; end <= nb; end++ { // window = bins [end-w, end); at least one window of history
		start := end - w
		n := float64(sum(start, end))
		if cur == nil {
			hist := min(b, start)
			lambda = float64(sum(start-hist, start)) * float64(w) / float64(hist)
		}
		floor := float64(w) / float64(b) // one request per baseline span
		hot := n >= float64(r.MinRequests) && n >= r.Ratio*lambda && n >= lambda+r.Sigmas*math.Sqrt(lambda)
		if cur != nil && (!hot || time.Duration(end)*r.Step-cur.Start > r.MaxHold) {
			out = append(out, *cur)
			cur = nil
			continue
		}
		if !hot {
			continue
		}
		ratio := n / max(lambda, floor)
		if cur == nil {
			cur = &Burst{Start: time.Duration(start) * r.Step}
		}
		cur.End = time.Duration(end) * r.Step
		cur.Ratio = max(cur.Ratio, ratio)
	}
	if cur != nil {
		out = append(out, *cur)
	}
	seen := map[int]bool{}
	for i := range out {
		out[i].Size = BurstSize(out[i].Ratio)
		out[i].First = !seen[out[i].Size]
		seen[out[i].Size] = true
	}
	return out
}

// BurstSize buckets a rate ratio to 2, 4 or 8 at the geometric midpoints.
func BurstSize(ratio float64) int {
	switch {
	case ratio < 2*math.Sqrt2:
		return 2
	case ratio < 4*math.Sqrt2:
		return 4
	}
	return 8
}

// BurstScore is one burst and each policy's attainment over the requests arriving in it or in one startup
// delay after it.
type BurstScore struct {
	Burst
	Requests   int                `json:"requests"`
	Attainment map[string]float64 `json:"attainment"`
}

// ScoreBursts scores every burst for every result (whose Met is in reqs' order). A burst's span is
// [Start, End + startup).
func ScoreBursts(reqs []Request, bursts []Burst, startup time.Duration, results []Result) []BurstScore {
	out := make([]BurstScore, len(bursts))
	for i, b := range bursts {
		out[i] = BurstScore{Burst: b, Attainment: map[string]float64{}}
		lo, hi := span(reqs, b, startup)
		out[i].Requests = hi - lo
		for _, r := range results {
			out[i].Attainment[r.Policy] = share(r.Met[lo:hi])
		}
	}
	return out
}

// OutsideFirstBursts is the attainment over the requests outside the first burst of each size and one
// startup delay after it, and how many requests that is.
func OutsideFirstBursts(reqs []Request, bursts []Burst, startup time.Duration, met []bool) (float64, int) {
	excluded := make([]bool, len(reqs))
	for _, b := range bursts {
		if !b.First {
			continue
		}
		lo, hi := span(reqs, b, startup)
		for i := lo; i < hi; i++ {
			excluded[i] = true
		}
	}
	n, ok := 0, 0
	for i, x := range excluded {
		if x {
			continue
		}
		n++
		if met[i] {
			ok++
		}
	}
	if n == 0 {
		return 1, 0
	}
	return float64(ok) / float64(n), n
}

// span is the indices [lo, hi) of the requests arriving in [b.Start, b.End + startup).
func span(reqs []Request, b Burst, startup time.Duration) (lo, hi int) {
	at := func(t time.Duration) int { return sort.Search(len(reqs), func(i int) bool { return reqs[i].At >= t }) }
	return at(b.Start), at(b.End + startup)
}

// share is the fraction of true values (1 when empty).
func share(met []bool) float64 {
	if len(met) == 0 {
		return 1
	}
	n := 0
	for _, m := range met {
		if m {
			n++
		}
	}
	return float64(n) / float64(len(met))
}
