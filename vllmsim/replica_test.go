package vllmsim

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

// small is a replica whose iteration times are easy to add up by hand: 10 ms per iteration, 1 ms per
// decoding sequence, 10 µs per context token and 100 µs per prefill token, 64 tokens per iteration and
// 64 blocks of 16 tokens.
func small() Params {
	return Params{
		MaxNumSeqs:            4,
		MaxNumBatchedTokens:   64,
		KVCacheTokens:         1024,
		BlockSize:             16,
		IterationBase:         10 * ms,
		DecodePerSeq:          1 * ms,
		DecodePerContextToken: 10 * time.Microsecond,
		PrefillTokensPerSec:   10_000,
	}
}

func TestOneRequest(t *testing.T) {
	us := time.Microsecond
	for _, tc := range []struct {
		name    string
		startup time.Duration
		req     Request
		// Hand-computed: the time of every output token.
		tokens []time.Duration
		queue  time.Duration
	}{{
		// One iteration: 10 ms + 50 prompt tokens × 100 µs.
		name:   "prompt in one chunk, one token",
		req:    Request{ID: 1, PromptTokens: 50, MaxTokens: 1},
		tokens: []time.Duration{15 * ms},
	}, {
		// Prefill in chunks of 64 and 36 tokens: 16.4 ms + 13.6 ms. Then each decode step costs
		// 10 ms + 1 ms + (100 + tokens so far) × 10 µs: 12.01, 12.02, 12.03, 12.04 ms.
		name: "chunked prefill, five tokens",
		req:  Request{ID: 2, PromptTokens: 100, MaxTokens: 5},
		tokens: []time.Duration{30 * ms, 42*ms + 10*us, 54*ms + 30*us, 66*ms + 60*us,
			78*ms + 100*us},
	}, {
		// Nothing runs before the replica is ready; the wait counts as queue time.
		name:    "arrives during startup",
		startup: time.Second,
		req:     Request{ID: 3, PromptTokens: 50, MaxTokens: 2},
		tokens:  []time.Duration{time.Second + 15*ms, time.Second + 26*ms + 510*us},
		queue:   time.Second,
	}, {
		name:   "arrives at an idle replica later",
		req:    Request{ID: 4, Arrival: 2 * time.Second, PromptTokens: 50, MaxTokens: 1},
		tokens: []time.Duration{2*time.Second + 15*ms},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := small()
			p.StartupDelay = tc.startup
			obs := recorder{}
			r := mustReplica(t, p, WithTokenEvents(), WithObserver(obs))
			events := simulate(t, r, []Request{tc.req})

			var want []Event
			for i, at := range tc.tokens {
				kind := Token
				if i == 0 {
					kind = FirstToken
				}
				e := Event{Kind: kind, ID: tc.req.ID, At: at, Tokens: i + 1}
				if i == 0 {
					e.Queued = tc.queue
				}
				want = append(want, e)
			}
			last := tc.tokens[len(tc.tokens)-1]
			want = append(want, Event{Kind: Finished, ID: tc.req.ID, At: last, Tokens: len(tc.tokens), Queued: tc.queue, Reason: FinishLength})
			if !reflect.DeepEqual(events, want) {
				t.Fatalf("events\n got %v\nwant %v", events, want)
			}

			var itl []time.Duration
			for i := 1; i < len(tc.tokens); i++ {
				itl = append(itl, tc.tokens[i]-tc.tokens[i-1])
			}
			wantObs := recorder{
				TimeToFirstToken: {tc.tokens[0] - tc.req.Arrival},
				EndToEnd:         {last - tc.req.Arrival},
				QueueTime:        {tc.queue},
			}
			if itl != nil {
				wantObs[InterToken] = itl
			}
			if !reflect.DeepEqual(obs, wantObs) {
				t.Errorf("observations\n got %v\nwant %v", obs, wantObs)
			}

			m := r.Metrics()
			wantM := Metrics{
				PromptTokensTotal:     uint64(tc.req.PromptTokens),
				FirstTokensTotal:      1,
				GenerationTokensTotal: uint64(len(tc.tokens)),
			}
			wantM.RequestSuccessTotal[FinishLength] = 1
			wantM.observePrompt(tc.req.PromptTokens)
			if m != wantM {
				t.Errorf("metrics\n got %+v\nwant %+v", m, wantM)
			}

			// Advancing straight to the end in one call gives the same events.
			again := mustReplica(t, p, WithTokenEvents())
			mustSubmit(t, again, tc.req)
			if got := again.Advance(time.Hour); !reflect.DeepEqual(got, events) {
				t.Errorf("one Advance\n got %v\nwant %v", got, events)
			}
		})
	}
}

func TestKVCacheUsageCountsBlocks(t *testing.T) {
	r := mustReplica(t, small())
	mustSubmit(t, r, Request{ID: 1, PromptTokens: 100, MaxTokens: 5})
	r.Advance(30 * ms) // the first token: 101 tokens held in 7 of 64 blocks
	m := r.Metrics()
	if m.Running != 1 || m.Waiting != 0 || m.KVCacheUsage != 7.0/64 {
		t.Fatalf("after the first token: %+v, want 1 running and KV usage 7/64", m)
	}
	r.Advance(time.Hour)
	if m := r.Metrics(); m.Running != 0 || m.KVCacheUsage != 0 {
		t.Fatalf("after finishing: %+v, want nothing running and an empty cache", m)
	}
}

