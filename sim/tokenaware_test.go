package sim

import (
	"math"
	"testing"
	"time"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/vllmsim"
)

// The guide's calibration by hand: one chunk of --max-num-batched-tokens alone on an idle replica takes one
// iteration, its fixed cost plus the chunk's prefill, and V_P is the chunk over that TTFT.
func TestPrefillVelocity(t *testing.T) {
	for _, p := range []vllmsim.Params{vllmsim.A10GLlama8B(), vllmsim.H100Llama8B()} {
		ttft := p.IterationBase + time.Duration(int64(p.MaxNumBatchedTokens)*int64(time.Second)/int64(p.PrefillTokensPerSec))
		want := float64(p.MaxNumBatchedTokens) / ttft.Seconds() // A10G: 2048 / 0.3693 s = 5,545 tokens/s
		got, err := MeasurePrefillVelocity(p)
		if err != nil || got != want {
			t.Errorf("V_P %v (%v), want %v", got, err, want)
		}
	}
}

func TestCalibrateTokenAware(t *testing.T) {
	p := vllmsim.A10GLlama8B()
	vp, _ := MeasurePrefillVelocity(p)
	reqs := []Request{{PromptTokens: 500}, {PromptTokens: 1500}}
	cal, err := CalibrateTokenAware(TokenAwareCalibration{}, p, 2*time.Second, reqs)
	if err != nil {
		t.Fatal(err)
	}
	// ISL 1,000: threshold 0.65 × (2 s − 1000/V_P).
	if cal.PrefillVelocity != vp || cal.ISL != 1000 || math.Abs(cal.Threshold-0.65*(2-1000/vp)) > 1e-12 || cal.KVTarget != 0.8 {
		t.Errorf("calibration %+v", cal)
	}
	// Prompts that take longer than the objective to prefill leave no budget: the floor, 0.1 × the objective.
	cal, _ = CalibrateTokenAware(TokenAwareCalibration{}, p, 2*time.Second, []Request{{PromptTokens: 20000}})
	if math.Abs(cal.Threshold-0.65*0.2) > 1e-12 {
		t.Errorf("threshold %v, want 0.13 s", cal.Threshold)
	}
	// Set fields stay.
	set := TokenAwareCalibration{PrefillVelocity: 1000, ISL: 10, Threshold: 1.5, KVTarget: 0.7}
	if cal, _ := CalibrateTokenAware(set, p, 2*time.Second, reqs); cal != set {
		t.Errorf("calibration %+v, want %+v kept", cal, set)
	}
	if _, err := CalibrateTokenAware(TokenAwareCalibration{Threshold: -1}, p, 2*time.Second, reqs); err == nil {
		t.Error("negative threshold accepted")
	}
}

// readyPod is a ready pod whose replica holds one admitted request of prompt tokens (0: idle).
func readyPod(t *testing.T, prompt int) *pod {
	t.Helper()
	p := vllmsim.A10GLlama8B()
	p.StartupDelay = 0
	r, err := vllmsim.NewReplica(p)
	if err != nil {
		t.Fatal(err)
	}
	if prompt > 0 {
		if err := r.Submit(vllmsim.Request{ID: 1, PromptTokens: prompt, MaxTokens: 1}); err != nil {
			t.Fatal(err)
		}
		r.Advance(time.Millisecond) // admitted: its KV blocks are held
	}
	return &pod{r: r, ready: true}
}

