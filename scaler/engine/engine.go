// Package engine keeps the scaler's in-memory state fresh: one background loop per autoscaled service
// scrapes its ready pods (through a worker pool shared by all services), updates each pod's signals, and runs
// the decision package. KEDA's calls are answered from that state and never wait for a scrape.
package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/discovery"
	"github.com/llm-d/llm-d/scaler/scrape"
	"github.com/llm-d/llm-d/scaler/signals"
	"github.com/llm-d/llm-d/scaler/vllmmetrics"
)

// maxKeptBuffer bounds the read buffers kept in the pool (a vLLM payload is ~50 KB).
const maxKeptBuffer = 1 << 20

// Parser turns one /metrics payload into a sample.
type Parser func([]byte) (signals.Sample, error)

// ParseVLLM reads the signals the scaler needs from one vLLM /metrics payload.
func ParseVLLM(b []byte) (signals.Sample, error) {
	s, err := vllmmetrics.Parse(b)
	if err != nil {
		return signals.Sample{}, err
	}
	return signals.FromVLLM(s), nil
}

// Config tunes the loops.
type Config struct {
	// Interval between two scrape-and-decide rounds of a service.
	Interval time.Duration
	// MaxAge is how old a pod's latest sample may be and still count.
	MaxAge time.Duration
	// Workers bounds the scrapes in flight across all services.
	Workers int
	// Now is the clock; tests inject one.
	Now func() time.Time
	// ReadErrors, when set, are the cache's informer errors (discovery.CacheOptions): a read that fails says
	// what the informers met, such as a list the scaler is forbidden.
	ReadErrors *discovery.ReadErrors
}

// Result is a service's latest decision and what it was based on.
type Result struct {
	Target   discovery.Target
	Decision decision.Decision
	At       time.Time
	Missing  int
	// Demand is the service's own decision before its pool's allocation; Decision.Desired is after it.
	Demand int32
	// Own is the service's own decision, before its pool changed it.
	Own decision.Decision
	// Pool is the LLMInferencePool the service belongs to, "" if none.
	Pool string
	// Err, when set, says why the service's objects could not be read this round (wrapping ErrCannotRead).
	// Then Decision is the last one taken from data, or a hold at the current size, and nothing new is
	// decided: KEDA's calls get Err, which its fallback turns into a hold.
	Err error
}

// Observer is told every result, for status, events and anything else outside the engine.
type Observer func(ctx context.Context, r Result)

// Engine runs the loops.
type Engine struct {
	reader  client.Reader
	fetcher *scrape.Fetcher
	parse   Parser
	cfg     Config
	metrics *Metrics
	observe Observer
	log     logr.Logger
	sem     chan struct{}
	buffers sync.Pool

	mu       sync.Mutex
	services map[types.NamespacedName]*service
	// skipped holds, per service left out for an unusable policy, the reason last logged: the log says it
	// once per change of the reason and once when the service recovers, not every interval.
	skipped map[types.NamespacedName]string
}

type service struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	auto    *decision.Autoscaler
	pods    map[types.UID]*podState
	latest  *Result
	readErr string // the read error last logged: once per change, and once when reads work again
}

type podState struct {
	signals.Pod
	lastReason string // the last failure logged, so a failing pod is logged once per reason
}

// New returns an engine that reads services and pods through reader (an informer-backed cache).
func New(reader client.Reader, fetcher *scrape.Fetcher, parse Parser, cfg Config, m *Metrics, observe Observer, log logr.Logger) *Engine {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 3 * cfg.Interval
	}
	return &Engine{
		reader: reader, fetcher: fetcher, parse: parse, cfg: cfg, metrics: m, observe: observe, log: log,
		sem: make(chan struct{}, max(cfg.Workers, 1)), services: map[types.NamespacedName]*service{},
		skipped: map[types.NamespacedName]string{},
		buffers: sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }},
	}
}

// Start runs the supervisor until ctx ends: every interval it starts a loop for each newly autoscaled
// service and stops the loops of services that went away.
func (e *Engine) Start(ctx context.Context) error {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		e.sync(ctx)
		select {
		case <-ctx.Done():
			e.mu.Lock()
			all := e.services
			e.services = map[types.NamespacedName]*service{}
			e.mu.Unlock()
			for _, s := range all {
				s.cancel()
				<-s.done
			}
			return nil
		case <-t.C:
		}
	}
}

func (e *Engine) sync(ctx context.Context) {
	want, errs, err := discovery.Autoscaled(ctx, e.reader)
	if err != nil {
		e.log.Error(err, "listing LLMInferenceServices")
		return
	}
	// Loops are stopped outside the lock: a loop's round may be reading another service's result.
	var gone []*service
	e.mu.Lock()
	for key, err := range errs {
		if msg := err.Error(); e.skipped[key] != msg {
			e.skipped[key] = msg
			e.log.Info("service skipped: its autoscaling policy is unusable; KEDA's calls for it fail until it is fixed",
				"service", key, "error", msg)
		}
	}
	for key := range e.skipped {
		if _, still := errs[key]; still {
			continue
		}
		delete(e.skipped, key)
		if _, ok := want[key]; ok {
			e.log.Info("service no longer skipped: its autoscaling policy is usable again", "service", key)
		}
	}
	for key, s := range e.services {
		if _, ok := want[key]; !ok {
			gone = append(gone, s)
			delete(e.services, key)
			e.metrics.forget(key.Namespace, key.Name)
		}
	}
	for key, policy := range want {
		if _, ok := e.services[key]; !ok {
			e.services[key] = e.startLoop(ctx, key, policy)
		}
	}
	e.mu.Unlock()
	for _, s := range gone {
		s.cancel()
		<-s.done
	}
}

