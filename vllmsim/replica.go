package vllmsim

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors Submit returns, wrapped with the details.
var (
	ErrInvalidRequest = errors.New("vllmsim: invalid request")
	ErrDuplicateID    = errors.New("vllmsim: duplicate request ID")
	// ErrPromptTooLong: the prompt and its first output token do not fit in the whole KV cache, so the
	// request could never run. vLLM rejects such a prompt with HTTP 400 before it reaches the engine.
	ErrPromptTooLong = errors.New("vllmsim: prompt does not fit in the KV cache")
)

// Replica is one vLLM engine with continuous batching, advanced by its caller through simulated time.
// It is deterministic: the same calls with the same arguments produce the same events. It is not safe
// for concurrent use.
type Replica struct {
	p           Params
	obs         Observer
	tokenEvents bool

	readyAt time.Duration // creation + StartupDelay; no iteration starts before
	now     time.Duration // the furthest time Advance was called with
	lastEnd time.Duration // end of the last completed iteration

	// The iteration in flight: its batch is fixed when it starts (seq.chunk), its tokens appear when it
	// ends, as in vLLM where the scheduler plans a step and the model runner executes it.
	inflight bool
	iterEnd  time.Duration

	running    []*seq // in admission order: preemption takes from the back
	waiting    queue
	byID       map[uint64]*seq
	freeBlocks int

	m Metrics
}

// seq is one request inside the replica.
type seq struct {
	id        uint64
	arrival   time.Duration
	prompt    int
	maxTokens int
	generated int
	// computed and target are the prefill progress of the current admission: target is everything known
	// (prompt and, after a preemption, the output so far, which vLLM recomputes).
	computed, target int
	blocks           int           // KV blocks held
	chunk            int           // tokens scheduled in the iteration in flight; 0 if none
	admitted         bool          // scheduled at least once; queued is then set
	queued           time.Duration // arrival to first admission
	lastToken        time.Duration
}

// Option configures a Replica.
type Option func(*Replica)

// WithStart creates the replica at simulated time t instead of 0: it is ready at t + StartupDelay and
// Advance and Submit before t are treated as at t. A simulator that scales up mid-trace needs it.
func WithStart(t time.Duration) Option {
	return func(r *Replica) { r.now, r.lastEnd = t, t }
}

// WithTokenEvents makes Advance report a Token event for every output token after the first, for a
// server that streams tokens. Without it Advance reports only FirstToken and Finished, which keeps a
// trace simulation cheap.
func WithTokenEvents() Option {
	return func(r *Replica) { r.tokenEvents = true }
}

// WithObserver sends latency observations to o.
func WithObserver(o Observer) Option {
	return func(r *Replica) { r.obs = o }
}

// NewReplica returns an idle replica, or p's Validate error.
func NewReplica(p Params, opts ...Option) (*Replica, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	r := &Replica{p: p, byID: make(map[uint64]*seq), freeBlocks: p.GPUBlocks()}
	for _, o := range opts {
		o(r)
	}
	r.readyAt = r.now + p.StartupDelay
	return r, nil
}

// ReadyAt is when the replica finished starting up: before it, requests wait.
func (r *Replica) ReadyAt() time.Duration { return r.readyAt }

// Submit adds req to the back of the waiting queue. Call it once the replica has been advanced to
// req.Arrival and before advancing past it; an Arrival earlier than the time Advance has reached is moved
// up to that time, latencies included. A request whose prompt plus MaxTokens exceeds the KV cache is
// capped to what fits, finishing with FinishLength early, as vLLM caps output at --max-model-len (which
// it requires to fit in the cache).
func (r *Replica) Submit(req Request) error {
	if req.PromptTokens < 1 || req.MaxTokens < 1 {
		return fmt.Errorf("%w %d: PromptTokens %d and MaxTokens %d must be at least 1",
			ErrInvalidRequest, req.ID, req.PromptTokens, req.MaxTokens)
	}
	if _, dup := r.byID[req.ID]; dup {
		return fmt.Errorf("%w %d", ErrDuplicateID, req.ID)
	}
	capacity := r.p.GPUBlocks() * r.p.BlockSize
	if req.PromptTokens+1 > capacity {
		return fmt.Errorf("%w: request %d has %d prompt tokens, the cache holds %d tokens",
			ErrPromptTooLong, req.ID, req.PromptTokens, capacity)
	}
	s := &seq{
		id:        req.ID,
		arrival:   max(req.Arrival, r.now),
		prompt:    req.PromptTokens,
		maxTokens: min(req.MaxTokens, capacity-req.PromptTokens),
	}
	r.byID[s.id] = s
	r.waiting.insert(s)
	return nil
}

// Abort removes an unfinished request, waiting or running, frees its KV cache and counts it with
// FinishAbort; a share of the iteration in flight it was part of is wasted, as in vLLM. It reports
// whether the request was there.
func (r *Replica) Abort(id uint64) bool {
	s, ok := r.byID[id]
	if !ok {
		return false
	}
	delete(r.byID, id)
	if !r.waiting.remove(s) {
		if i := slices.Index(r.running, s); i >= 0 {
			r.running = slices.Delete(r.running, i, i+1)
		}
	}
	r.freeBlocks += s.blocks
	s.blocks = 0
	r.m.RequestSuccessTotal[FinishAbort]++
	r.m.observePrompt(s.prompt)
	return true
}

// Advance runs the replica up to simulated time to and returns what happened, in time order: every
// iteration that ends at or before to completes, and each new one starts when the previous ends (or when
// a request arrives at an idle replica). An iteration that would start exactly at to is left for the
// next call, so that requests submitted at to still join it. Advancing backwards does nothing.
func (r *Replica) Advance(to time.Duration) []Event {
	var out []Event
	r.now = max(r.now, to)
	for {
		if !r.inflight {
			start, ok := r.nextStart()
			if !ok || start >= r.now {
				return out
			}
			r.startIteration(start)
		}
		if r.iterEnd > r.now {
			return out
		}
		out = r.finishIteration(out)
	}
}

// NextEventTime is the next time the replica needs advancing: when the iteration in flight ends, or when
// the next one can start if that is later than now (the replica is still starting up, or the request it
// waits for arrives later). It is false if the replica is idle with nothing queued. If an iteration can
// start now, NextEventTime starts it, fixing its batch: requests submitted after this call join the next
// one. A discrete-event simulator therefore submits every request arriving by now before calling it.
func (r *Replica) NextEventTime() (time.Duration, bool) {
	if !r.inflight {
		start, ok := r.nextStart()
		if !ok {
			return 0, false
		}
		if start > r.now {
			return start, true
		}
		r.startIteration(start)
	}
	return r.iterEnd, true
}

// Metrics returns the replica's gauges and counters now.
func (r *Replica) Metrics() Metrics {
	m := r.m
	m.Waiting = r.waiting.len()
	m.Running = len(r.running)
	total := r.p.GPUBlocks()
	m.KVCacheUsage = float64(total-r.freeBlocks) / float64(total)
	return m
}

// nextStart is when the next iteration can start, if there is anything to run.
func (r *Replica) nextStart() (time.Duration, bool) {
	if len(r.running) > 0 {
		return max(r.lastEnd, r.readyAt), true
	}
	if r.waiting.len() == 0 {
		return 0, false
	}
	return max(r.lastEnd, r.readyAt, r.waiting.front().arrival), true
}