// The recipe's arithmetic on one HPA sync, and its lags: the prefill trigger asks for
// ceil(in-flight tokens / V_P / threshold) replicas, the decode trigger ceil(Σ KV usage / 0.8), the HPA
// takes the larger; a change Prometheus scrapes at 15 s reaches the HPA only when KEDA reads it, at 30 s.
func TestTokenAwareArithmetic(t *testing.T) {
	cfg := article().WithDefaults()
	cfg.TokenAware = TokenAwareCalibration{PrefillVelocity: 6000, ISL: 1, Threshold: 1, KVTarget: 0.8}
	ctl, err := newTokenAware(&cfg, nil, DefaultBehavior())
	if err != nil {
		t.Fatal(err)
	}
	a, b := readyPod(t, 0), readyPod(t, 0)
	c := &cluster{replicas: 2, pods: []*pod{a, b}}
	a.inflightPrompt = 6000 * 3.5 // 3.5 s of prefill: 4 replicas at 1 s each
	if n, ok := ctl.tick(0, c); !ok || n != 4 {
		t.Fatalf("prefill backlog of 3.5 s, threshold 1 s: %d replicas (%v), want 4", n, ok)
	}
	a.inflightPrompt = 0
	if _, ok := ctl.tick(5*time.Second, c); ok {
		t.Fatal("the HPA acted between syncs")
	}
	if n, _ := ctl.tick(15*time.Second, c); n != 4 {
		t.Fatalf("at 15 s the HPA still sees KEDA's reading of 0 s: %d, want 4", n)
	}

	// Decode: two caches 95 % full are 1.9 / 0.8 = 2.4 pods' worth, 3 replicas; no prefill backlog.
	ctl, _ = newTokenAware(&cfg, nil, DefaultBehavior())
	a, b = readyPod(t, 31900), readyPod(t, 31900)
	usage := a.r.Metrics().KVCacheUsage
	if usage < 0.94 || usage > 0.96 {
		t.Fatalf("KV usage %v, want about 0.95", usage)
	}
	c = &cluster{replicas: 2, pods: []*pod{a, b}}
	if n, _ := ctl.tick(0, c); n != 3 {
		t.Fatalf("KV usage 2 × %.3f: %d replicas, want 3", usage, n)
	}
}

// recorder is a controller that never scales and records the in-flight prompt tokens of the first pod at
// every tick.
type recorder struct{ seen map[time.Duration]int }

func (r *recorder) tick(now time.Duration, c *cluster) (int32, bool) {
	r.seen[now] = c.pods[0].inflightPrompt
	return 0, false
}

// The endpoint picker's count: a request's prompt tokens from its dispatch until its first token. A 30,000
// token prompt arriving at 1 s on an A10G prefills for about 5.4 s.
func TestInflightPromptTokens(t *testing.T) {
	cfg := Config{Replica: vllmsim.A10GLlama8B(), Policy: decision.Policy{MinReplicas: 1, MaxReplicas: 1, TargetQueue: 5}}.WithDefaults()
	rec := &recorder{seen: map[time.Duration]int{}}
	reqs := []Request{{At: time.Second, PromptTokens: 30000, OutputTokens: 50}}
	res, err := simulate(cfg, rec, reqs, runOpts{name: "rec"})
	if err != nil {
		t.Fatal(err)
	}
	ttft := time.Duration(res.TTFTP50 * float64(time.Second))
	if ttft < 5*time.Second || ttft > 6*time.Second {
		t.Fatalf("TTFT %v, want about 5.4 s", ttft)
	}
	if rec.seen[0] != 0 || rec.seen[5*time.Second] != 30000 || rec.seen[10*time.Second] != 0 {
		t.Errorf("in-flight prompt tokens at 0, 5 and 10 s: %d, %d, %d; want 0, 30000, 0",
			rec.seen[0], rec.seen[5*time.Second], rec.seen[10*time.Second])
	}
}

// A token-aware run reports the calibration it used, and static:N is N fixed replicas.
func TestTokenAwareAndStaticPolicies(t *testing.T) {
	cfg := article()
	reqs := evenly(0, 2*time.Minute, 2)
	res, err := Run(cfg, TokenAware, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Policy != TokenAware || res.TokenAware == nil || res.TokenAware.ISL != 100 || res.SLOAttainment != 1 {
		t.Errorf("token-aware: %+v", res)
	}
	res, err = Run(cfg, "static:3", reqs)
	if err != nil || res.Policy != "static:3" || res.Replicas != 3 || res.MaxReplicas != 3 || res.ScaleUps != 0 {
		t.Errorf("static:3: %+v (%v)", res, err)
	}
	for _, bad := range []string{"static:0", "static:x", "static:", "magic"} {
		if _, err := Run(cfg, bad, reqs); err == nil {
			t.Errorf("policy %q accepted", bad)
		}
	}
}
