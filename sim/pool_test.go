package sim

import (
	"reflect"
	"testing"
	"time"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/pool"
	"github.com/llm-d/llm-d/vllmsim"
)

// burst is a generated trace: rate requests/s of the given shape from `from` to `to`.
func burst(from, to time.Duration, rate float64, prompt, output int) []Request {
	var reqs []Request
	step := time.Duration(float64(time.Second) / rate)
	for at := from; at < to; at += step {
		reqs = append(reqs, Request{At: at, PromptTokens: prompt, OutputTokens: output})
	}
	return reqs
}

// twoModels is the production pool's shape (high/60, normal/40, LowPriority) on the given budget, with
// the article's policy for both members, one GPU each, and 1 minute of warm-up.
func twoModels(budget int64, a, b []Request) Pool {
	svc := func(max int32) Config {
		return Config{Replica: vllmsim.A10GLlama8B(), Warmup: time.Minute, Seed: 1,
			Policy: decision.Policy{MinReplicas: 1, MaxReplicas: max, TargetQueue: 5, TargetDecodeTPS: 400,
				ScaleDownWindow: 60 * time.Second}}
	}
	return Pool{BudgetGPUs: budget, Eviction: pool.EvictLowPriority, Services: []PoolService{
		{Name: "llama-3-8b", Config: svc(8), Trace: a, Priority: pool.High, Weight: 60, GPUsPerReplica: 1},
		{Name: "phi-3-mini", Config: svc(4), Trace: b, Priority: pool.Normal, Weight: 40, GPUsPerReplica: 1},
	}}
}

// Both members overloaded at once, then taking turns: the GPUs their pods hold (starting, ready and
// draining) never exceed the budget, at any instant, warm-up included; the fixed split does not either.
func TestPoolNeverExceedsBudget(t *testing.T) {
	a := append(burst(0, 4*time.Minute, 12, 1000, 200), burst(6*time.Minute, 8*time.Minute, 12, 1000, 200)...)
	b := append(burst(0, 2*time.Minute, 12, 1000, 200), burst(4*time.Minute, 6*time.Minute, 12, 1000, 200)...)
	p := twoModels(5, a, b)
	shared, err := RunPool(p)
	if err != nil {
		t.Fatal(err)
	}
	if shared.MaxGPUsHeld > p.BudgetGPUs {
		t.Fatalf("shared: %d GPUs held at once, budget %d", shared.MaxGPUsHeld, p.BudgetGPUs)
	}
	if shared.MaxGPUsHeld < p.BudgetGPUs {
		t.Fatalf("shared: the pool never used its budget (%d GPUs held at most): the test does not contend", shared.MaxGPUsHeld)
	}
	if len(shared.Held) == 0 {
		t.Fatal("no held-GPU series")
	}
	for _, h := range shared.Held {
		if h.GPUs > p.BudgetGPUs {
			t.Fatalf("shared: %d GPUs held in the step ending at %s, budget %d", h.GPUs, h.T, p.BudgetGPUs)
		}
	}
	capped := 0
	for _, r := range shared.Services {
		capped += r.Rules[string(poolBudget)]
	}
	if capped == 0 {
		t.Fatal("the pool never capped a decision: the test does not contend")
	}
	split, err := RunSplit(p)
	if err != nil {
		t.Fatal(err)
	}
	if split.MaxGPUsHeld > p.BudgetGPUs || !reflect.DeepEqual(split.CapsGPUs, []int64{3, 2}) {
		t.Fatalf("split: %d GPUs held, caps %v; want <= %d and 3/2", split.MaxGPUsHeld, split.CapsGPUs, p.BudgetGPUs)
	}
}

