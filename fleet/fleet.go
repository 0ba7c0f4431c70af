// Package fleet gives fake pods real model servers: for every Running pod of the operator's that has an
// IP, it runs a simulated vLLM (vllmsim/server) bound to that IP, and stops it when the pod stops
// running, changes IP or goes away.
//
// It is the container runtime of the local cluster, where kwok fakes nodes and pods: kwok moves pods to
// Running and gives them addresses in 127.10.0.0/16, and the fleet makes those addresses answer as vLLM
// would, so that the scaler scrapes real /metrics and clients (llmd burst) get real streamed tokens.
// Handler is the other half of what Kubernetes would provide: a Service's load balancing over a
// service's ready pods.
//
// Only loopback pod IPs are served; a pod with any other address is ignored.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/scaler/vllmmetrics"
	"github.com/llm-d/llm-d/vllmsim/server"
)

// Config is what the fleet watches and what its servers simulate.
type Config struct {
	// Namespace limits the fleet to one namespace; empty means all.
	Namespace string
	// Selector is a label selector of the pods to serve; empty means DefaultSelector.
	Selector string
	// Server is every pod's server: Params (the GPU preset), Speed, token limits. Its Model serves pods
	// whose container names none with --served-model-name or --model.
	Server server.Config
	// ShutdownTimeout bounds how long a stopping server lets its requests finish before closing their
	// connections; 0 means 10s.
	ShutdownTimeout time.Duration
	// Log receives starts, stops and failures; the zero value discards them.
	Log logr.Logger
}

// DefaultConfig serves all the operator's pods in all namespaces with simulated A10Gs at 10 times real
// speed, so that a demo's replicas start in seconds.
func DefaultConfig() Config {
	s := server.DefaultConfig()
	s.Speed = 10
	s.LegacyMetrics = false
	return Config{Selector: DefaultSelector, Server: s, ShutdownTimeout: 10 * time.Second}
}

// Fleet runs one simulated server per serving pod. Its methods are safe for concurrent use.
type Fleet struct {
	cfg       Config
	transport *http.Transport // the front door's, to the pods

	mu   sync.Mutex
	pods map[string]*pod // by namespace/name; written only by the reconciling goroutine
	wg   sync.WaitGroup  // servers still stopping

	running sync.Once
}

// pod is one pod the fleet knows of: its server, or why it has none.
type pod struct {
	namespace, name string
	service         string // contract.LabelInstance
	ready           bool   // the pod's Ready condition
	reason          string // why there is no server, if srv is nil
	srv             *podServer
}

// New checks cfg and returns an idle fleet; Run starts it.
func New(cfg Config) (*Fleet, error) {
	if cfg.Selector == "" {
		cfg.Selector = DefaultSelector
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.Log.GetSink() == nil {
		cfg.Log = logr.Discard()
	}
	if _, err := labels.Parse(cfg.Selector); err != nil {
		return nil, fmt.Errorf("fleet: selector %q: %w", cfg.Selector, err)
	}
	if cfg.ShutdownTimeout < 0 {
		return nil, fmt.Errorf("fleet: the shutdown timeout must not be negative, got %v", cfg.ShutdownTimeout)
	}
	if err := cfg.Server.Validate(); err != nil {
		return nil, fmt.Errorf("fleet: server config: %w", err)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil // the pods are local; an HTTP_PROXY must not see their traffic
	t.MaxIdleConnsPerHost = 256
	return &Fleet{cfg: cfg, transport: t, pods: map[string]*pod{}}, nil
}

// Run watches the pods through kube and keeps their servers in step until ctx ends, then stops every
// server (each draining for at most Config.ShutdownTimeout) and returns. It can run once.
func (f *Fleet) Run(ctx context.Context, kube kubernetes.Interface) error {
	first := false
	f.running.Do(func() { first = true })
	if !first {
		return errors.New("fleet: Run called twice")
	}
	defer f.stopAll()

	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0,
		informers.WithNamespace(f.cfg.Namespace), // "" is all namespaces
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = f.cfg.Selector }))
	informer := factory.Core().V1().Pods().Informer()
	// A queue of pod keys: events for one pod collapse while it waits, and a failed start (the address
	// still held by something else) is retried with backoff.
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()

	worked := make(chan struct{})
	go func() {
		defer close(worked)
		for {
			key, quit := queue.Get()
			if quit {
				return
			}
			var p *corev1.Pod
			if obj, exists, err := informer.GetIndexer().GetByKey(key); err == nil && exists {
				p, _ = obj.(*corev1.Pod)
			}
			if err := f.sync(key, p); err != nil {
				f.cfg.Log.Error(err, "cannot start the pod's server; retrying", "pod", key)
				queue.AddRateLimited(key)
			} else {
				queue.Forget(key)
			}
			queue.Done(key)
		}
	}()
	defer func() { queue.ShutDown(); <-worked }()

	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return nil // ctx ended first
	}
	f.cfg.Log.Info("watching pods", "namespace", f.cfg.Namespace, "selector", f.cfg.Selector)
	<-ctx.Done()
	return nil
}

