package decision

import (
	"strings"
	"testing"
	"time"
)

// modelled is the article's policy with handPod's capacity prior.
func modelled() Policy {
	p := article()
	p.Capacity = handPod
	return p
}

// load is a service's demand, spread over n ready pods as the Service would: per pod, the counters' rates
// over a whole rate window and the gauges they imply (a pod with 1,000-token sequences holds 1 % of its cache
// per running sequence).
func load(n int, arrivals, prompt, decode, waiting float64) []Pod {
	per := arrivals / float64(n)
	running := per * 1.5
	return pods(n, Pod{Waiting: waiting, Running: running, KVCacheUsage: running * 0.01,
		DecodeTPS: per * decode, HasDecodeTPS: true, PromptTPS: per * prompt, FirstTokensPS: per,
		HasTokenRates: true, RateSpan: RateWindow, RecentArrivals: per, RecentSpan: 5 * time.Second, KVCacheTokens: 100_000})
}

// run feeds the autoscaler rounds every 5 s from from to to, the HPA applying each decision at once and every
// pod ready; demand gives the service's arrivals at each instant. It returns the last decision.
func run(a *Autoscaler, current *int32, from, to time.Duration, demand func(time.Duration) float64) Decision {
	var d Decision
	for at := from; at < to; at += 5 * time.Second {
		n := int(*current)
		d = a.Decide(Snapshot{Now: t0.Add(at), Current: *current, Ready: n, Pods: load(n, demand(at), 1000, 100, 0),
			StartupDelay: 60 * time.Second})
		*current = d.Desired
	}
	return d
}

// The capacity model sizes a steady load, with the reason naming its numbers.
func TestModelSizesSteadyLoad(t *testing.T) {
	a := New(modelled(), Without(MechanismHeadroom))
	current := int32(1)
	d := run(a, &current, 0, 20*time.Minute, func(time.Duration) float64 { return 10 })
	want := handPod.Fewest(Demand{Arrivals: 10, PromptPerRequest: 1000, DecodePerRequest: 100, ContextPerSeq: 1000},
		modelled().budget(), 0, 9).Pods
	if d.Desired != want || d.Capacity != want || d.Rule != RuleSteady {
		t.Fatalf("10 requests/s: %d (capacity %d, %s: %s), want the model's %d", d.Desired, d.Capacity, d.Rule, d.Reason, want)
	}
}

// A burst that ends returns to the steady count within the window and one startup delay.
func TestModelBurstReturnsToSteadyCount(t *testing.T) {
	a := New(modelled(), Without(MechanismHeadroom))
	current := int32(1)
	steady := run(a, &current, 0, 20*time.Minute, func(time.Duration) float64 { return 4 }).Desired
	burst := run(a, &current, 20*time.Minute, 25*time.Minute, func(time.Duration) float64 { return 16 })
	if burst.Desired <= steady {
		t.Fatalf("a 4x burst: %d replicas (%s), steady %d", burst.Desired, burst.Reason, steady)
	}
	back := run(a, &current, 25*time.Minute, 25*time.Minute+modelled().ScaleDownWindow+Horizon(60*time.Second),
		func(time.Duration) float64 { return 4 })
	if back.Desired != steady {
		t.Fatalf("after the burst, window and one startup: %d (%s: %s), want the steady %d", back.Desired, back.Rule, back.Reason, steady)
	}
}

// The burst headroom: after a 4x burst, the quiet keeps more pods than before it, by the growth it saw, never
// more than growthMax times the baseline and never above maxReplicas.
func TestModelHeadroomLearnsAndIsBounded(t *testing.T) {
	a := New(modelled())
	current := int32(1)
	before := run(a, &current, 0, 30*time.Minute, func(time.Duration) float64 { return 3 }).Desired
	run(a, &current, 30*time.Minute, 32*time.Minute, func(time.Duration) float64 { return 12 })
	after := run(a, &current, 32*time.Minute, 60*time.Minute, func(time.Duration) float64 { return 3 })
	if !(after.Desired > before) || !(after.Headroom > 2 && after.Headroom <= 4) {
		t.Fatalf("after a 4x burst: %d replicas, headroom ×%.2f (%s); before: %d", after.Desired, after.Headroom, after.Reason, before)
	}
	want := handPod.Fewest(Demand{Arrivals: 3 * after.Headroom, PromptPerRequest: 1000, DecodePerRequest: 100, ContextPerSeq: 1000},
		modelled().budget(), 0, 9).Pods
	if after.Desired != want {
		t.Fatalf("headroom ×%.2f on 3 requests/s should ask for %d, got %d (%s)", after.Headroom, want, after.Desired, after.Reason)
	}
	// A 100x burst: the headroom stops at growthMax, the count at maxReplicas.
	run(a, &current, 60*time.Minute, 62*time.Minute, func(time.Duration) float64 { return 200 })
	huge := run(a, &current, 62*time.Minute, 90*time.Minute, func(time.Duration) float64 { return 2 })
	if huge.Headroom > growthMax || huge.Desired > modelled().MaxReplicas {
		t.Fatalf("after a 100x burst: headroom ×%.2f, %d replicas", huge.Headroom, huge.Desired)
	}
}