// With phi-3-mini idle, llama-3-8b borrows its share: it runs more replicas than its fixed split allows,
// and serves its overload better for it.
func TestPoolLendsIdleShare(t *testing.T) {
	p := twoModels(6, burst(0, 5*time.Minute, 14, 1000, 200), burst(0, 5*time.Minute, 0.05, 200, 20))
	shared, err := RunPool(p)
	if err != nil {
		t.Fatal(err)
	}
	split, err := RunSplit(p)
	if err != nil {
		t.Fatal(err)
	}
	if split.CapsGPUs[0] != 4 || split.Services[0].MaxReplicas > 4 {
		t.Fatalf("split: llama capped at %d GPUs, ran %d replicas", split.CapsGPUs[0], split.Services[0].MaxReplicas)
	}
	if got := shared.Services[0].MaxReplicas; got <= 4 {
		t.Fatalf("shared: llama ran at most %d replicas, no more than its split of 4", got)
	}
	if shared.Services[0].SLOAttainment <= split.Services[0].SLOAttainment {
		t.Errorf("shared: llama %.4f within SLO, split %.4f: borrowing did not help", shared.Services[0].SLOAttainment,
			split.Services[0].SLOAttainment)
	}
	if shared.MaxGPUsHeld > p.BudgetGPUs {
		t.Fatalf("%d GPUs held, budget %d", shared.MaxGPUsHeld, p.BudgetGPUs)
	}
}

// Same inputs, same results, bit for bit; and a split member serves its requests exactly as a
// single-service llmd run with its cap as maxReplicas, since it shares nothing. (Its controller keeps
// running until every member's trace is served, so its decisions and scale events after its own trace
// ends are not compared.)
func TestPoolDeterministic(t *testing.T) {
	p := twoModels(5, burst(0, 3*time.Minute, 10, 800, 150), burst(time.Minute, 3*time.Minute, 8, 1500, 30))
	first, err := RunPool(p)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := RunPool(p)
	if !reflect.DeepEqual(first, again) {
		t.Fatal("two runs of the same pool differ")
	}
	split, err := RunSplit(p)
	if err != nil {
		t.Fatal(err)
	}
	if p.Services[0].Config.Policy.MaxReplicas != 8 {
		t.Fatal("RunSplit changed the caller's services")
	}
	for i, s := range p.Services {
		cfg := s.Config
		cfg.Policy.MaxReplicas = int32(split.CapsGPUs[i])
		alone, err := Run(cfg, LLMD, s.Trace)
		if err != nil {
			t.Fatal(err)
		}
		got := split.Services[i]
		same := alone.Requests == got.Requests && alone.SLOAttainment == got.SLOAttainment &&
			alone.GPUHours == got.GPUHours && alone.TTFTP50 == got.TTFTP50 && alone.TTFTP99 == got.TTFTP99 &&
			alone.QueueWaitP95 == got.QueueWaitP95 && alone.MaxReplicas == got.MaxReplicas && alone.ScaleUps == got.ScaleUps &&
			reflect.DeepEqual(alone.Series, got.Series[:len(alone.Series)])
		if !same {
			t.Errorf("%s: split run differs from a run alone:\n%+v\n%+v", s.Name, got, alone)
		}
	}
}

func TestSplitBudget(t *testing.T) {
	for _, tc := range []struct {
		budget int64
		want   []int64
	}{{4, []int64{2, 2}}, {8, []int64{5, 3}}, {10, []int64{6, 4}}, {5, []int64{3, 2}}, {1, []int64{1, 0}}} {
		if got := SplitBudget(twoModels(tc.budget, nil, nil)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("budget %d: %v, want %v", tc.budget, got, tc.want)
		}
	}
}

func TestPoolRefuses(t *testing.T) {
	p := twoModels(1, burst(0, time.Minute, 1, 100, 10), burst(0, time.Minute, 1, 100, 10))
	if _, err := RunPool(p); err == nil {
		t.Error("minimums of 2 GPUs on a budget of 1 accepted")
	}
	p = twoModels(4, burst(0, time.Minute, 1, 100, 10), burst(0, time.Minute, 1, 100, 10))
	p.Services[1].Name = p.Services[0].Name
	if _, err := RunPool(p); err == nil {
		t.Error("repeated name accepted")
	}
	p = twoModels(4, burst(0, time.Minute, 1, 100, 10), burst(0, time.Minute, 1, 100, 10))
	p.Services[1].Config.Warmup = 0
	if _, err := RunPool(p); err == nil {
		t.Error("different warm-ups accepted")
	}
}
