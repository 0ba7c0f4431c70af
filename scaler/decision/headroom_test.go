package decision

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// feed gives g rounds every 5 s from from to to at rate requests/s, each scrape interval's arrivals the same
// rate, with a 90-s horizon.
func feed(g *growth, from, to time.Duration, rate float64) {
	for at := from; at < to; at += 5 * time.Second {
		g.observe(t0.Add(at), rate, rate*30, rate, rate*5, 90*time.Second)
	}
}

// A growth is remembered as a ratio and as a rise; the headroom covers whichever asks for more at the
// current baseline, never more than growthMax times it.
func TestHeadroomCoversRatioAndRise(t *testing.T) {
	var g growth
	feed(&g, 0, 15*time.Minute, 100)
	feed(&g, 15*time.Minute, 17*time.Minute, 200) // 100 more requests/s, 2× the level
	feed(&g, 17*time.Minute, 40*time.Minute, 100)
	ratio, rise := g.ratios.front().value, g.rises.front().value
	if !(ratio > 1.7 && ratio < 2) || !(rise > 70 && rise < 100) {
		t.Fatalf("a 2× burst of +100 requests/s on 100: ratio %.2f, rise %.1f", ratio, rise)
	}
	near(t, "on the same baseline, the two agree", rise, (ratio-1)*100, 1e-9)

	// The baseline falls to 40: the rise asks for more than the ratio (an added load stays what it was).
	feed(&g, 40*time.Minute, 60*time.Minute, 40)
	target, why := g.target(t0.Add(60 * time.Minute))
	near(t, "after the baseline fell, baseline + rise", target, g.base+rise, 1e-9)
	if !(target > g.base*ratio) || !strings.Contains(why, "rose by") {
		t.Fatalf("baseline %.0f: target %.1f (%s), the ratio's %.1f", g.base, target, why, g.base*ratio)
	}
	// The baseline falls to 5: the rise alone would be over 17×; the headroom stops at growthMax.
	feed(&g, 60*time.Minute, 80*time.Minute, 5)
	target, why = g.target(t0.Add(80 * time.Minute))
	near(t, "at most growthMax times the baseline", target, g.base*growthMax, 1e-9)
	if !strings.Contains(why, "more than ×10") {
		t.Fatalf("baseline %.0f: target %.1f (%s)", g.base, target, why)
	}

	// A burst on a baseline of 50 that then climbs to 200 over 40 minutes, too slowly to read as growth:
	// the ratio asks for more (a surge grows with the traffic).
	var h growth
	feed(&h, 0, 15*time.Minute, 50)
	feed(&h, 15*time.Minute, 17*time.Minute, 100)
	feed(&h, 17*time.Minute, 30*time.Minute, 50)
	for at := 30 * time.Minute; at < 70*time.Minute; at += 5 * time.Second {
		rate := 50 + 150*(at-30*time.Minute).Seconds()/(40*time.Minute).Seconds()
		h.observe(t0.Add(at), rate, rate*30, rate, rate*5, 90*time.Second)
	}
	feed(&h, 70*time.Minute, 85*time.Minute, 200)
	if len(h.ratios) != 1 {
		t.Fatalf("the climb read as growth: %v", h.ratios)
	}
	target, why = h.target(t0.Add(85 * time.Minute))
	near(t, "after the baseline rose, baseline × ratio", target, h.base*h.ratios.front().value, 1e-9)
	if !(target > h.base+h.rises.front().value) || !strings.Contains(why, "grew") {
		t.Fatalf("baseline %.0f: target %.1f (%s)", h.base, target, why)
	}
}

// A step the level keeps is a trend, not a burst: its rise is remembered, its ratio is not (at a wave's
// crest, the ratio of its flank would keep pods for a climb that has already happened).
func TestASustainedRiseIsRememberedAsItsRiseOnly(t *testing.T) {
	var g growth
	feed(&g, 0, 15*time.Minute, 100)
	feed(&g, 15*time.Minute, 40*time.Minute, 200)
	if len(g.ratios) != 0 || len(g.waiting) != 0 {
		t.Fatalf("a step to a new level read as a burst: ratios %v, waiting %v", g.ratios, g.waiting)
	}
	rise := g.rises.front().value
	if !(rise > 70 && rise < 100) {
		t.Fatalf("a step of +100 requests/s: rise %.1f", rise)
	}
	target, why := g.target(t0.Add(40 * time.Minute))
	near(t, "after a step, the new level plus its rise", target, 200+rise, 1e-9)
	if !strings.Contains(why, "rose by") {
		t.Fatalf("after a step: %s", why)
	}
}