func (e *Engine) startLoop(parent context.Context, key types.NamespacedName, policy decision.Policy) *service {
	ctx, cancel := context.WithCancel(parent)
	s := &service{cancel: cancel, done: make(chan struct{}), auto: decision.New(policy), pods: map[types.UID]*podState{}}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(e.cfg.Interval)
		defer tick.Stop()
		for {
			e.round(ctx, key, s)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// ErrCannotRead says a service's objects could not be read from the scaler's cache.
var ErrCannotRead = errors.New("cannot read the service's Deployment and pods from the scaler's cache")

// read is discovery.Get bounded by timeout. The cache waits for an informer to sync, and one that cannot
// (its list forbidden, say) would hold a round, or KEDA's call, until it gave up; the error then says
// what the informers met.
func (e *Engine) read(ctx context.Context, key types.NamespacedName, timeout time.Duration) (discovery.Target, error) {
	readCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t, err := discovery.Get(readCtx, e.reader, key)
	if err == nil || errors.Is(err, discovery.ErrNotFound) || t.UID == "" {
		return t, err // t.UID "": the service itself was not read, or its policy is unusable
	}
	if e.cfg.ReadErrors != nil {
		if cause := e.cfg.ReadErrors.Since(time.Now().Add(-2 * time.Minute)); cause != nil {
			return t, fmt.Errorf("%w: %w; the scaler's informers report: %w", ErrCannotRead, err, cause)
		}
	}
	return t, fmt.Errorf("%w: %w", ErrCannotRead, err)
}

// round scrapes a service's ready pods, decides and publishes the result.
func (e *Engine) round(ctx context.Context, key types.NamespacedName, s *service) {
	t, err := e.read(ctx, key, readTimeout)
	switch {
	case ctx.Err() != nil, errors.Is(err, discovery.ErrNotFound):
		return
	case errors.Is(err, ErrCannotRead):
		e.fail(ctx, t, s, err)
		return
	case err != nil:
		e.log.Error(err, "reading service", "service", key)
		return
	}
	s.mu.Lock()
	if s.readErr != "" {
		s.readErr = ""
		e.log.Info("the service's objects can be read again", "service", key)
	}
	live := map[types.UID]bool{}
	for _, p := range t.Ready {
		live[p.UID] = true
		if s.pods[p.UID] == nil {
			s.pods[p.UID] = &podState{}
		}
	}
	for uid := range s.pods {
		if !live[uid] {
			delete(s.pods, uid) // gone or no longer ready: its samples must not outlive it
		}
	}
	s.mu.Unlock()

	e.scrapeAll(ctx, key, s, t.Ready)
	if ctx.Err() != nil {
		return
	}

	now := e.cfg.Now()
	s.mu.Lock()
	s.auto.SetPolicy(t.Policy)
	snap := decision.Snapshot{Now: now, Current: t.Current, Ready: len(t.Ready), Starting: t.Starting, StartupDelay: t.StartupDelay}
	for _, p := range t.Ready {
		sig, err := s.pods[p.UID].Signals(now, e.cfg.MaxAge)
		if err != nil {
			snap.Missing++
			continue
		}
		snap.Pods = append(snap.Pods, sig)
	}
	d := s.auto.Decide(snap)
	s.mu.Unlock()
	r := &Result{Target: t, Decision: d, Own: d, At: now, Missing: snap.Missing, Demand: d.Desired}
	pool, err := e.applyPool(ctx, t, &r.Decision)
	if err != nil {
		e.log.Error(err, "reading pools; deciding without the pool's budget", "service", key)
	}
	r.Pool = pool
	s.mu.Lock()
	s.latest = r
	s.mu.Unlock()

	e.record(r)
	if e.observe != nil {
		e.observe(ctx, *r)
	}
}

// fail publishes that the service's objects could not be read: KEDA's calls get the error and the observer
// (status.autoscaler) shows it. The last decision stands; none is made without the pods.
func (e *Engine) fail(ctx context.Context, t discovery.Target, s *service, err error) {
	r := &Result{Target: t, At: e.cfg.Now(), Err: err}
	s.mu.Lock()
	if prev := s.latest; prev != nil {
		r.Decision, r.Own, r.Demand, r.Pool = prev.Decision, prev.Own, prev.Demand, prev.Pool
	} else {
		hold := max(t.Current, t.Policy.MinReplicas)
		r.Decision = decision.Decision{Desired: hold, Recommendation: hold}
		r.Own, r.Demand = r.Decision, hold
	}
	r.Decision.Rule = decision.RuleMissingData
	r.Decision.Reason = fmt.Sprintf("%v: holding %d replicas (KEDA's calls fail, and its fallback keeps the current size)", err, r.Decision.Desired)
	s.latest = r
	logIt := s.readErr != err.Error()
	s.readErr = err.Error()
	s.mu.Unlock()
	if logIt {
		e.log.Error(err, "no decision for the service: KEDA's calls fail until its objects can be read", "service", t.Key())
	}
	if e.observe != nil {
		e.observe(ctx, *r)
	}
}

// scrapeAll scrapes pods concurrently, no more at once than the worker pool shared by all services allows.
func (e *Engine) scrapeAll(ctx context.Context, key types.NamespacedName, s *service, pods []discovery.PodTarget) {
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case e.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-e.sem }()
			e.scrapePod(ctx, key, s, p)
		}()
	}
	wg.Wait()
}