func TestSubmitRejects(t *testing.T) {
	r := mustReplica(t, small())
	mustSubmit(t, r, Request{ID: 1, PromptTokens: 10, MaxTokens: 10})
	for _, tc := range []struct {
		req  Request
		want error
	}{
		{Request{ID: 2, PromptTokens: 0, MaxTokens: 1}, ErrInvalidRequest},
		{Request{ID: 2, PromptTokens: 1, MaxTokens: 0}, ErrInvalidRequest},
		{Request{ID: 1, PromptTokens: 1, MaxTokens: 1}, ErrDuplicateID},
		// 1024 tokens of cache: a 1024-token prompt leaves no room for its first output token.
		{Request{ID: 2, PromptTokens: 1024, MaxTokens: 1}, ErrPromptTooLong},
	} {
		if err := r.Submit(tc.req); !errors.Is(err, tc.want) {
			t.Errorf("Submit(%+v) = %v, want %v", tc.req, err, tc.want)
		}
	}
	if m := r.Metrics(); m.Waiting != 1 {
		t.Errorf("a rejected request was queued: %+v", m)
	}
}

func TestOutputCappedToCache(t *testing.T) {
	r := mustReplica(t, small())
	mustSubmit(t, r, Request{ID: 1, PromptTokens: 1000, MaxTokens: 100})
	events := r.Advance(time.Hour)
	last := events[len(events)-1]
	if last.Kind != Finished || last.Tokens != 24 || last.Reason != FinishLength {
		t.Fatalf("last event %+v, want Finished with the 24 tokens that fit beside a 1000-token prompt", last)
	}
}

func TestAbort(t *testing.T) {
	r := mustReplica(t, small())
	mustSubmit(t, r,
		Request{ID: 1, PromptTokens: 10, MaxTokens: 100},
		Request{ID: 2, PromptTokens: 10, MaxTokens: 100},
		Request{ID: 3, PromptTokens: 10, MaxTokens: 100},
		Request{ID: 4, PromptTokens: 10, MaxTokens: 100},
		Request{ID: 5, PromptTokens: 10, MaxTokens: 100})
	r.Advance(100 * ms)
	if m := r.Metrics(); m.Running != 4 || m.Waiting != 1 {
		t.Fatalf("before aborting: %+v, want 4 running and 1 waiting", m)
	}
	if !r.Abort(2) || !r.Abort(5) || r.Abort(5) || r.Abort(42) {
		t.Fatal("Abort reported the wrong requests as present")
	}
	m := r.Metrics()
	if m.Running != 3 || m.Waiting != 0 || m.RequestSuccessTotal[FinishAbort] != 2 {
		t.Fatalf("after aborting one running and one waiting request: %+v", m)
	}
	for _, e := range r.Advance(time.Hour) {
		if e.ID == 2 || e.ID == 5 {
			t.Fatalf("event for an aborted request: %+v", e)
		}
	}
	if m := r.Metrics(); m.KVCacheUsage != 0 || m.RequestSuccessTotal[FinishLength] != 3 {
		t.Fatalf("at the end: %+v, want an empty cache and 3 finished", m)
	}
}

func TestAdvanceBackwardsIsANoOp(t *testing.T) {
	r := mustReplica(t, small())
	mustSubmit(t, r, Request{ID: 1, PromptTokens: 50, MaxTokens: 3})
	first := r.Advance(20 * ms)
	if len(first) != 1 {
		t.Fatalf("events by 20 ms: %v", first)
	}
	if got := r.Advance(5 * ms); got != nil {
		t.Fatalf("advancing backwards produced %v", got)
	}
	// A request submitted "in the past" arrives now.
	mustSubmit(t, r, Request{ID: 2, Arrival: 0, PromptTokens: 50, MaxTokens: 1})
	obs := recorder{}
	r.obs = obs
	r.Advance(time.Hour)
	if len(obs[QueueTime]) != 2 || obs[QueueTime][1] < 0 {
		t.Fatalf("queue times %v", obs[QueueTime])
	}
}

// vllm:request_prompt_tokens's buckets are vLLM's: a prompt counts in the first bucket whose bound it does
// not exceed, a bound's own value included; above every bound, in the last slot.
func TestPromptTokenBuckets(t *testing.T) {
	var m Metrics
	for _, n := range []int{1, 2, 3, 1000, 1001, 6_000_000} {
		m.observePrompt(n)
	}
	want := map[int]uint64{0: 1, 1: 1, 2: 1, 9: 1, 10: 1, len(PromptTokenBounds): 1}
	for i, c := range m.RequestPromptTokens {
		if c != want[i] {
			t.Errorf("bucket %d (le %v): %d, want %d", i, append(PromptTokenBounds[:], math.Inf(1))[i], c, want[i])
		}
	}
	if m.RequestPromptTokensSum != 1+2+3+1000+1001+6_000_000 {
		t.Errorf("sum %d", m.RequestPromptTokensSum)
	}
}