// sync brings the server of the pod stored under key in line with p (nil: the pod is gone). Only one
// goroutine calls it at a time.
func (f *Fleet) sync(key string, p *corev1.Pod) error {
	f.mu.Lock()
	cur := f.pods[key]
	f.mu.Unlock()

	want, reason := podTarget(p, f.cfg.Server.Model)
	if cur != nil && cur.srv != nil && (reason != "" || cur.srv.target != want) {
		why := reason
		if why == "" {
			why = "the pod changed IP, port, model or UID"
		}
		f.cfg.Log.Info("stopping the pod's server", "pod", key, "address", cur.srv.target.addr(), "reason", why)
		// Out of the front door's choice first, so that no new request is sent to a closing listener.
		f.mu.Lock()
		old := cur.srv
		cur.srv = nil
		f.mu.Unlock()
		f.stop(old)
	}
	if p == nil {
		f.mu.Lock()
		delete(f.pods, key)
		f.mu.Unlock()
		return nil
	}

	next := &pod{namespace: p.Namespace, name: p.Name, service: p.Labels[contract.LabelInstance], ready: podReady(p), reason: reason}
	if cur != nil {
		next.srv = cur.srv
	}
	var err error
	if reason == "" && next.srv == nil {
		if next.srv, err = f.start(want); err != nil {
			next.reason = err.Error()
		} else {
			f.cfg.Log.Info("started the pod's server", "pod", key, "address", want.addr(), "model", want.model)
		}
	}
	f.mu.Lock()
	f.pods[key] = next
	f.mu.Unlock()
	return err
}

// podServer is one running simulated vLLM.
type podServer struct {
	target  target
	readyAt time.Time // when the simulated startup is over and /health turns 200
	sim     *server.Server
	handler http.Handler // sim's, for reading /metrics without a connection
	http    *http.Server
	proxy   *httputil.ReverseProxy // the front door's route to it

	served     chan error // Serve's return
	stopEngine context.CancelFunc
	engineDone chan struct{}
}

// start binds t's address and serves a new simulated vLLM on it.
func (f *Fleet) start(t target) (*podServer, error) {
	cfg := f.cfg.Server
	cfg.Model = t.model
	sim, err := server.New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", t.addr())
	if err != nil {
		return nil, err
	}
	engineCtx, stopEngine := context.WithCancel(context.Background())
	s := &podServer{
		target:     t,
		readyAt:    time.Now().Add(time.Duration(float64(cfg.Params.StartupDelay) / cfg.Speed)),
		sim:        sim,
		handler:    sim.Handler(),
		served:     make(chan error, 1),
		stopEngine: stopEngine,
		engineDone: make(chan struct{}),
	}
	s.http = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	backend := &url.URL{Scheme: "http", Host: t.addr()}
	s.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(backend)
			r.SetXForwarded()
		},
		Transport:     f.transport,
		FlushInterval: -1, // every streamed token reaches the client as it is written
		ErrorHandler:  proxyError,
	}
	go func() {
		defer close(s.engineDone)
		_ = sim.Run(engineCtx)
	}()
	go func() { s.served <- s.http.Serve(ln) }()
	return s, nil
}

