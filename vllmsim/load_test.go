package vllmsim

import (
	"reflect"
	"testing"
	"time"
)

func TestSaturatedReplica(t *testing.T) {
	us := time.Microsecond
	for _, tc := range []struct {
		name   string
		perCtx time.Duration
		// Hand-computed: when the 100th decode step after the first tokens ends.
		hundredth time.Duration
	}{{
		// Each decode step: 10 ms + 8 × 1 ms = 18 ms for 8 tokens, 444.4 tok/s.
		name:      "decode cost per sequence",
		hundredth: 10*ms + 800*us + 100*18*ms,
	}, {
		// Step g (g = 1..100) adds 8 sequences × (10 + g) context tokens × 1 µs:
		// 8 µs × (100 × 10 + 100 × 101 / 2) = 48.4 ms.
		name:      "and per context token",
		perCtx:    us,
		hundredth: 10*ms + 800*us + 100*18*ms + 48400*us,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := Params{
				MaxNumSeqs:            8,
				MaxNumBatchedTokens:   512,
				KVCacheTokens:         1 << 20,
				BlockSize:             16,
				IterationBase:         10 * ms,
				DecodePerSeq:          ms,
				DecodePerContextToken: tc.perCtx,
				PrefillTokensPerSec:   100_000,
			}
			r := mustReplica(t, p)
			for id := range uint64(20) {
				mustSubmit(t, r, Request{ID: id, PromptTokens: 10, MaxTokens: 1000})
			}
			// The first iteration admits MaxNumSeqs requests and prefills 80 tokens: 10 ms + 0.8 ms.
			if ev := r.Advance(10*ms + 800*us); len(ev) != 8 {
				t.Fatalf("first tokens: %v", ev)
			}
			if m := r.Metrics(); m.Running != 8 || m.Waiting != 12 || m.GenerationTokensTotal != 8 {
				t.Fatalf("after the first iteration: %+v, want 8 running, 12 waiting", m)
			}
			r.Advance(tc.hundredth - 1)
			if got := r.Metrics().GenerationTokensTotal; got != 8+99*8 {
				t.Fatalf("just before the 100th step ends: %d tokens, want %d", got, 8+99*8)
			}
			r.Advance(tc.hundredth)
			m := r.Metrics()
			if m.GenerationTokensTotal != 8+100*8 || m.Running != 8 || m.Waiting != 12 {
				t.Fatalf("after 100 decode steps: %+v, want 808 tokens, 8 running, 12 waiting", m)
			}
		})
	}
}

func TestKVCacheExhaustion(t *testing.T) {
	// 100 one-token blocks; 10 ms per iteration and 100 µs per prefill token, no per-sequence cost.
	p := Params{
		MaxNumSeqs:          10,
		MaxNumBatchedTokens: 256,
		KVCacheTokens:       100,
		BlockSize:           1,
		IterationBase:       10 * ms,
		PrefillTokensPerSec: 10_000,
	}
	us := time.Microsecond

	t.Run("requests wait for space", func(t *testing.T) {
		// Each needs 41 blocks to start; two fit, and at 45 tokens each they never run out.
		r := mustReplica(t, p, WithTokenEvents())
		for id := range uint64(3) {
			mustSubmit(t, r, Request{ID: id, PromptTokens: 40, MaxTokens: 5})
		}
		r.Advance(18 * ms) // prefill 80 tokens: 10 ms + 8 ms
		if m := r.Metrics(); m.Running != 2 || m.Waiting != 1 || m.KVCacheUsage != 0.82 {
			t.Fatalf("after the first iteration: %+v, want 2 running, 1 waiting, 82%% of the cache", m)
		}
		events := r.Advance(time.Hour)
		// 0 and 1 finish after 4 decode steps (58 ms); 2 starts then: 10 ms + 4 ms prefill, 4 steps.
		want := []Event{
			{Kind: FirstToken, ID: 2, At: 72 * ms, Tokens: 1, Queued: 58 * ms},
			{Kind: Finished, ID: 2, At: 112 * ms, Tokens: 5, Queued: 58 * ms, Reason: FinishLength},
		}
		if got := eventsOf(events, 2, FirstToken, Finished); !reflect.DeepEqual(got, want) {
			t.Fatalf("request 2: %v, want %v", got, want)
		}
		if m := r.Metrics(); m.PreemptionsTotal != 0 {
			t.Fatalf("preempted %d times, want none", m.PreemptionsTotal)
		}
	})

	t.Run("running requests are preempted", func(t *testing.T) {
		// Three 30-token prompts start together (31 blocks each). At the 4th token each needs 34: 0 gets
		// the last free block, 1 preempts 2, the most recently admitted.
		obs := recorder{}
		r := mustReplica(t, p, WithTokenEvents(), WithObserver(obs))
		for id := range uint64(3) {
			mustSubmit(t, r, Request{ID: id, PromptTokens: 30, MaxTokens: 20})
		}
		r.Advance(49 * ms) // 19 ms of prefill, then three 10 ms decode steps
		m := r.Metrics()
		if m.Running != 2 || m.Waiting != 1 || m.PreemptionsTotal != 1 || m.GenerationTokensTotal != 3*3+2 {
			t.Fatalf("after the 4th token: %+v, want 2 running, 1 waiting, 1 preemption, 11 tokens", m)
		}
		events := r.Advance(time.Hour)
		// 0 and 1 finish at 49 + 16 × 10 = 209 ms. 2 recomputes its 30 + 3 tokens (10 ms + 3.3 ms), so
		// its 4th token comes at 222.3 ms and its 20th 16 steps later.
		want := []Event{
			{Kind: Token, ID: 2, At: 222*ms + 300*us, Tokens: 4},
			{Kind: Finished, ID: 2, At: 382*ms + 300*us, Tokens: 20, Reason: FinishLength},
		}
		got := eventsOf(events, 2, Token, Finished)
		if len(got) != 18 || !reflect.DeepEqual(got[0], want[0]) || !reflect.DeepEqual(got[17], want[1]) {
			t.Fatalf("request 2 after preemption: %v, want %v first and %v last", got, want[0], want[1])
		}
		m = r.Metrics()
		if m.PreemptionsTotal != 1 || m.GenerationTokensTotal != 60 || m.PromptTokensTotal != 90 || m.KVCacheUsage != 0 {
			t.Fatalf("at the end: %+v, want 1 preemption, 60 tokens, 90 prompt tokens, empty cache", m)
		}
		if n := len(obs[TimeToFirstToken]); n != 3 {
			t.Fatalf("%d TTFT observations, want 3: a preemption does not make a second first token", n)
		}
		if gap := obs[InterToken][len(obs[InterToken])-17]; gap != 222*ms+300*us-39*ms {
			t.Fatalf("inter-token latency across the preemption: %v, want 183.3ms", gap)
		}
	})
}

// eventsOf returns the events of request id that have one of the kinds.
func eventsOf(events []Event, id uint64, kinds ...EventKind) []Event {
	var out []Event
	for _, e := range events {
		for _, k := range kinds {
			if e.ID == id && e.Kind == k {
				out = append(out, e)
			}
		}
	}
	return out
}
