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
//     moment's growth. A rise already under way is not growth after it: while demand climbs faster than
//     the median follows (a return from a silence, a step the median has half taken), the round's own rate
//     (at its lower confidence bound, below) is the level instead, when higher.
//   - The headroom applies to the baseline, the median of the last baseSpan: long enough that the bursts
//     themselves do not raise it (a burst on a burst is not what was measured), and the capacity model
//     sizes for the current rate, burst included, anyway.
//   - The later rates are each scrape interval's own, not the rate window's: a burst of ten seconds is as
//     intense as its requests are close together, however short, and a 30-second average would dilute it
//     threefold. A rate over a few seconds of Poisson arrivals is noisy (10 requests ± 3 at 2 requests/s),
//     and the largest of many noisy ratios would read as growth: they enter at a lower confidence bound,
//     (n − growthZ·√n) / span for n arrivals in the span, so noise reads as no growth while a burst still
//     reads as most of its size. The first levelSpan after the autoscaler starts teaches nothing: the
//     level needs its span.
//   - A burst adds to demand or multiplies it, and one burst cannot tell which: code requests from a batch
//     job add the same requests/s whatever the chat traffic beside them, a surge of users multiplies it.
//     So each growth is remembered both ways, as its ratio and as its rise (the ratio's excess times the
//     level it was measured against), and the headroom covers both: the baseline times the largest ratio
//     of the last growthMemory, or the baseline plus the largest rise, whichever is more, and never more
//     than growthMax times the baseline. The two agree on a steady baseline; on a moving one, the ratio
//     covers the crest and the rise the trough. Bursts at different levels can tell: once the bursts
//     remembered (each its largest growth; growths within half a baseSpan of each other are one burst)
//     have levels formSpread apart or more, and their rises agree better than their ratios (in logs,
//     by variance), the bursts add, and the ratio is left out.
//   - The ratio is remembered only for a burst: a growth after which the level, once it has taken in a
//     levelSpan past the horizon, falls back below the midpoint of its level and its peak within half a
//     baseSpan of the horizon (the span in which the baseline would absorb it). A rise the level keeps,
//     a wave's flank or a load that stays, is a trend: the baseline follows it, and applied at a wave's
//     crest its ratio would keep pods for a climb that has already happened. It is remembered as its rise
//     only.
//   - A moment whose level covers fewer than minBaseRequests arrivals is a silence: it has no level to
//     take a ratio to. What follows it is a rise by the whole rate demand came back to, remembered as
//     such; and while demand is silent, with no baseline to add it to, the headroom keeps pods for the
//     highest such return of the last growthMemory itself.
const (
	levelSpan       = 2 * time.Minute
	baseSpan        = 10 * time.Minute
	growthZ         = 3.0
	minBaseRequests = 30
	growthMax       = 10.0
	growthMemory    = 24 * time.Hour
	formSpread      = 1.5
	// controlLag is what a scale-up takes besides the pod's startup: the rate window filling, a scrape and
	// an HPA sync.
	controlLag = 30 * time.Second
	// defaultStartup is the horizon's startup delay until the pods' own is known.
	defaultStartup = 90 * time.Second
)