// stop closes s's listener before returning, so that its address is free for a successor, and lets the
// requests in flight finish in the background for at most Config.ShutdownTimeout.
func (f *Fleet) stop(s *podServer) {
	ctx, cancel := context.WithTimeout(context.Background(), f.cfg.ShutdownTimeout)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer cancel()
		if err := s.http.Shutdown(ctx); err != nil {
			_ = s.http.Close()
		}
		// The engine outlives the listener: draining requests still need their tokens.
		s.stopEngine()
		<-s.engineDone
	}()
	<-s.served // Serve returns once Shutdown has closed the listener
}

// stopAll stops every server and waits for them to drain.
func (f *Fleet) stopAll() {
	f.mu.Lock()
	var servers []*podServer
	for _, p := range f.pods {
		if p.srv != nil {
			servers = append(servers, p.srv)
			p.srv = nil
		}
	}
	f.pods = map[string]*pod{}
	f.mu.Unlock()
	for _, s := range servers {
		f.stop(s)
	}
	f.wg.Wait()
}

// PodStatus is one pod as the fleet sees it, for a live table.
type PodStatus struct {
	Namespace, Name string
	// Service is the pod's app.kubernetes.io/instance label: its LLMInferenceService.
	Service string
	// Address is the server's ip:port; empty if the pod has no server.
	Address string
	Model   string
	// Ready: the pod's Ready condition is true and the simulated startup is over, so that the front
	// door routes to it.
	Ready bool
	// Running and Waiting are the server's vllm:num_requests_running and vllm:num_requests_waiting;
	// KVCacheUsage its vllm:kv_cache_usage_perc.
	Running, Waiting, KVCacheUsage float64
	// Reason says why the pod has no server (not Running, no IP, the address could not be bound), or
	// why its metrics could not be read.
	Reason string
}

// Snapshot lists the pods the fleet knows of, sorted by namespace and name, with their servers' load.
func (f *Fleet) Snapshot() []PodStatus {
	type entry struct {
		st  PodStatus
		srv *podServer
	}
	now := time.Now()
	f.mu.Lock()
	entries := make([]entry, 0, len(f.pods))
	for _, p := range f.pods {
		e := entry{st: PodStatus{Namespace: p.namespace, Name: p.name, Service: p.service, Reason: p.reason}, srv: p.srv}
		if p.srv != nil {
			e.st.Address, e.st.Model = p.srv.target.addr(), p.srv.target.model
			e.st.Ready = p.ready && !now.Before(p.srv.readyAt)
		}
		entries = append(entries, e)
	}
	f.mu.Unlock()

	out := make([]PodStatus, len(entries))
	for i, e := range entries {
		if e.srv != nil {
			if m, err := e.srv.metrics(); err != nil {
				e.st.Reason = "reading /metrics: " + err.Error()
			} else {
				e.st.Running, e.st.Waiting, e.st.KVCacheUsage = m.Running, m.Waiting, m.KVCacheUsage
			}
		}
		out[i] = e.st
	}
	slices.SortFunc(out, func(a, b PodStatus) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out
}

// metrics reads the server's /metrics in-process: the server keeps its gauges only there, and a
// snapshot of many pods should not cost a connection each.
func (s *podServer) metrics() (vllmmetrics.Snapshot, error) {
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		return vllmmetrics.Snapshot{}, fmt.Errorf("status %d", rec.Code)
	}
	return vllmmetrics.Parse(rec.Body.Bytes())
}
