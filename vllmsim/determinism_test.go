package vllmsim

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// workload returns n requests with exponential inter-arrival times of the given mean, prompts of 1–3000
// tokens and outputs of 1–500, from a fixed seed.
func workload(seed uint64, n int, meanGap time.Duration) []Request {
	rng := rand.New(rand.NewPCG(seed, 0))
	reqs := make([]Request, n)
	var at time.Duration
	for i := range reqs {
		at += time.Duration(rng.ExpFloat64() * float64(meanGap))
		reqs[i] = Request{ID: uint64(i), Arrival: at, PromptTokens: 1 + rng.IntN(3000), MaxTokens: 1 + rng.IntN(500)}
	}
	return reqs
}

type outcome struct {
	events  []Event
	metrics Metrics
	obs     recorder
}

func TestDeterministic(t *testing.T) {
	p := A10GLlama8B()
	p.KVCacheTokens = 12_000 // small enough that growing outputs run out of cache
	p.StartupDelay = time.Second
	reqs := workload(1, 120, 100*ms)

	run := func(drive func(r *Replica) []Event) outcome {
		obs := recorder{}
		r := mustReplica(t, p, WithTokenEvents(), WithObserver(obs))
		return outcome{drive(r), r.Metrics(), obs}
	}
	byEvent := func(r *Replica) []Event { return simulate(t, r, reqs) }
	want := run(byEvent)

	m := want.metrics
	if m.PreemptionsTotal == 0 || m.RequestSuccessTotal[FinishLength] != uint64(len(reqs)) || m.Running+m.Waiting != 0 {
		t.Fatalf("the workload should finish every request and preempt some: %+v", m)
	}
	if again := run(byEvent); !reflect.DeepEqual(again, want) {
		t.Fatal("the same inputs gave different outputs")
	}
	end := want.events[len(want.events)-1].At + time.Second
	for _, step := range []time.Duration{3 * time.Millisecond, 37 * time.Millisecond, time.Second} {
		got := run(func(r *Replica) []Event { return simulateInSteps(t, r, reqs, step, end) })
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("advancing every %v changed the outcome: %+v, want %+v", step, got.metrics, want.metrics)
		}
	}
	for i := 1; i < len(want.events); i++ {
		if want.events[i].At < want.events[i-1].At {
			t.Fatalf("events out of time order: %v then %v", want.events[i-1], want.events[i])
		}
	}
}

func TestValidate(t *testing.T) {
	if err := (Params{}).Validate(); err == nil {
		t.Fatal("the zero Params validated")
	}
	for _, tc := range []struct {
		name   string
		change func(*Params)
		want   string
	}{
		{"no sequences", func(p *Params) { p.MaxNumSeqs = 0 }, "MaxNumSeqs"},
		{"budget below a full batch", func(p *Params) { p.MaxNumBatchedTokens = p.MaxNumSeqs - 1 }, "MaxNumBatchedTokens"},
		{"no block size", func(p *Params) { p.BlockSize = 0 }, "BlockSize"},
		{"cache smaller than a block", func(p *Params) { p.KVCacheTokens = p.BlockSize - 1 }, "KVCacheTokens"},
		{"free iterations", func(p *Params) { p.IterationBase = 0 }, "IterationBase"},
		{"negative decode cost", func(p *Params) { p.DecodePerSeq = -1 }, "DecodePerSeq"},
		{"negative attention cost", func(p *Params) { p.DecodePerContextToken = -1 }, "DecodePerContextToken"},
		{"no prefill", func(p *Params) { p.PrefillTokensPerSec = 0 }, "PrefillTokensPerSec"},
		{"negative startup", func(p *Params) { p.StartupDelay = -time.Second }, "StartupDelay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := A10GLlama8B()
			tc.change(&p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error about %s", err, tc.want)
			}
			if _, err := NewReplica(p); err == nil {
				t.Fatal("NewReplica accepted invalid params")
			}
		})
	}
}
