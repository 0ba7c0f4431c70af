package decision

import (
	"math"
	"testing"
	"time"
)

// kvPod is a pod under the throughput floor whose KV cache is kv full.
func kvPod(running, tps, kv float64) Pod {
	return Pod{Running: running, DecodeTPS: tps, HasDecodeTPS: true, KVCacheUsage: kv}
}

// The fewest pods whose caches hold a load with the chance that any is full under kvFull.
func TestKVNeed(t *testing.T) {
	cases := []struct {
		name  string
		k, r  float64
		limit int32
		want  int32
	}{
		{"no load needs no pod", 0, 0.1, 8, 0},
		{"a NaN load needs no pod", math.NaN(), 0.1, 8, 0},
		{"no spread: the load fits in the mean", 2.0, 0, 8, 2},
		{"a spread needs headroom", 2.0, 0.05, 8, 4},
		{"a wider spread, more headroom", 2.4, 0.1, 8, 5},
		{"a narrower spread, less", 2.4, 0.02, 8, 4},
		{"a small load fits on one pod", 0.5, 0.1, 8, 1},
		{"one pod at 90 % with any spread does not", 0.9, 0.01, 8, 2},
		{"clamped at the limit", 7.5, 0.1, 9, 9},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := kvNeed(tc.k, tc.r, tc.limit); got != tc.want {
				t.Fatalf("kvNeed(%v, %v, %d) = %d, want %d", tc.k, tc.r, tc.limit, got, tc.want)
			}
		})
	}
}

// kvPods are pods under the throughput floor, each running 4 long requests, with the given KV-cache usages.
func kvPods(kv ...float64) []Pod {
	out := make([]Pod, len(kv))
	for i, u := range kv {
		out[i] = kvPod(4, 100, u)
	}
	return out
}

