// Package server serves one simulated vLLM replica over vLLM's HTTP API: the OpenAI-compatible
// completions endpoints (streaming and not), /v1/models, /health and /metrics with vLLM's metric names.
// A single goroutine (Run) owns the vllmsim.Replica and advances it to the wall clock; handlers reach it
// through a channel.
package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llm-d/llm-d/vllmsim"
)

// Config is what a simulated server serves and how.
type Config struct {
	// Model is the served model name: the only entry of /v1/models, the model_name label, and the name
	// requests must use (or leave empty).
	Model string
	// Params is the replica; its StartupDelay is how long /health answers 503.
	Params vllmsim.Params
	// Speed is how many simulated seconds pass per wall-clock second: 1 is real time, 10 runs the model
	// (iterations, startup delay) ten times faster. Latencies in /metrics are simulated time, what the
	// modelled GPU would show.
	Speed float64
	// LegacyMetrics exports vLLM's pre-0.12 names vllm:gpu_cache_usage_perc and
	// vllm:time_per_output_token_seconds instead of vllm:kv_cache_usage_perc and
	// vllm:inter_token_latency_seconds.
	LegacyMetrics bool
	// DefaultMaxTokens is the output length of a request that sets neither max_tokens nor
	// max_completion_tokens.
	DefaultMaxTokens int
	// MaxTokensLimit caps max_tokens, so that one request cannot hold a simulated GPU for hours.
	MaxTokensLimit int
	// PromptTokens, if positive, is every request's prompt length; otherwise it is estimated from the
	// request text (see estimateTokens).
	PromptTokens int
}

// DefaultConfig serves Llama-3.1-8B-Instruct on a simulated A10G in real time.
func DefaultConfig() Config {
	return Config{
		Model:            "meta-llama/Meta-Llama-3.1-8B-Instruct",
		Params:           vllmsim.A10GLlama8B(),
		Speed:            1,
		DefaultMaxTokens: 128,
		MaxTokensLimit:   4096,
	}
}

// Validate reports what makes c unusable.
func (c Config) Validate() error {
	var errs []error
	if c.Model == "" {
		errs = append(errs, errors.New("the model name is empty"))
	}
	if !(c.Speed > 0) || math.IsInf(c.Speed, 0) {
		errs = append(errs, fmt.Errorf("speed must be a positive number, got %v", c.Speed))
	}
	if c.DefaultMaxTokens < 1 || c.MaxTokensLimit < 1 {
		errs = append(errs, fmt.Errorf("default max tokens (%d) and the max tokens limit (%d) must be at least 1",
			c.DefaultMaxTokens, c.MaxTokensLimit))
	}
	if c.PromptTokens < 0 {
		errs = append(errs, fmt.Errorf("prompt tokens must not be negative, got %d", c.PromptTokens))
	}
	return errors.Join(append(errs, c.Params.Validate())...)
}

// Server is one simulated vLLM server. Its handlers only make progress while Run runs.
type Server struct {
	cfg     Config
	start   time.Time     // simulated time 0
	readyAt time.Duration // simulated
	metrics *metrics

	cmds    chan func()
	done    chan struct{} // closed when Run returns
	running atomic.Bool
	ids     atomic.Uint64

	// Owned by Run's goroutine.
	replica *vllmsim.Replica
	streams map[uint64]*stream
	simNow  time.Duration
}

// New returns a server whose replica starts now: it is ready after cfg.Params.StartupDelay/cfg.Speed.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := newMetrics(cfg.Model, cfg.LegacyMetrics, cfg.Params)
	r, err := vllmsim.NewReplica(cfg.Params, vllmsim.WithTokenEvents(), vllmsim.WithObserver(m))
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		start:   time.Now(),
		readyAt: r.ReadyAt(),
		metrics: m,
		cmds:    make(chan func()),
		done:    make(chan struct{}),
		replica: r,
		streams: make(map[uint64]*stream),
	}
	m.update(r.Metrics())
	return s, nil
}

// Handler serves the HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.chatCompletions)
	mux.HandleFunc("POST /v1/completions", s.completions)
	mux.HandleFunc("GET /v1/models", s.models)
	mux.HandleFunc("GET /health", s.health)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	return mux
}

// Run advances the replica in step with the wall clock and serves the handlers' requests to it until ctx
// is done. Requests still in flight then get no more tokens: stop accepting and drain them first (see
// http.Server.Shutdown). It can run once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("server: Run called twice")
	}
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.advance()
		if next, ok := s.replica.NextEventTime(); ok {
			timer.Reset(s.wallUntil(next))
		} else {
			timer.Stop()
		}
		// After NextEventTime, which admits waiting requests into the iteration it starts.
		s.metrics.update(s.replica.Metrics())
		select {
		case <-ctx.Done():
			return nil
		case f := <-s.cmds:
			s.advance()
			f()
		case <-timer.C:
		}
	}
}

// sim is the simulated time at wall-clock time t.
func (s *Server) sim(t time.Time) time.Duration {
	return time.Duration(float64(t.Sub(s.start)) * s.cfg.Speed)
}

// wallUntil is how long from now until simulated time at, rounded up so that the timer never fires
// before the replica has something to do.
func (s *Server) wallUntil(at time.Duration) time.Duration {
	return s.start.Add(time.Duration(math.Ceil(float64(at) / s.cfg.Speed))).Sub(time.Now())
}

// advance brings the replica to now and hands its events to the streams.
func (s *Server) advance() {
	s.simNow = max(s.simNow, s.sim(time.Now()))
	events := s.replica.Advance(s.simNow)
	// Before the streams learn of the events: a client that got its last token and then scrapes must
	// see its request finished.
	s.metrics.update(s.replica.Metrics())
	for _, e := range events {
		st, ok := s.streams[e.ID]
		if !ok {
			continue
		}
		st.update(e.Tokens, e.Kind == vllmsim.Finished)
		if e.Kind == vllmsim.Finished {
			delete(s.streams, e.ID)
		}
	}
}

// do runs f on Run's goroutine; false if ctx ended or Run stopped first.
func (s *Server) do(ctx context.Context, f func()) bool {
	select {
	case s.cmds <- f:
		return true
	case <-ctx.Done():
	case <-s.done:
	}
	return false
}

// errStopped: Run is not running, so nothing would ever answer.
var errStopped = errors.New("the engine is not running")

// submit queues req (its Arrival is now) and registers st for its tokens.
func (s *Server) submit(ctx context.Context, req vllmsim.Request, st *stream) error {
	errc := make(chan error, 1)
	ok := s.do(ctx, func() {
		req.Arrival = s.simNow
		err := s.replica.Submit(req)
		if err == nil {
			s.streams[req.ID] = st
		}
		errc <- err
	})
	if !ok {
		return errStopped
	}
	return <-errc
}

// abort drops request id, whose client went away.
func (s *Server) abort(id uint64) {
	s.do(context.Background(), func() {
		s.replica.Abort(id)
		delete(s.streams, id)
	})
}

// ready reports whether the replica has finished starting up.
func (s *Server) ready() bool { return s.sim(time.Now()) >= s.readyAt }
