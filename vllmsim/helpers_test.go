package vllmsim

import (
	"testing"
	"time"
)

const ms = time.Millisecond

// recorder is an Observer that keeps every observation.
type recorder map[Latency][]time.Duration

func (r recorder) Observe(l Latency, d time.Duration) { r[l] = append(r[l], d) }

func mustReplica(t testing.TB, p Params, opts ...Option) *Replica {
	t.Helper()
	r, err := NewReplica(p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustSubmit(t testing.TB, r *Replica, reqs ...Request) {
	t.Helper()
	for _, q := range reqs {
		if err := r.Submit(q); err != nil {
			t.Fatal(err)
		}
	}
}

// simulate feeds reqs (sorted by arrival) to r the way a discrete-event simulator would, jumping from
// event to event with NextEventTime, and returns every event.
func simulate(t testing.TB, r *Replica, reqs []Request) []Event {
	t.Helper()
	var out []Event
	var now time.Duration
	i := 0
	for {
		for i < len(reqs) && reqs[i].Arrival <= now {
			mustSubmit(t, r, reqs[i])
			i++
		}
		next, ok := r.NextEventTime()
		if i < len(reqs) && (!ok || reqs[i].Arrival < next) {
			now = reqs[i].Arrival
		} else if ok {
			now = next
		} else {
			return out
		}
		out = append(out, r.Advance(now)...)
	}
}

// simulateInSteps feeds reqs to r while advancing it every step (and at every arrival), then runs it to
// the end; the outcome must not depend on how often the replica is advanced.
func simulateInSteps(t testing.TB, r *Replica, reqs []Request, step, end time.Duration) []Event {
	t.Helper()
	var out []Event
	i := 0
	for now := time.Duration(0); now <= end; {
		out = append(out, r.Advance(now)...)
		for i < len(reqs) && reqs[i].Arrival <= now {
			mustSubmit(t, r, reqs[i])
			i++
		}
		next := now + step
		if i < len(reqs) && reqs[i].Arrival < next {
			next = reqs[i].Arrival
		}
		now = next
	}
	return out
}
