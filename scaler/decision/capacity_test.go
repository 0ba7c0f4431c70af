package decision

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// handPod is a capacity whose numbers are easy to follow by hand: a pod prefills 10,000 tokens/s alone, a
// decode step costs 20 ms plus 1 ms per sequence, a step holds 2,000 tokens, the cache 100,000 tokens.
var handPod = Capacity{PrefillTPS: 10_000, StepBase: 20 * time.Millisecond, StepPerSeq: time.Millisecond,
	StepTokens: 2_000, MaxSeqs: 256, KVTokens: 100_000}

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol*math.Max(math.Abs(want), 1e-12) {
		t.Errorf("%s = %.6g, want %.6g", what, got, want)
	}
}

// One pod, 2 requests/s of 1,000 prompt and 100 output tokens, each sequence holding 1,000 tokens of cache.
//
// The batch B solves B = λ·(S + d·t(B)/(1 − ρ)) with t(B) = 20 ms + 1 ms·B and ρ = λ·1000/10000 = 0.2 the
// share of the time the prompts' compute takes, the pod prefilling at V(B) = (2000 − B) / (t(B) + (2000 −
// B)/10000), S = 1000/V(B) and u = λ·S. At B = 6.969: t = 26.97 ms, V = 1993.03/0.22627 = 8,808 tokens/s,
// S = 0.11353 s, u = 0.2271, and 2·(0.11353 + 100·0.02697/0.8) = 6.969. With the default objective (2 s for
// 99 %) a request's wait and own prefill share T = 2 − 0.02697 = 1.9730 s; with C² = 1, θ = (1 − u)/S = 6.808
// and a = u/S = 2.000, so exp(−T/S) + exp(−θT)·(1 − exp(−aT)) = 2.8e-8 + 1.465e-6·0.9807 = 1.47e-6 of the
// requests are late; the average queue is u²·(1+C²)/(2(1−u)) = 0.0667. The cache holds 6.97 × 1,000 of
// 100,000 tokens: 7.0 %.
func TestCapacityOnePodByHand(t *testing.T) {
	d := Demand{Arrivals: 2, PromptPerRequest: 1000, DecodePerRequest: 100, ContextPerSeq: 1000}
	pl := handPod.At(1, d, Budget{TTFT: 2 * time.Second, Attainment: 0.99, QueueDepth: 5}, 0)
	near(t, "batch", pl.Batch, 6.9694, 1e-3)
	near(t, "prefill tokens/s", pl.PrefillTPS, 8808.1, 1e-3)
	near(t, "utilization", pl.Utilization, 0.22706, 1e-3)
	near(t, "step", pl.Step.Seconds(), 0.026969, 1e-3)
	near(t, "budget", pl.Budget.Seconds(), 1.9730, 1e-3)
	near(t, "queue late", pl.QueueLate, 1.465e-6, 1e-2)
	near(t, "average queue", pl.QueueMean, 0.066704, 1e-3)
	near(t, "KV fill", pl.KVFill, 0.069694, 1e-3)
	if !pl.Fits || pl.KVLate > 1e-12 {
		t.Fatalf("%+v: one pod fits", pl)
	}
}

// The average queue bounds the count: at 6 requests/s one pod's queue averages more than a target of 1.
func TestCapacityAverageQueue(t *testing.T) {
	d := Demand{Arrivals: 6, PromptPerRequest: 1000, DecodePerRequest: 10, ContextPerSeq: 1000}
	lax := handPod.At(1, d, Budget{TTFT: time.Minute, Attainment: 0.5, QueueDepth: 100}, 0)
	strict := handPod.At(1, d, Budget{TTFT: time.Minute, Attainment: 0.5, QueueDepth: 1}, 0)
	if !lax.Fits || strict.Fits || strict.Limit != "average queue" || !(strict.QueueMean > 1) {
		t.Fatalf("average queue %.2f: target 100 fits %v, target 1 fits %v (%s)", strict.QueueMean, lax.Fits, strict.Fits, strict.Limit)
	}
}

// With an objective of 700 ms, T = 0.7 − 0.02697 = 0.6730 s on one pod: exp(−0.6730/0.11353) = 0.00266 of the
// prompts take longer alone, and exp(−6.808·0.6730)·(1 − exp(−2·0.6730)) = 0.00757 wait too long, 1.02 % late
// in all; on two (λ = 1, ρ = 0.1, B = 2.625, S = 0.11133 s, u = 0.1113, t = 22.63 ms, T = 0.6774 s, θ = 7.982,
// a = 1), 0.00228 + 0.00448·0.4920 = 0.45 %: two pods. At 500 ms no count does: exp(−T/S) alone is 1.4 %.
func TestCapacityObjectiveByHand(t *testing.T) {
	d := Demand{Arrivals: 2, PromptPerRequest: 1000, DecodePerRequest: 100, ContextPerSeq: 1000}
	b := Budget{TTFT: 700 * time.Millisecond, Attainment: 0.99}
	one := handPod.At(1, d, b, 0)
	near(t, "budget", one.Budget.Seconds(), 0.67303, 1e-3)
	near(t, "late on one pod", one.QueueLate, 0.010236, 1e-2)
	two := handPod.At(2, d, b, 0)
	near(t, "late on two pods", two.QueueLate, 0.0044823, 1e-2)
	if got := handPod.Fewest(d, b, 0, 8); got.Pods != 2 || one.Fits || !two.Fits {
		t.Fatalf("fewest = %d (one fits %v, two fits %v), want 2", got.Pods, one.Fits, two.Fits)
	}
	b.TTFT = 500 * time.Millisecond
	if got := handPod.Fewest(d, b, 0, 8); got.Fits || got.Limit != "prefill queue" {
		t.Fatalf("500 ms: %d pods fit %v (%s); want none, the prompts' own prefill alone late for 1.4 %%", got.Pods, got.Fits, got.Limit)
	}
}