type growthPoint struct {
	at   time.Time
	base float64 // the level at at, arrivals/s; 0 while demand is silent
	peak float64 // the largest later rate within the horizon, so far
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

// push adds e, which may be older than the last event (a burst's ratio is pushed once the burst has ended):
// it drops the events e outlasts and outweighs, unless a newer one outweighs e.
func (m *slidingMax) push(e growthEvent) {
	i, _ := slices.BinarySearchFunc(*m, e.at, func(x growthEvent, at time.Time) int {
		if x.at.After(at) {
			return 1
		}
		return -1
	}) // the first event newer than e
	if i < len(*m) && (*m)[i].value >= e.value {
		return
	}
	j := i
	for j > 0 && (*m)[j-1].value <= e.value {
		j--
	}
	*m = slices.Replace(*m, j, i, e)
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
	// waiting are growths whose ratio waits for the level to fall back; seen the bursts confirmed.
	waiting, seen bursts
	// ratios and rises are the largest growths within growthMemory, as ratios and as rises; returns the
	// largest rates demand came back to after a silence.
	ratios, rises, returns slidingMax
	// levelOnly, everyRatio, noReturns and bothForms switch off MechanismRisingLevel, MechanismBurstRatio,
	// MechanismSilenceReturn and MechanismBurstForm, for ablations.
	levelOnly, everyRatio, noReturns, bothForms bool
}

// burst is a growth measured against level and recorded one horizon later. Its ratio is remembered if,
// from levelSpan to baseSpan/2 after it was recorded, the level falls to fallen.
type burst struct {
	growthEvent
	level    float64
	recorded time.Time
}

// fallen is the midpoint of b's level and its peak: a level at or under it says b has ended.
func (b burst) fallen() float64 { return b.level + (b.value-1)*b.level/2 }

// bursts are the bursts remembered, oldest first, each its largest growth.
type bursts []burst

// add remembers b, as a burst of its own or as the last one's if within half a baseSpan of it.
func (bs *bursts) add(b burst) {
	if n := len(*bs); n > 0 && b.at.Sub((*bs)[n-1].at) < baseSpan/2 {
		if b.value > (*bs)[n-1].value {
			(*bs)[n-1].level, (*bs)[n-1].value = b.level, b.value
		}
		return
	}
	*bs = append(*bs, b)
}

// expire forgets the bursts older than growthMemory.
func (bs *bursts) expire(now time.Time) {
	for len(*bs) > 0 && now.Sub((*bs)[0].at) > growthMemory {
		*bs = (*bs)[1:]
	}
}

// additive says whether the bursts, at levels formSpread apart or more, rose by amounts that agree better
// than their ratios do, and how far apart their levels are.
func (bs bursts) additive() (bool, float64) {
	lo, hi := math.Inf(1), 0.0
	ratios, rises := make([]float64, len(bs)), make([]float64, len(bs))
	for i, b := range bs {
		lo, hi = min(lo, b.level), max(hi, b.level)
		ratios[i], rises[i] = math.Log(b.value), math.Log((b.value-1)*b.level)
	}
	return len(bs) >= 2 && hi >= formSpread*lo && variance(rises) < variance(ratios), hi / lo
}

// variance is the variance of x, which is not empty.
func variance(x []float64) float64 {
	var m, v float64
	for _, a := range x {
		m += a
	}
	m /= float64(len(x))
	for _, a := range x {
		v += (a - m) * (a - m)
	}
	return v / float64(len(x))
}

// observe records one round's arrivals, over the rate window and over the last scrape interval (each a rate
// made of so many arrivals), and returns the baseline.
func (g *growth) observe(now time.Time, arrivals, count, recent, recentCount float64, horizon time.Duration) float64 {
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
	low := lowerBound(recent, recentCount)
	keep := g.pending[:0]
	for _, p := range g.pending {
		if now.Sub(p.at) > horizon {
			g.record(now, p)
			continue
		}
		p.peak = max(p.peak, low)
		keep = append(keep, p)
	}
	g.pending = keep
	waiting := g.waiting[:0]
	for _, b := range g.waiting {
		switch {
		case now.Sub(b.recorded) >= levelSpan && g.level <= b.fallen():
			g.ratios.push(b.growthEvent)
			g.seen.add(b)
		case now.Sub(b.recorded) <= baseSpan/2:
			waiting = append(waiting, b)
		}
	}
	g.waiting = waiting
	if now.Sub(g.since) >= levelSpan {
		base := 0.0
		switch {
		case g.silent():
		case g.levelOnly:
			base = g.level
		default:
			base = max(g.level, lowerBound(arrivals, count))
		}
		g.pending = append(g.pending, growthPoint{at: now, base: base})
	}
	g.expire(now)
	return g.base
}

// silent is whether the level rests on fewer than minBaseRequests arrivals.
func (g *growth) silent() bool { return g.level*levelSpan.Seconds() < minBaseRequests }

// expire forgets the growths and bursts older than growthMemory.
func (g *growth) expire(now time.Time) {
	g.ratios.expire(now)
	g.rises.expire(now)
	g.returns.expire(now)
	g.seen.expire(now)
}

// lowerBound is a rate made of n arrivals, lowered to its growthZ confidence bound.
func lowerBound(rate, n float64) float64 {
	if n <= 0 {
		return 0
	}
	return rate * max(1-growthZ/math.Sqrt(n), 0)
}

// record remembers what the horizon after p showed, at now.
func (g *growth) record(now time.Time, p growthPoint) {
	if p.base == 0 {
		if p.peak > 0 && !g.noReturns {
			g.returns.push(growthEvent{p.at, p.peak})
			g.rises.push(growthEvent{p.at, p.peak})
		}
		return
	}
	ratio := min(p.peak/p.base, growthMax)
	if ratio <= 1 {
		return
	}
	rise := (ratio - 1) * p.base
	g.rises.push(growthEvent{p.at, rise})
	if g.everyRatio {
		g.ratios.push(growthEvent{p.at, ratio})
		return
	}
	g.waiting = append(g.waiting, burst{growthEvent{p.at, ratio}, p.base, now})
}

// target is the demand the headroom keeps pods for now, at least the baseline, and what set it, in words
// ("" when the baseline alone does).
func (g *growth) target(now time.Time) (float64, string) {
	g.expire(now) // observe, which expires them too, skips the rounds on partial data
	target, why := g.grown(now)
	if back := g.returns.front(); g.silent() && back.value > target {
		return back.value, fmt.Sprintf(" → %.2f (demand came back to that after a silence at %s)", back.value, back.when(now))
	}
	return target, why
}

// grown is the baseline grown by the largest ratio or rise, at most growthMax times, and why.
func (g *growth) grown(now time.Time) (float64, string) {
	ratio, rise, adds := g.ratios.front(), g.rises.front(), ""
	if additive, spread := g.seen.additive(); additive && !g.bothForms {
		ratio, adds = growthEvent{}, fmt.Sprintf("; %d bursts at levels %.1f× apart rose alike: they add", len(g.seen), spread)
	}
	byRatio, byRise := g.base*max(ratio.value, 1), g.base+rise.value
	switch {
	case byRatio >= byRise && ratio.value > 1:
		return byRatio, fmt.Sprintf(" ×%.1f (demand grew %.1f× within one startup at %s)", ratio.value, ratio.value, ratio.when(now))
	case byRatio >= byRise:
		return g.base, ""
	case byRise > g.base*growthMax:
		return g.base * growthMax, fmt.Sprintf(" ×%g (demand rose by %.2f requests/s within one startup at %s, more than ×%g%s)",
			growthMax, rise.value, rise.when(now), growthMax, adds)
	}
	return byRise, fmt.Sprintf(" + %.2f (demand rose by that much within one startup at %s%s)", rise.value, rise.when(now), adds)
}

// Horizon is how long a scale-up takes to add a ready pod whose startup delay is startup (the default
// delay if 0): the startup and the control loop's lag.
func Horizon(startup time.Duration) time.Duration {
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
