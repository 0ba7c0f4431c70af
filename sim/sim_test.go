package sim

import (
	"reflect"
	"testing"
	"time"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/vllmsim"
)

// article is the article's autoscaling block: queue 5, 400 tokens/s, 300 s window, 1..8 replicas.
func article() Config {
	return Config{
		Replica: vllmsim.A10GLlama8B(),
		Policy: decision.Policy{MinReplicas: 1, MaxReplicas: 8, TargetQueue: 5, TargetDecodeTPS: 400,
			ScaleDownWindow: 300 * time.Second},
	}
}

// One replica, one request: TTFT is one iteration, the fixed cost plus prefilling the prompt, by hand.
func TestOneReplicaOneRequest(t *testing.T) {
	cfg := article()
	p := cfg.Replica
	reqs := []Request{{At: 3 * time.Second, PromptTokens: 600, OutputTokens: 1}}
	res, err := Run(cfg, LLMD, reqs)
	if err != nil {
		t.Fatal(err)
	}
	want := (p.IterationBase + 600*time.Second/time.Duration(p.PrefillTokensPerSec)).Seconds() // 28 ms + 100 ms
	if res.Requests != 1 || res.TTFTP50 != want || res.QueueWaitP95 != 0 || res.SLOAttainment != 1 {
		t.Fatalf("got %+v, want TTFT %v s, no wait, SLO met", res, want)
	}
	if res.ScaleUps != 0 || res.ScaleDowns != 0 || res.MaxReplicas != 1 {
		t.Fatalf("one request must not scale: %+v", res)
	}
	// One pod over [0, 3 s].
	if got, want := res.GPUHours, (3 * time.Second).Hours(); got != want {
		t.Fatalf("GPU-hours %v, want %v", got, want)
	}
}

// A saturated replica: a burst queues far beyond the target, the scaler asks for more, the HPA's scale-up
// limit (+4 from 1) caps the first step, and the new pods take exactly StartupDelay to become ready.
func TestSaturatedReplicaScalesUp(t *testing.T) {
	cfg := article()
	var reqs []Request
	for i := 0; i < 600; i++ {
		reqs = append(reqs, Request{At: time.Duration(i) * 100 * time.Millisecond, PromptTokens: 1000, OutputTokens: 300})
	}
	res, err := Run(cfg, LLMD, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if res.ScaleUps == 0 || res.MaxReplicas < 2 {
		t.Fatalf("no scale-up under a queue of hundreds: %+v", res)
	}
	// The first scale-up happens at an HPA sync; its pods are starting for StartupDelay, then ready.
	first := -1
	for i, p := range res.Series {
		if p.Starting > 0 {
			first = i
			break
		}
	}
	if first < 0 {
		t.Fatal("no pod ever starting")
	}
	p0 := res.Series[first]
	if p0.Replicas > 5 {
		t.Fatalf("first step to %d replicas: the HPA allows at most 1+4", p0.Replicas)
	}
	startedBy := p0.T
	for _, p := range res.Series[first:] {
		if p.T < startedBy+cfg.Replica.StartupDelay-cfg.WithDefaults().SeriesStep && p.Ready > 1 {
			t.Fatalf("a pod was ready at %s, before its startup delay", p.T)
		}
		if p.T >= startedBy+cfg.Replica.StartupDelay+cfg.WithDefaults().HPASync {
			if p.Ready < 2 {
				t.Fatalf("at %s the first new pods should be ready: %+v", p.T, p)
			}
			break
		}
	}
	if res.SLOAttainment >= 0.99 {
		t.Fatalf("a burst of 10 requests/s on one A10G cannot meet a 2 s TTFT while pods start: %v", res.SLOAttainment)
	}
}

// Cache exhaustion: a prompt larger than the KV cache is rejected, as vLLM does; it counts as a miss and
// the others are served.
func TestPromptLargerThanTheCache(t *testing.T) {
	cfg := article()
	reqs := []Request{
		{At: 0, PromptTokens: 100, OutputTokens: 10},
		{At: time.Second, PromptTokens: cfg.Replica.KVCacheTokens + 1, OutputTokens: 10},
		{At: 2 * time.Second, PromptTokens: 100, OutputTokens: 10},
	}
	for _, pol := range Policies {
		res, err := Run(cfg, pol, reqs)
		if err != nil {
			t.Fatal(pol, err)
		}
		if res.Rejected != 1 || res.SLOAttainment != 2.0/3 {
			t.Fatalf("%s: got %+v, want one rejected request and 2/3 attainment", pol, res)
		}
	}
}

// A fixed size charges n pods over the whole trace, and a scale-down lets pods drain: no request is lost.
func TestStaticAndDrain(t *testing.T) {
	cfg := article()
	reqs := []Request{{At: 0, PromptTokens: 100, OutputTokens: 10}, {At: 10 * time.Minute, PromptTokens: 100, OutputTokens: 10}}
	res, err := RunFixed(cfg, 3, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.GPUHours, 3*(10*time.Minute).Hours(); got != want {
		t.Fatalf("GPU-hours %v, want %v", got, want)
	}
	// llmd from 4 idle replicas: after the 300 s warm-up window it scales down to 1.
	cfg.InitialReplicas = 4
	res, err = Run(cfg, LLMD, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if res.ScaleDowns == 0 || res.Series[len(res.Series)-1].Replicas != 1 || res.SLOAttainment != 1 {
		t.Fatalf("idle replicas not released or requests lost: %+v", res)
	}
}

// Same inputs and seed: identical results, time series included.
func TestDeterminism(t *testing.T) {
	cfg := article()
	cfg.Seed = 7
	cfg.Warmup = time.Minute
	reqs := synthetic(4 * time.Minute)
	for _, pol := range Policies {
		a, err := Run(cfg, pol, reqs)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Run(cfg, pol, reqs)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: two runs differ:\n%+v\n%+v", pol, a, b)
		}
	}
}

func TestValidate(t *testing.T) {
	cfg := article()
	cfg.HPASync = 7 * time.Second
	if _, err := Run(cfg, LLMD, synthetic(time.Minute)); err == nil {
		t.Fatal("an HPA sync that is not a multiple of 5 s was accepted")
	}
	if _, err := Run(article(), "nope", synthetic(time.Minute)); err == nil {
		t.Fatal("unknown policy accepted")
	}
	unsorted := []Request{{At: time.Second, PromptTokens: 1, OutputTokens: 1}, {At: 0, PromptTokens: 1, OutputTokens: 1}}
	if _, err := Run(article(), LLMD, unsorted); err == nil {
		t.Fatal("unsorted trace accepted")
	}
}

// synthetic is a deterministic trace: a ramp from 1 to 7 requests/s with varied sizes.
func synthetic(d time.Duration) []Request {
	var out []Request
	x := uint64(12345)
	for at := time.Duration(0); at < d; {
		x = x*6364136223846793005 + 1442695040888963407
		rate := 1 + 6*at.Seconds()/d.Seconds()
		at += time.Duration(float64(time.Second) / rate * float64(x>>40%200+1) / 100)
		out = append(out, Request{At: at, PromptTokens: int(200 + x>>20%2000), OutputTokens: int(20 + x>>30%300)})
	}
	return out
}