// A return from a silence is not growth by some ratio of the half-silent median it crosses: it is a rise by
// the rate demand came back to, and through the next silence, with no baseline to add it to, that rate.
func TestAReturnFromSilenceIsARiseByItsRate(t *testing.T) {
	var g growth
	feed(&g, 0, 15*time.Minute, 0)
	feed(&g, 15*time.Minute, 35*time.Minute, 40)
	if len(g.ratios) != 0 || len(g.waiting) != 0 {
		t.Fatalf("a return from silence read as a burst: ratios %v, waiting %v", g.ratios, g.waiting)
	}
	back := g.returns.front().value
	if !(back > 30 && back <= 40) || g.rises.front().value != back {
		t.Fatalf("a return to 40 requests/s: remembered %.1f, as a rise %v", back, g.rises)
	}
	target, why := g.target(t0.Add(35 * time.Minute))
	near(t, "while demand flows, the baseline plus the return", target, g.base+back, 1e-9)
	if !strings.Contains(why, "rose by") {
		t.Fatalf("while demand flows: %s", why)
	}
	feed(&g, 35*time.Minute, 44*time.Minute, 0)
	target, why = g.target(t0.Add(44 * time.Minute))
	if g.base != 0 || target != back || !strings.Contains(why, "came back to that after a silence") {
		t.Fatalf("9 minutes into a silence: baseline %.1f, target %.1f (%s), the return %.1f", g.base, target, why, back)
	}
}

// A burst's ratio is pushed once the burst has ended, after newer growths: the memory keeps each event that
// no newer one outweighs, newest last.
func TestSlidingMaxTakesAnOlderEvent(t *testing.T) {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	var m slidingMax
	m.push(growthEvent{at(10), 2})
	m.push(growthEvent{at(5), 3})   // older, larger: both stay, the older first
	m.push(growthEvent{at(7), 1})   // outweighed by the newer 2
	m.push(growthEvent{at(8), 2.5}) // between the two
	want := slidingMax{{at(5), 3}, {at(8), 2.5}, {at(10), 2}}
	if !slices.Equal(m, want) {
		t.Fatalf("memory %v, want %v", m, want)
	}
	m.push(growthEvent{at(9), 5}) // outweighs and outlasts the first two, not the newest
	if want := (slidingMax{{at(9), 5}, {at(10), 2}}); !slices.Equal(m, want) {
		t.Fatalf("memory %v, want %v", m, want)
	}
	m.expire(at(9).Add(growthMemory + time.Minute))
	if want := (slidingMax{{at(10), 2}}); !slices.Equal(m, want) {
		t.Fatalf("after the largest expired: %v, want %v", m, want)
	}
}

// One burst cannot tell whether bursts add or multiply; two at levels apart can. The same +100 requests/s
// on 100 and on 200 adds: the ratio is left out. The same 2× on 100 and on 200 multiplies: it stays.
func TestBurstsAtDifferentLevelsTellAddFromMultiply(t *testing.T) {
	twoBursts := func(second float64) *growth {
		var g growth
		feed(&g, 0, 15*time.Minute, 100)
		feed(&g, 15*time.Minute, 17*time.Minute, 200)
		feed(&g, 17*time.Minute, 30*time.Minute, 100)
		feed(&g, 30*time.Minute, 45*time.Minute, 200)
		feed(&g, 45*time.Minute, 47*time.Minute, second)
		feed(&g, 47*time.Minute, 60*time.Minute, 200)
		return &g
	}
	add := twoBursts(300)
	target, why := add.target(t0.Add(60 * time.Minute))
	if len(add.seen) != 2 || target != add.base+add.rises.front().value || !strings.Contains(why, "they add") {
		t.Fatalf("+100 on 100 and on 200: %d bursts, target %.1f on a baseline of %.0f (%s)", len(add.seen), target, add.base, why)
	}
	mul := twoBursts(400)
	target, why = mul.target(t0.Add(60 * time.Minute))
	if len(mul.seen) != 2 || target != mul.base*mul.ratios.front().value || strings.Contains(why, "they add") {
		t.Fatalf("2× on 100 and on 200: %d bursts, target %.1f on a baseline of %.0f (%s)", len(mul.seen), target, mul.base, why)
	}
	// A single level says nothing: the headroom covers both forms.
	var one growth
	feed(&one, 0, 15*time.Minute, 100)
	feed(&one, 15*time.Minute, 17*time.Minute, 200)
	feed(&one, 17*time.Minute, 30*time.Minute, 100)
	feed(&one, 30*time.Minute, 32*time.Minute, 200)
	feed(&one, 32*time.Minute, 45*time.Minute, 100)
	if adds, _ := one.seen.additive(); len(one.seen) != 2 || adds {
		t.Fatalf("two bursts at one level: %d bursts, additive %v", len(one.seen), adds)
	}
}