func TestKVUsage(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{{0.4, 0.4}, {0, 0}, {1, 1}, {7, 1}, {-3, 0}, {math.NaN(), 0}, {math.Inf(1), 1}} {
		if got := kvUsage(Pod{KVCacheUsage: tc.in}); got != tc.want {
			t.Errorf("kvUsage(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// The rule on one snapshot (the minute's history is that snapshot alone), with no window in the way. Six
// pods running 4 requests each at 100 decode tokens/s: the queue rule allows ceil(24/(4+5)) = 3, the floor 2.
func TestKVHeadroom(t *testing.T) {
	noWindow := article()
	noWindow.ScaleDownWindow = 0
	queueOnly := Policy{MinReplicas: 1, MaxReplicas: 8, TargetQueue: 5}
	cases := []struct {
		name string
		p    Policy
		s    Snapshot
		want int32
		rule Rule
	}{
		{"KV caches filling under the throughput floor: scale up before a queue builds",
			noWindow, Snapshot{Current: 4, Ready: 4, Pods: []Pod{kvPod(20, 300, 0.95), kvPod(14, 250, 0.55), kvPod(12, 250, 0.45), kvPod(16, 280, 0.65)}}, 5, RuleScaleUpKVCache},
		{"starting pods count: the need is met, nothing more",
			noWindow, Snapshot{Current: 5, Ready: 4, Starting: 1, Pods: []Pod{kvPod(20, 300, 0.95), kvPod(14, 250, 0.55), kvPod(12, 250, 0.45), kvPod(16, 280, 0.65)}}, 5, RuleKVCacheHeadroom},
		{"the queue and the floor allow 3, the caches hold 5",
			noWindow, Snapshot{Current: 6, Ready: 6, Pods: kvPods(0.3, 0.7, 0.4, 0.6, 0.5, 0.5)}, 5, RuleKVCacheHeadroom},
		{"the same load, uniform across pods: no headroom needed beyond the mean",
			noWindow, Snapshot{Current: 6, Ready: 6, Pods: kvPods(0.5, 0.5, 0.5, 0.5, 0.5, 0.5)}, 3, RuleScaleDown},
		{"the same load, spread out: more pods than there are",
			noWindow, Snapshot{Current: 6, Ready: 6, Pods: kvPods(0.2, 0.8, 0.3, 0.7, 0.4, 0.6)}, 7, RuleScaleUpKVCache},
		{"the rule holds a queue-only policy too",
			queueOnly, Snapshot{Current: 6, Ready: 6, Pods: kvPods(0.3, 0.7, 0.4, 0.6, 0.5, 0.5)}, 5, RuleKVCacheHeadroom},
		{"light caches: the queue rule decides",
			noWindow, Snapshot{Current: 6, Ready: 6, Pods: kvPods(0.06, 0.14, 0.08, 0.12, 0.1, 0.1)}, 3, RuleScaleDown},
		{"busy pods above the floor stay, their caches have room",
			noWindow, Snapshot{Current: 3, Ready: 3, Pods: pods(3, kvPod(20, 450, 0.3))}, 3, RuleThroughputAboveFloor},
		{"a queue above target decides by the queue rule",
			noWindow, Snapshot{Current: 2, Ready: 2, Pods: pods(2, Pod{Waiting: 12, Running: 10, DecodeTPS: 300, HasDecodeTPS: true, KVCacheUsage: 1})}, 3, RuleScaleUpQueue},
		{"missing data holds, the caches do not scale",
			noWindow, Snapshot{Current: 4, Ready: 4, Missing: 1, Pods: pods(3, kvPod(20, 300, 0.95))}, 4, RuleMissingData},
		{"a NaN usage reads as an empty cache, not as a reason to scale",
			noWindow, Snapshot{Current: 4, Ready: 4, Pods: []Pod{kvPod(1, 50, math.NaN()), kvPod(1, 50, 0.2), kvPod(1, 50, 0.2), kvPod(1, 50, 0.2)}}, 1, RuleScaleDown},
		{"clamped at max",
			noWindow, Snapshot{Current: 8, Ready: 8, Pods: kvPods(0.98, 0.6, 0.98, 0.6, 0.98, 0.6, 0.98, 0.6)}, 8, RuleAtMaxReplicas},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.Now = t0
			a := New(tc.p)
			a.started = t0.Add(-time.Hour)
			d := a.Decide(tc.s)
			if d.Desired != tc.want || d.Rule != tc.rule {
				t.Fatalf("got %d (%s: %s), want %d (%s)", d.Desired, d.Rule, d.Reason, tc.want, tc.rule)
			}
		})
	}
}

// K and r are averaged over the last minute: one scrape of full caches does not scale up, a minute of them
// does, and a light minute later the full one is forgotten.
func TestKVHeadroomAveragesTheLastMinute(t *testing.T) {
	p := article()
	p.ScaleDownWindow = 0
	a := New(p)
	a.started = t0.Add(-time.Hour)
	light := []Pod{kvPod(8, 200, 0.2), kvPod(8, 200, 0.4), kvPod(8, 200, 0.2), kvPod(8, 200, 0.4)}
	full := []Pod{kvPod(8, 200, 0.95), kvPod(8, 200, 0.75), kvPod(8, 200, 0.95), kvPod(8, 200, 0.75)}
	at := func(s time.Duration) time.Time { return t0.Add(s * time.Second) }
	for i := time.Duration(0); i < 60; i += 5 {
		if d := a.Decide(Snapshot{Now: at(i), Current: 4, Ready: 4, Pods: light}); d.Rule == RuleScaleUpKVCache || d.Rule == RuleKVCacheHeadroom {
			t.Fatalf("light caches at %ds: %d (%s)", i, d.Desired, d.Reason)
		}
	}
	if d := a.Decide(Snapshot{Now: at(60), Current: 4, Ready: 4, Pods: full}); d.Desired > 4 {
		t.Fatalf("one scrape of full caches after a light minute: got %d (%s: %s), want no scale-up", d.Desired, d.Rule, d.Reason)
	}
	var d Decision
	for i := time.Duration(65); i <= 120; i += 5 {
		d = a.Decide(Snapshot{Now: at(i), Current: 4, Ready: 4, Pods: full})
	}
	if d.Rule != RuleScaleUpKVCache || d.Desired != 5 {
		t.Fatalf("a minute of full caches: got %d (%s: %s), want 5 (%s)", d.Desired, d.Rule, d.Reason, RuleScaleUpKVCache)
	}
	for i := time.Duration(125); i <= 185; i += 5 {
		d = a.Decide(Snapshot{Now: at(i), Current: 5, Ready: 5, Pods: append(light, kvPod(8, 200, 0.3))})
	}
	if d.Rule == RuleScaleUpKVCache || d.Rule == RuleKVCacheHeadroom {
		t.Fatalf("a light minute after the full one: still %d (%s: %s)", d.Desired, d.Rule, d.Reason)
	}
}

// The KV recommendation enters the window like any other: it holds scale-down for one window.
func TestKVHeadroomHoldsTheWindow(t *testing.T) {
	a := New(article())
	a.started = t0.Add(-time.Hour)
	if d := a.Decide(Snapshot{Now: t0, Current: 6, Ready: 6, Pods: kvPods(0.3, 0.7, 0.4, 0.6, 0.5, 0.5)}); d.Desired != 5 || d.Rule != RuleKVCacheHeadroom {
		t.Fatalf("loaded caches: got %d (%s: %s), want 5 (%s)", d.Desired, d.Rule, d.Reason, RuleKVCacheHeadroom)
	}
	idle := pods(5, kvPod(1, 20, 0.01))
	if d := a.Decide(Snapshot{Now: t0.Add(200 * time.Second), Current: 5, Ready: 5, Pods: idle}); d.Desired != 5 || d.Rule != RuleScaleDownStabilizing {
		t.Fatalf("inside the window: got %d (%s), want 5 (%s)", d.Desired, d.Rule, RuleScaleDownStabilizing)
	}
	if d := a.Decide(Snapshot{Now: t0.Add(301 * time.Second), Current: 5, Ready: 5, Pods: idle}); d.Desired >= 5 {
		t.Fatalf("after the window: got %d (%s), want a scale-down", d.Desired, d.Rule)
	}
}

// The batch of TestCapacityOnePodByHand (2 requests/s, B = 6.969) on a pod whose cache holds 10,000 tokens,
// every prompt 1,000 tokens: its sequences use (λ/N)·d̄·c/(1 − ρ) = 2·100·1 ms/0.8 = 0.25 of its decode
// capacity, so the batch's variance is B/0.75 and the load's index of dispersion (0.1 of a cache per
// sequence, exponential contexts) r = 0.1·(1 + 1/0.75) = 0.2333. The cache is 69.69 % full on average, and
// a request needs 0.1 of it free for its prompt: with the load gamma of shape 0.6969/0.2333 = 2.987 and
// scale 0.2333, it finds its pod full Q(2.987, 0.9/0.2333 = 3.857) ≈ 25.7 % of the time (Q(3, 3.857) =
// (1 + 3.857 + 3.857²/2)·e^−3.857 = 26.0 %). The pods' own spread, measured at this count, replaces 0.2 (the
// Poisson part) through BaseDispersion.
func TestKVCacheBatchDispersionByHand(t *testing.T) {
	c := handPod
	c.KVTokens = 10_000
	d := Demand{Arrivals: 2, PromptPerRequest: 1000, DecodePerRequest: 100, ContextPerSeq: 1000, PromptShape: Shape{{Lo: 1, Hi: 1, P: 1}}}
	b := Budget{TTFT: 2 * time.Second, Attainment: 0.99, QueueDepth: 5}
	pl := c.At(1, d, b, 0)
	near(t, "decode load", pl.DecodeLoad, 0.25, 1e-3)
	near(t, "KV fill", pl.KVFill, 0.69694, 1e-3)
	r := 0.1 * (1 + 1/0.75)
	near(t, "KV late", pl.KVLate, upperGamma(0.69694/r, 0.9/r), 2e-3)
	near(t, "KV late", pl.KVLate, 0.257, 1e-2)
	measured := 0.3 // the pods' var/mean at this one count
	base := c.BaseDispersion(measured, 1, d)
	near(t, "base dispersion", base, 0.3/((1+1/0.75)/2), 1e-3)
	near(t, "KV late at the measured spread", c.At(1, d, b, base).KVLate, upperGamma(pl.KVFill/measured, 0.9/measured), 2e-3)
	// Exponential prompts of the same mean: some need more than 0.1 of the cache, some less, and the long
	// ones find it full more often than the short ones find it free.
	d.PromptShape = nil
	if exp := c.At(1, d, b, 0).KVLate; !(exp > pl.KVLate) {
		t.Fatalf("exponential prompts find the cache full %.4f of the time, equal ones %.4f", exp, pl.KVLate)
	}
}

// upperGamma against its closed forms: Q(1, x) = e^−x, Q(2, x) = (1 + x)·e^−x, Q(3, x) = (1 + x + x²/2)·e^−x,
// Q(1/2, x) = erfc(√x), on both sides of a + 1 (series and continued fraction).
func TestUpperGamma(t *testing.T) {
	for _, x := range []float64{0.01, 0.5, 1, 2.5, 4, 10, 40} {
		e := math.Exp(-x)
		near(t, "Q(1, x)", upperGamma(1, x), e, 1e-9)
		near(t, "Q(2, x)", upperGamma(2, x), (1+x)*e, 1e-9)
		near(t, "Q(3, x)", upperGamma(3, x), (1+x+x*x/2)*e, 1e-9)
		near(t, "Q(1/2, x)", upperGamma(0.5, x), math.Erfc(math.Sqrt(x)), 1e-9)
	}
	if upperGamma(3, 0) != 1 || upperGamma(3, -1) != 1 || upperGamma(0, 1) != 0 || upperGamma(math.Inf(1), 1) != 0 {
		t.Fatal("edge cases: Q(a, x ≤ 0) = 1, and no shape, no tail")
	}
}