func (e *Engine) scrapePod(ctx context.Context, key types.NamespacedName, s *service, p discovery.PodTarget) {
	s.mu.Lock()
	st := s.pods[p.UID]
	s.mu.Unlock()

	// Buffers are pooled across pods: only the scrapes in flight (at most Workers) hold one, so the memory
	// held per pod between rounds is its signals, not a copy of its last payload.
	bp := e.buffers.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxKeptBuffer {
			e.buffers.Put(bp)
		}
	}()
	start := time.Now()
	payload, err := e.fetcher.Fetch(ctx, p.Addr, (*bp)[:0])
	if payload != nil {
		*bp = payload[:0]
	}
	var sample signals.Sample
	if err == nil {
		sample, err = e.parse(payload)
		if err != nil {
			err = &scrape.Error{Reason: scrape.ReasonBadPayload, Err: err}
		}
	}
	e.metrics.ScrapeDuration.Observe(time.Since(start).Seconds())
	if ctx.Err() != nil {
		return
	}
	at := e.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		reason := scrape.ReasonOf(err)
		e.metrics.Scrapes.WithLabelValues("error").Inc()
		e.metrics.ScrapeErrors.WithLabelValues(string(reason)).Inc()
		st.Fail(at, err)
		if st.lastReason != string(reason) {
			st.lastReason = string(reason)
			e.log.Info("pod metrics missing: no scale-down from this pod until a scrape succeeds",
				"service", key, "pod", p.Name, "addr", p.Addr, "reason", reason, "error", err.Error())
		}
		return
	}
	e.metrics.Scrapes.WithLabelValues("success").Inc()
	if st.lastReason != "" {
		e.log.Info("pod metrics recovered", "service", key, "pod", p.Name)
		st.lastReason = ""
	}
	st.Observe(at, sample)
}

func (e *Engine) record(r *Result) {
	ns, name := r.Target.Namespace, r.Target.Name
	d := r.Decision
	e.metrics.Desired.WithLabelValues(ns, name).Set(float64(d.Desired))
	e.metrics.Decisions.WithLabelValues(ns, name, string(d.Rule)).Inc()
	for sig, v := range map[string]float64{
		"waiting_per_pod": d.WaitingPerPod, "running_per_pod": d.RunningPerPod,
		"decode_tokens_per_second_per_pod": d.DecodeTPSPerPod, "kv_cache_usage": d.KVCacheUsage, "batch": d.Batch,
	} {
		e.metrics.Signals.WithLabelValues(ns, name, sig).Set(v)
	}
	e.metrics.Pods.WithLabelValues(ns, name, "ready").Set(float64(len(r.Target.Ready)))
	e.metrics.Pods.WithLabelValues(ns, name, "starting").Set(float64(r.Target.Starting))
	e.metrics.Pods.WithLabelValues(ns, name, "missing").Set(float64(r.Missing))
}

// readTimeout bounds a read from the cache. A synced cache answers in microseconds; a starting one lists
// first, which may take seconds on a large cluster; one that cannot sync never answers.
const readTimeout = 5 * time.Second

// ErrNoDecision says the service exists but no round has finished yet.
var ErrNoDecision = errors.New("no decision yet")

// Latest returns a service's latest result. For a service that exists but has no result yet (the scaler
// just started, or the service was just created) it returns a hold at the current size and ErrNoDecision;
// for an unknown service, an error wrapping discovery.ErrNotFound; for a service whose objects cannot be
// read, an error wrapping ErrCannotRead.
func (e *Engine) Latest(ctx context.Context, key types.NamespacedName) (Result, error) {
	e.mu.Lock()
	s := e.services[key]
	e.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		r := s.latest
		s.mu.Unlock()
		if r != nil {
			return *r, r.Err
		}
	}
	// Half of what the caller left: KEDA must get the reason before its own deadline ends the call with none.
	timeout := readTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d)/2)
	}
	t, err := e.read(ctx, key, timeout)
	if err != nil {
		return Result{}, err
	}
	hold := max(t.Current, t.Policy.MinReplicas)
	return Result{Target: t, At: e.cfg.Now(), Decision: decision.Decision{Desired: hold, Recommendation: hold, Rule: decision.RuleMissingData,
		Reason: fmt.Sprintf("no decision yet: holding %d replicas", hold)}}, ErrNoDecision
}