// A saturated pod: the demand is more than one pod can decode at any batch (Little's law has no solution),
// and Saturation is the rate at which it still has one.
func TestCapacitySaturatedPod(t *testing.T) {
	d := Demand{Arrivals: 50, PromptPerRequest: 1000, DecodePerRequest: 100, ContextPerSeq: 1000}
	if pl := handPod.At(1, d, Budget{TTFT: 2 * time.Second, Attainment: 0.99, QueueDepth: 5}, 0); pl.Fits || pl.Limit != "decode" {
		t.Fatalf("50 requests/s on one pod: %+v", pl)
	}
	sat := handPod.Saturation(d)
	// A request's prefill (0.1 s alone) and its decodes' per-sequence share (100 × 1 ms) cap a pod at 5
	// requests/s even with the step base amortized over an infinite batch; prefill steps also stretch the
	// decodes, so the saturation rate lies well under that.
	if !(sat > 2.5 && sat < 5) {
		t.Fatalf("saturation %.2f requests/s, want between 2.5 and 5", sat)
	}
	for _, lam := range []float64{sat * 0.99, sat * 1.01} {
		d.Arrivals = lam
		pl := handPod.At(1, d, Budget{Attainment: 0}, 0)
		if serves := pl.Utilization < 1 && !math.IsInf(pl.Batch, 0) && pl.KVFill <= 1; serves != (lam < sat) {
			t.Errorf("at %.3f requests/s (saturation %.3f): %+v", lam, sat, pl)
		}
	}
}

// Prefix-cache hits leave less to prefill: the same requests with 80 % of their prompt cached need fewer pods.
// The pods report uncached prompt tokens/s (package signals subtracts vllm:prompt_tokens_cached_total).
func TestCapacityPrefixCacheHits(t *testing.T) {
	prompt := Demand{Arrivals: 20, PromptPerRequest: 1800, DecodePerRequest: 20, ContextPerSeq: 1810}
	cached := prompt
	cached.PromptPerRequest = 360
	b := Budget{TTFT: 2 * time.Second, Attainment: 0.99, QueueDepth: 5}
	full, hit := handPod.Fewest(prompt, b, 0, 100), handPod.Fewest(cached, b, 0, 100)
	if !(hit.Pods < full.Pods) {
		t.Fatalf("80 %% prefix hits: %d pods, without: %d", hit.Pods, full.Pods)
	}
}

// An old vLLM without the prompt and first-token counters: the capacity model does not run, the queue and
// throughput rules decide as they did, and the decision says so by its rule.
func TestCapacityOffWithoutTheCounters(t *testing.T) {
	p := article()
	p.ScaleDownWindow = 0
	p.Capacity = handPod
	a := New(p)
	a.started = t0.Add(-time.Hour)
	d := a.Decide(Snapshot{Now: t0, Current: 4, Ready: 4, Pods: pods(4, busy(0, 2, 100))})
	if d.Capacity != 0 || d.Rule != RuleScaleDown || d.Desired != 2 {
		t.Fatalf("old vLLM: %d (%s: %s), want the floor's 2 without the model", d.Desired, d.Rule, d.Reason)
	}
}

// More demand never needs fewer pods, whatever the mix.
func TestCapacityMonotone(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 3000; i++ {
		d := Demand{Arrivals: r.Float64() * 30, PromptPerRequest: 10 + r.Float64()*8000, DecodePerRequest: 1 + r.Float64()*1000}
		if r.IntN(2) == 0 {
			d.PromptShape = randomHistogram(r).Shape()
		}
		d.ContextPerSeq = d.PromptPerRequest + d.DecodePerRequest/2
		b := Budget{TTFT: time.Duration(100+r.IntN(5000)) * time.Millisecond, Attainment: 0.9 + r.Float64()*0.099,
			QueueDepth: float64(1 + r.IntN(10))}
		more := d
		more.Arrivals *= 1 + r.Float64()
		lo, hi := handPod.Fewest(d, b, 0, 64), handPod.Fewest(more, b, 0, 64)
		if hi.Pods < lo.Pods {
			t.Fatalf("%+v asks %d pods, %.3g× the arrivals asks %d", d, lo.Pods, more.Arrivals/d.Arrivals, hi.Pods)
		}
	}
}