// Pods that stay saturated at half the rate the prior predicts teach the autoscaler that the pods are slower:
// κ falls to 0.5 less the model's own error band, and the same demand asks for more pods.
func TestCalibrationLearnsFromSaturatedPods(t *testing.T) {
	d := Demand{Arrivals: 12, PromptPerRequest: 1000, DecodePerRequest: 100, ContextPerSeq: 1000}
	sat := handPod.Saturation(d)
	var k calibration
	saturated := Pod{Waiting: 10, HasTokenRates: true, RateSpan: RateWindow, FirstTokensPS: sat / 2}
	for i := range 60 {
		k.observe(t0.Add(time.Duration(i)*5*time.Second), []Pod{saturated, {Waiting: 3, HasTokenRates: true, RateSpan: RateWindow, FirstTokensPS: 9}}, sat, 5, RateWindow)
	}
	near(t, "κ", k.factor(), 0.5*calibrationBand, 1e-6) // the band's quarter is the model's own error
	slow := handPod.Scaled(k.factor())
	if a, b := handPod.Fewest(d, modelled().budget(), 0, 64).Pods, slow.Fewest(d, modelled().budget(), 0, 64).Pods; !(b > a) {
		t.Fatalf("pods half as fast: %d pods, the prior %d", b, a)
	}
	// A pod whose queue only filled during the window (none waiting at its start) is not saturated through it,
	// nor is one with fewer requests waiting than the target (the second pod above).
	var fresh calibration
	fresh.observe(t0, []Pod{{Waiting: 10, WaitingGrowth: 10.0 / RateWindow.Seconds(), HasTokenRates: true, RateSpan: RateWindow, FirstTokensPS: 1}}, sat, 5, RateWindow)
	if fresh.factor() != 1 {
		t.Fatalf("a queue that built during the window calibrated κ to %.2f", fresh.factor())
	}
	// Nor is a pod whose sequences stay longer than the window (its running sequences over its admissions):
	// it admits only as the batch it had finishes, whatever its speed.
	var young calibration
	backlogged := saturated
	backlogged.Running = backlogged.FirstTokensPS * 2 * RateWindow.Seconds()
	young.observe(t0, []Pod{backlogged}, sat, 5, RateWindow)
	if young.factor() != 1 {
		t.Fatalf("a window shorter than the pod's stay calibrated κ to %.2f", young.factor())
	}
}

// Missing data never scales down in the model either, and a scale-down waits a whole window after a restart.
func TestModelKeepsTheFaultMatrixPromises(t *testing.T) {
	a := New(modelled())
	current := int32(6)
	for at := time.Duration(0); at < 10*time.Minute; at += 5 * time.Second {
		s := Snapshot{Now: t0.Add(at), Current: current, Ready: 6, Pods: load(5, 1, 1000, 100, 0), Missing: 1}
		if d := a.Decide(s); d.Desired < current {
			t.Fatalf("at %s, one pod without data: scaled down to %d (%s)", at, d.Desired, d.Reason)
		}
	}
	b := New(modelled())
	for at := time.Duration(0); at < modelled().ScaleDownWindow; at += 5 * time.Second {
		d := b.Decide(Snapshot{Now: t0.Add(at), Current: 6, Ready: 6, Pods: load(6, 1, 1000, 100, 0)})
		if d.Desired != 6 {
			t.Fatalf("at %s after a restart: %d (%s: %s)", at, d.Desired, d.Rule, d.Reason)
		}
	}
}

// The KV load's dispersion is the mix's, not the moment's: each snapshot's spread across the pods, with the
// batch's own dispersion at their count taken out, is averaged with the per-request sizes' forgetting, so a
// snapshot one half-life old weighs half as much as the newest.
func TestKVDispersionAveragesOverTheMix(t *testing.T) {
	d := Demand{Arrivals: 4, PromptPerRequest: 1000, DecodePerRequest: 100, ContextPerSeq: 1000}
	uneven := Snapshot{Now: t0, Ready: 2, Pods: []Pod{{KVCacheUsage: 0.1}, {KVCacheUsage: 0.3}}}
	var z sizes
	z.decay(t0)
	first := handPod.BaseDispersion(0.1, 2, d) // variance 0.02 over mean 0.2
	near(t, "one snapshot", z.kvDispersion(handPod, uneven, d), first, 1e-9)
	later := t0.Add(perRequestHalfLife)
	z.decay(later)
	even := Snapshot{Now: later, Ready: 2, Pods: []Pod{{KVCacheUsage: 0.2}, {KVCacheUsage: 0.2}}}
	near(t, "an even snapshot one half-life later", z.kvDispersion(handPod, even, d), first*0.5/1.5, 1e-9)
	// A snapshot with one pod has no spread to measure: the average stands, until what is left of the
	// samples weighs less than one, and the model's own dispersion applies.
	onePod := Snapshot{Now: later, Ready: 1, Pods: even.Pods[:1]}
	near(t, "one pod", z.kvDispersion(handPod, onePod, d), first*0.5/1.5, 1e-9)
	z.decay(later.Add(perRequestHalfLife))
	if got := z.kvDispersion(handPod, onePod, d); got != 0 {
		t.Fatalf("samples weighing 0.75 still give a dispersion, %.4f", got)
	}
}

// Without growth, the headroom is the baseline alone, and the reason says no more than that.
func TestHeadroomReasonWithoutGrowth(t *testing.T) {
	a := New(modelled())
	current := int32(1)
	run(a, &current, 0, 20*time.Minute, func(time.Duration) float64 { return 8 })
	d := run(a, &current, 20*time.Minute, 21*time.Minute, func(time.Duration) float64 { return 1 })
	if d.Headroom != 1 || !strings.Contains(d.Reason, "(the 10m0s median) asks for") || strings.Contains(d.Reason, "grew") {
		t.Fatalf("a fall in demand after a steady load: headroom ×%.2f, reason %q", d.Headroom, d.Reason)
	}
}
