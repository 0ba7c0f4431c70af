package signals

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/vllmmetrics"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// Rates span the rate window: the oldest sample kept is the last one at or before the window's start.
func TestDecodeRateOverTheWindowAndCounterReset(t *testing.T) {
	var p Pod
	steps := []struct {
		at      time.Duration
		tokens  float64
		wantTPS float64
		hasTPS  bool
	}{
		{0, 1000, 0, false},                         // one scrape: no rate yet
		{10 * time.Second, 3000, 200, true},         // (3000-1000)/10
		{20 * time.Second, 3000, 100, true},         // idle for 10 s: (3000-1000)/20
		{30 * time.Second, 4000, 100, true},         // (4000-1000)/30
		{40 * time.Second, 4000, 1000 / 30.0, true}, // the window moved: (4000-3000)/30 from the 10 s sample
		{45 * time.Second, 200, 0, false},           // reset: vLLM restarted, no rate until the next scrape
		{50 * time.Second, 1200, 200, true},         // (1200-200)/5: the rate restarts after the reset
	}
	for _, st := range steps {
		p.Observe(t0.Add(st.at), Sample{GenerationTokens: st.tokens, Waiting: 1, Running: 2})
		s, err := p.Signals(t0.Add(st.at), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if s.HasDecodeTPS != st.hasTPS || math.Abs(s.DecodeTPS-st.wantTPS) > 1e-9 && st.hasTPS {
			t.Fatalf("at %s: tps %v (has %v), want %v (has %v)", st.at, s.DecodeTPS, s.HasDecodeTPS, st.wantTPS, st.hasTPS)
		}
	}
}

// Prompt tokens less prefix-cache hits, first tokens and the queue's growth, over the window; a vLLM without
// the counters has no token rates and keeps its decode rate.
func TestTokenRates(t *testing.T) {
	var p Pod
	p.Observe(t0, Sample{Waiting: 2, PromptTokens: 10_000, CachedPromptTokens: 1_000, FirstTokens: 10, HasTokenCounters: true, KVCacheTokens: 33_600})
	p.Observe(t0.Add(10*time.Second), Sample{Waiting: 7, PromptTokens: 40_000, CachedPromptTokens: 11_000, FirstTokens: 20, HasTokenCounters: true, KVCacheTokens: 33_600})
	s, err := p.Signals(t0.Add(10*time.Second), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasTokenRates || s.PromptTPS != 2000 || s.FirstTokensPS != 1 || s.WaitingGrowth != 0.5 || s.KVCacheTokens != 33_600 {
		t.Fatalf("%+v: want 2,000 uncached prompt tokens/s ((30,000-10,000)/10), 1 first token/s, waiting +0.5/s", s)
	}
	var old Pod
	old.Observe(t0, Sample{GenerationTokens: 100})
	old.Observe(t0.Add(5*time.Second), Sample{GenerationTokens: 600})
	if s, _ := old.Signals(t0.Add(5*time.Second), time.Minute); s.HasTokenRates || !s.HasDecodeTPS || s.DecodeTPS != 100 {
		t.Fatalf("a vLLM without the token counters: %+v", s)
	}
	// A reset of the first-token counter alone is a restart too.
	p.Observe(t0.Add(15*time.Second), Sample{PromptTokens: 40_000, CachedPromptTokens: 11_000, FirstTokens: 3, HasTokenCounters: true})
	if s, _ := p.Signals(t0.Add(15*time.Second), time.Minute); s.HasTokenRates || s.HasDecodeTPS {
		t.Fatalf("rates across a restart: %+v", s)
	}
}

func TestMissingAndStaleData(t *testing.T) {
	var p Pod
	if _, err := p.Signals(t0, time.Second); err == nil {
		t.Fatal("a pod never scraped has signals")
	}
	p.Observe(t0, Sample{Waiting: 3})
	if _, err := p.Signals(t0.Add(11*time.Second), 10*time.Second); err == nil {
		t.Fatal("stale data accepted")
	}
	boom := errors.New("connection refused")
	p.Fail(t0.Add(time.Second), boom)
	if _, err := p.Signals(t0.Add(time.Second), 10*time.Second); !errors.Is(err, boom) {
		t.Fatalf("failed scrape not reported: %v", err)
	}
	p.Observe(t0.Add(2*time.Second), Sample{Waiting: 4})
	if s, err := p.Signals(t0.Add(2*time.Second), 10*time.Second); err != nil || s.Waiting != 4 {
		t.Fatalf("recovered pod: %+v %v", s, err)
	}
}

// The prompt-length histogram's buckets become requests/s per bucket over the window; a histogram whose
// bounds changed, or that went backwards (a restart), gives none.
func TestPromptLengthRates(t *testing.T) {
	hist := func(counts ...float64) []vllmmetrics.Bucket {
		bounds := []float64{100, 1000, math.Inf(1)}
		var h []vllmmetrics.Bucket
		for i, c := range counts {
			h = append(h, vllmmetrics.Bucket{UpperBound: bounds[i], Count: c})
		}
		return h
	}
	sample := func(first float64, h []vllmmetrics.Bucket) Sample {
		return Sample{FirstTokens: first, HasTokenCounters: true, PromptLengths: h}
	}
	var p Pod
	p.Observe(t0, sample(10, hist(4, 8, 10)))
	p.Observe(t0.Add(10*time.Second), sample(40, hist(14, 28, 40)))
	s, err := p.Signals(t0.Add(10*time.Second), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := decision.Histogram{Bounds: []float64{100, 1000}, Counts: []float64{1, 1, 1}}
	if !reflect.DeepEqual(s.PromptLengths, want) {
		t.Fatalf("%+v, want %+v: 10 requests in each bucket over 10 s", s.PromptLengths, want)
	}
	var changed Pod
	changed.Observe(t0, sample(10, hist(4, 8, 10)))
	other := hist(14, 28, 40)
	other[1].UpperBound = 2000
	changed.Observe(t0.Add(10*time.Second), sample(40, other))
	if s, _ := changed.Signals(t0.Add(10*time.Second), time.Minute); s.PromptLengths.Counts != nil || !s.HasTokenRates {
		t.Fatalf("bounds changed: %+v, want token rates without a histogram", s)
	}
	p.Observe(t0.Add(20*time.Second), sample(50, hist(1, 1, 1)))
	if s, _ := p.Signals(t0.Add(20*time.Second), time.Minute); s.HasTokenRates {
		t.Fatalf("the histogram went backwards, a restart: %+v", s)
	}
}
