package vllmsim

import (
	"testing"
	"time"
)

// decodeRate starts n identical requests together and returns the replica's decode throughput, in
// tokens per second, over the 50 iterations after all of them have their first token.
func decodeRate(t *testing.T, p Params, n, prompt int) float64 {
	t.Helper()
	p.StartupDelay = 0
	r := mustReplica(t, p)
	for id := range uint64(n) {
		mustSubmit(t, r, Request{ID: id, PromptTokens: prompt, MaxTokens: 100_000})
	}
	for first := 0; first < n; {
		next, _ := r.NextEventTime()
		for _, e := range r.Advance(next) {
			if e.Kind == FirstToken {
				first++
			}
		}
	}
	start, before := r.lastEnd, r.Metrics()
	for range 50 {
		next, _ := r.NextEventTime()
		r.Advance(next)
	}
	after := r.Metrics()
	if after.PreemptionsTotal != 0 || after.Running != n {
		t.Fatalf("the batch did not stay whole: %+v", after)
	}
	return float64(after.GenerationTokensTotal-before.GenerationTokensTotal) / (r.lastEnd - start).Seconds()
}

// TestPresetsMatchTheirDocumentation checks the figures the presets' comments promise.
func TestPresetsMatchTheirDocumentation(t *testing.T) {
	for _, tc := range []struct {
		name               string
		p                  Params
		itlMin, itlMax     time.Duration // one request alone
		batch, prompt      int           // a batch near the cache limit
		rateMin, rateMax   float64
		short              int // a full batch of short requests
		shortMin, shortMax float64
	}{
		{"A10G", A10GLlama8B(), 25 * ms, 30 * ms, 64, 400, 1000, 1500, 256, 2000, 2600},
		{"H100", H100Llama8B(), 6 * ms, 8 * ms, 512, 700, 8000, 12000, 1024, 14000, 20000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.p.Validate(); err != nil {
				t.Fatal(err)
			}
			obs := recorder{}
			p := tc.p
			p.StartupDelay = 0
			r := mustReplica(t, p, WithObserver(obs))
			mustSubmit(t, r, Request{ID: 1, PromptTokens: 100, MaxTokens: 2})
			r.Advance(time.Hour)
			if itl := obs[InterToken][0]; itl < tc.itlMin || itl > tc.itlMax {
				t.Errorf("single-stream inter-token latency %v, want %v–%v", itl, tc.itlMin, tc.itlMax)
			}
			rate := decodeRate(t, tc.p, tc.batch, tc.prompt)
			t.Logf("%d sequences near the cache limit: %.0f tok/s", tc.batch, rate)
			if rate < tc.rateMin || rate > tc.rateMax {
				t.Errorf("%d sequences of %d-token prompts decode %.0f tok/s, want %.0f–%.0f",
					tc.batch, tc.prompt, rate, tc.rateMin, tc.rateMax)
			}
			rate = decodeRate(t, tc.p, tc.short, 20)
			t.Logf("%d short sequences: %.0f tok/s", tc.short, rate)
			if rate < tc.shortMin || rate > tc.shortMax {
				t.Errorf("%d short sequences decode %.0f tok/s, want %.0f–%.0f", tc.short, rate, tc.shortMin, tc.shortMax)
			}
		})
	}
}
