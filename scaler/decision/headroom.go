package decision

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Burst headroom.
//
// A pod takes a startup delay to become ready, so demand that arrives faster than that meets only the pods
// already running: no reactive count can absorb a burst that has no precedent. It can absorb the next one.
// The autoscaler remembers how much demand has grown within one horizon (the pods' startup delay plus the
// control loop's lag) over the last growthMemory, and keeps enough pods for the current demand grown by that
// much:
//
//   - Growth is measured against the level demand holds: the median of the arrival rates of the last
//     levelSpan, which a burst shorter than half the span does not move and a trend moves with little lag.
//     Each round's level is compared with the rates of the following horizon; the largest ratio is that
//     moment's growth.
//   - The headroom multiplies the baseline, the median of the last baseSpan: long enough that the bursts
//     themselves do not raise it (a burst on a burst is not what was measured), and the capacity model
//     sizes for the current rate, burst included, anyway.
//   - The later rates are each scrape interval's own, not the rate window's: a burst of ten seconds is as
//     intense as its requests are close together, however short, and a 30-second average would dilute it
//     threefold. A rate over a few seconds of Poisson arrivals is noisy (10 requests ± 3 at 2 requests/s),
//     and the largest of many noisy ratios would read as growth: they enter at a lower confidence bound,
//     (n − growthZ·√n) / span for n arrivals in the span, so noise reads as no growth while a burst still
//     reads as most of its size. Moments whose baseline covers fewer than minBaseRequests arrivals teach
//     nothing: a ratio to nearly nothing measures the silence, not a burst, and minReplicas is the lever
//     for what follows silences. Nor does the first levelSpan after the autoscaler starts: the baseline
//     needs its span.
//   - The headroom is the largest growth of the last growthMemory, at most growthMax. Demand grows in
//     proportion: a burst of 4× on a low baseline asks for 4× that baseline.
const (
	levelSpan       = 2 * time.Minute
	baseSpan        = 10 * time.Minute
	growthZ         = 3.0
	minBaseRequests = 30
	growthMax       = 10.0
	growthMemory    = 24 * time.Hour
	// controlLag is what a scale-up takes besides the pod's startup: the rate window filling, a scrape and
	// an HPA sync.
	controlLag = 30 * time.Second
	// defaultStartup is the horizon's startup delay until the pods' own is known.
	defaultStartup = 90 * time.Second
)

type growthPoint struct {
	at    time.Time
	base  float64 // the level at at, arrivals/s
	ratio float64 // largest later rate over base within the horizon, so far
}

type timedRate struct {
	at   time.Time
	rate float64
}

type growthEvent struct {
	at    time.Time
	ratio float64
}

// growth is the autoscaler's memory of how fast demand has risen.
type growth struct {
	since   time.Time // the first observation
	rates   []timedRate
	level   float64 // the median of the rates of the last levelSpan
	base    float64 // the median of the rates of the last baseSpan
	pending []growthPoint
	// events is a sliding-window maximum: ratios strictly decreasing from the front, each newer than those
	// before it, so the front is the largest growth within growthMemory.
	events []growthEvent
}

// observe records one round's arrivals, over the rate window and over the last scrape interval (each a rate
// made of so many arrivals), and returns the baseline.
func (g *growth) observe(now time.Time, arrivals, recent, recentCount float64, horizon time.Duration) float64 {
	if g.since.IsZero() {
		g.since = now
	}
	cut := 0
	for cut < len(g.rates) && now.Sub(g.rates[cut].at) > baseSpan {
		cut++
	}
	g.rates = append(g.rates[cut:], timedRate{now, arrivals})
	g.base = median(g.rates)
	from := 0
	for from < len(g.rates) && now.Sub(g.rates[from].at) > levelSpan {
		from++
	}
	g.level = median(g.rates[from:])
	low := 0.0
	if recentCount > 0 {
		low = recent * max(1-growthZ/math.Sqrt(recentCount), 0)
	}
	keep := g.pending[:0]
	for _, p := range g.pending {
		if now.Sub(p.at) > horizon {
			g.record(p)
			continue
		}
		p.ratio = max(p.ratio, low/p.base)
		keep = append(keep, p)
	}
	g.pending = keep
	if now.Sub(g.since) >= levelSpan && g.level*levelSpan.Seconds() >= minBaseRequests {
		g.pending = append(g.pending, growthPoint{at: now, base: g.level})
	}
	for len(g.events) > 0 && now.Sub(g.events[0].at) > growthMemory {
		g.events = g.events[1:]
	}
	return g.base
}

func (g *growth) record(p growthPoint) {
	if p.ratio <= 1 {
		return
	}
	e := growthEvent{p.at, min(p.ratio, growthMax)}
	for len(g.events) > 0 && g.events[len(g.events)-1].ratio <= e.ratio {
		g.events = g.events[:len(g.events)-1]
	}
	g.events = append(g.events, e)
}

// factor is the headroom to keep now: the largest growth remembered, 1 if none.
func (g *growth) factor() (float64, growthEvent) {
	if len(g.events) == 0 {
		return 1, growthEvent{}
	}
	return g.events[0].ratio, g.events[0]
}

// horizon is how long a scale-up takes to add a ready pod.
func horizon(startup time.Duration) time.Duration {
	if startup <= 0 {
		startup = defaultStartup
	}
	return startup + controlLag
}

func (e growthEvent) String(now time.Time) string {
	return fmt.Sprintf("demand grew %.1f× within one startup at %s (%s ago)", e.ratio, e.at.UTC().Format("15:04"),
		now.Sub(e.at).Round(time.Minute))
}

// median is the median rate; rates is not empty.
func median(rates []timedRate) float64 {
	v := make([]float64, len(rates))
	for i, r := range rates {
		v[i] = r.rate
	}
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// recent is the mean arrival rate of the last span of rounds, 0 if none.
func (g *growth) recent(now time.Time, span time.Duration) float64 {
	var sum float64
	var n int
	for _, r := range g.rates {
		if now.Sub(r.at) < span {
			sum += r.rate
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}
