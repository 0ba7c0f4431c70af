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
//   - The headroom applies to the baseline, the median of the last baseSpan: long enough that the bursts
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
//   - A burst adds to demand or multiplies it, and one burst cannot tell which: code requests from a batch
//     job add the same requests/s whatever the chat traffic beside them, a surge of users multiplies it.
//     So each growth is remembered both ways, as its ratio and as its rise (the ratio's excess times the
//     level it was measured against), and the headroom covers both: the baseline times the largest ratio
//     of the last growthMemory, or the baseline plus the largest rise, whichever is more, and never more
//     than growthMax times the baseline. The two agree on a steady baseline; on a moving one, the ratio
//     covers the crest and the rise the trough.
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
	value float64 // a ratio, or a rise in requests/s
}

// slidingMax is the largest event of the last growthMemory: events strictly decreasing from the front, each
// newer than those before it, so the front is the largest.
type slidingMax []growthEvent

func (m *slidingMax) push(e growthEvent) {
	for len(*m) > 0 && (*m)[len(*m)-1].value <= e.value {
		*m = (*m)[:len(*m)-1]
	}
	*m = append(*m, e)
}

func (m *slidingMax) expire(now time.Time) {
	for len(*m) > 0 && now.Sub((*m)[0].at) > growthMemory {
		*m = (*m)[1:]
	}
}

// front is the largest event, the zero event if none.
func (m slidingMax) front() growthEvent {
	if len(m) == 0 {
		return growthEvent{}
	}
	return m[0]
}

// growth is the autoscaler's memory of how fast demand has risen.
type growth struct {
	since   time.Time // the first observation
	rates   []timedRate
	level   float64 // the median of the rates of the last levelSpan
	base    float64 // the median of the rates of the last baseSpan
	pending []growthPoint
	// ratios and rises are the largest growths within growthMemory, as ratios and as rises.
	ratios, rises slidingMax
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
	g.ratios.expire(now)
	g.rises.expire(now)
	return g.base
}

func (g *growth) record(p growthPoint) {
	if p.ratio <= 1 {
		return
	}
	ratio := min(p.ratio, growthMax)
	g.ratios.push(growthEvent{p.at, ratio})
	g.rises.push(growthEvent{p.at, (ratio - 1) * p.base})
}

// target is the demand the headroom keeps pods for now, at least the baseline, and what set it, in words
// ("" when the baseline alone does).
func (g *growth) target(now time.Time) (float64, string) {
	g.ratios.expire(now) // observe, which expires them too, skips the rounds on partial data
	g.rises.expire(now)
	ratio, rise := g.ratios.front(), g.rises.front()
	byRatio, byRise := g.base*max(ratio.value, 1), g.base+rise.value
	switch {
	case byRatio >= byRise && ratio.value > 1:
		return byRatio, fmt.Sprintf(" ×%.1f (demand grew %.1f× within one startup at %s)", ratio.value, ratio.value, ratio.when(now))
	case byRatio >= byRise:
		return g.base, ""
	case byRise > g.base*growthMax:
		return g.base * growthMax, fmt.Sprintf(" ×%g (demand rose by %.2f requests/s within one startup at %s, more than ×%g)",
			growthMax, rise.value, rise.when(now), growthMax)
	}
	return byRise, fmt.Sprintf(" + %.2f (demand rose by that much within one startup at %s)", rise.value, rise.when(now))
}

// horizon is how long a scale-up takes to add a ready pod.
func horizon(startup time.Duration) time.Duration {
	if startup <= 0 {
		startup = defaultStartup
	}
	return startup + controlLag
}

// when says when the event was, in UTC, and how long ago.
func (e growthEvent) when(now time.Time) string {
	return fmt.Sprintf("%s (%s ago)", e.at.UTC().Format("15:04"), now.Sub(e.at).Round(time.Minute))
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
