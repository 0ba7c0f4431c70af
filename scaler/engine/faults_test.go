package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/engine"
	"github.com/llm-d/llm-d/scaler/scrape"
)

// The scraping and pod rows of docs/faults.md, end to end through the engine: real Deployments and pods
// from the operator and kube-controller-manager, pods marked Ready on loopback IPs (127.20.8.0/24 and up),
// and on those IPs fake vLLM endpoints whose behaviour each case sets. Each test runs its own engine (its
// own metrics registry and a captured log) restricted to its namespace.

// logLines captures an engine's log, one string per line.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
	}, funcr.Options{})
}

// count returns the lines that contain every one of subs.
func (l *logLines) count(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
next:
	for _, line := range l.lines {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		n++
	}
	return n
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// nsReader restricts an engine to one namespace, so that other tests' services and pods stay out of its
// metrics and log.
type nsReader struct {
	client.Reader
	ns string
}

func (r nsReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.Reader.List(ctx, list, append(opts, client.InNamespace(r.ns))...)
}

type testEngine struct {
	*engine.Engine
	metrics *engine.Metrics
	log     *logLines
}

func startEngine(t *testing.T, reader client.Reader, scrapeTimeout time.Duration) *testEngine {
	t.Helper()
	te := &testEngine{log: &logLines{}, metrics: engine.NewMetrics(prometheus.NewRegistry())}
	te.Engine = engine.New(reader, scrape.NewFetcher(scrapeTimeout, 1<<20), engine.ParseVLLM,
		engine.Config{Interval: 100 * time.Millisecond, Workers: 4}, te.metrics, nil, te.log.logger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = te.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("engine log:\n%s", te.log)
		}
	})
	return te
}

func counter(c prometheus.Counter) float64 {
	m := &dto.Metric{}
	_ = c.Write(m)
	return m.GetCounter().GetValue()
}

// fakePod is a /metrics endpoint on a pod IP whose answer the test sets.
type fakePod struct {
	hits   atomic.Int64
	handle atomic.Pointer[http.HandlerFunc]
	srv    *http.Server
}

func startFakePod(t *testing.T, ip string, h http.HandlerFunc) *fakePod {
	t.Helper()
	lis, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(contract.HTTPPort)))
	must(t, err)
	p := &fakePod{}
	p.set(h)
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		(*p.handle.Load())(w, r)
	})}
	go func() { _ = p.srv.Serve(lis) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

func (p *fakePod) set(h http.HandlerFunc) { p.handle.Store(&h) }

func vllmPayload(waiting, running, generated float64) string {
	return fmt.Sprintf(`# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} %g
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} %g
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="m"} %g
`, waiting, running, generated)
}

func text(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) }
}

// scaleDeployment sets the service's Deployment to n replicas, as the HPA would.
func scaleDeployment(t *testing.T, ns, name string, n int32) {
	t.Helper()
	eventually(t, "scale the Deployment", func() error {
		d := &appsv1.Deployment{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, d); err != nil {
			return err
		}
		d.Spec.Replicas = ptr.To(n)
		return k8s.Update(context.Background(), d)
	})
}

// Every scrape fault marks the pod's data missing: the service holds its size (never a scale-down), the
// error counter of the fault's reason rises, and the log names the pod and the reason once per episode,
// however many rounds the fault lasts; the recovery is logged once too.
func TestFaultScrapeFailuresHoldAndAreCountedAndLoggedOnce(t *testing.T) {
	const ns, ip = "faults-scrape", "127.20.8.2"
	service(t, ns)
	scaleDeployment(t, ns, "llama", 3) // two pods stay Pending (starting): the hold must be 3, not 1
	pod := readyPod(t, ns, ip)
	var generated atomic.Int64
	good := func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(vllmPayload(0, 1, float64(generated.Add(1)))))
	}
	fp := startFakePod(t, ip, good)
	// A deadline generous enough that a 2 MB answer on a loaded machine is cut by the cap, not the clock
	// (a fault that flips between two reasons is rightly logged at each flip).
	te := startEngine(t, nsReader{k8s, ns}, 3*time.Second)
	key := types.NamespacedName{Namespace: ns, Name: "llama"}

	healthy := func(what string) {
		t.Helper()
		eventually(t, what, func() error {
			r, err := te.Latest(context.Background(), key)
			if err != nil {
				return err
			}
			if r.Missing != 0 || r.Decision.Rule == decision.RuleMissingData || len(r.Target.Ready) != 1 {
				return fmt.Errorf("missing %d, ready %d, %s: %s", r.Missing, len(r.Target.Ready), r.Decision.Rule, r.Decision.Reason)
			}
			return nil
		})
	}
	healthy("a first decision from good data")

	many := func(name string, n int) string {
		var b strings.Builder
		b.WriteString(vllmPayload(0, 1, 1))
		for i := range n {
			fmt.Fprintf(&b, "%s{engine=\"%d\",model_name=\"m\"} 1\n", name, i+1)
		}
		return b.String()
	}
	cases := []struct {
		name   string
		h      http.HandlerFunc
		reason scrape.Reason
	}{
		{"HTTP 500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "engine dead", 500) }, scrape.ReasonHTTPStatus},
		{"Ready but no /metrics (404)", http.NotFound, scrape.ReasonHTTPStatus},
		{"200 with garbage", text("<html><body>hello</body></html>\n"), scrape.ReasonBadPayload},
		{"200 with JSON", text(`{"detail":"Not Found"}`), scrape.ReasonBadPayload},
		{"NaN", text(strings.Replace(vllmPayload(0, 1, 1), "} 0.25", "} NaN", 1)), scrape.ReasonBadPayload},
		{"negative gauge", text(vllmPayload(-3, 1, 1)), scrape.ReasonBadPayload},
		{"duplicate series", text(vllmPayload(0, 1, 1) + "vllm:num_requests_running{model_name=\"m\",engine=\"0\"} 7\n"), scrape.ReasonBadPayload},
		{"required series missing (not vLLM)", text("# TYPE up gauge\nup 1\n"), scrape.ReasonBadPayload},
		{"thousands of label sets", text(many("vllm:num_requests_waiting", 2000)), scrape.ReasonBadPayload},
		{"payload over the cap", text(strings.Repeat("# padding padding padding padding\n", 1<<16)), scrape.ReasonTooLarge}, // 2 MB, cap 1 MB
		{"no answer (deadline)", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, scrape.ReasonTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errsBefore := counter(te.metrics.ScrapeErrors.WithLabelValues(string(tc.reason)))
			logged := te.log.count("pod metrics missing", pod, string(tc.reason))
			fp.set(tc.h)
			eventually(t, "several failed scrapes, each a hold", func() error {
				r, err := te.Latest(context.Background(), key)
				if err != nil {
					return err
				}
				if r.Missing != 1 || r.Decision.Rule != decision.RuleMissingData {
					return fmt.Errorf("missing %d, %s: %s", r.Missing, r.Decision.Rule, r.Decision.Reason)
				}
				if r.Decision.Desired < r.Target.Current || r.Target.Current != 3 {
					t.Fatalf("a scale-down from missing data: desired %d of %d (%s)", r.Decision.Desired, r.Target.Current, r.Decision.Reason)
				}
				if n := counter(te.metrics.ScrapeErrors.WithLabelValues(string(tc.reason))) - errsBefore; n < 3 {
					return fmt.Errorf("%v scrape errors with reason %s so far", n, tc.reason)
				}
				return nil
			})
			if n := te.log.count("pod metrics missing", pod, string(tc.reason)) - logged; n != 1 {
				t.Fatalf("%d log lines for this fault with pod %s and reason %s, want 1", n, pod, tc.reason)
			}
			recovered := te.log.count("pod metrics recovered", pod)
			fp.set(good)
			healthy("recovery")
			if n := te.log.count("pod metrics recovered", pod) - recovered; n != 1 {
				t.Fatalf("%d recovery lines, want 1", n)
			}
		})
	}

	// A pod that is Ready but whose process is gone: connection refused, held, counted, logged once.
	t.Run("Ready but nothing listening", func(t *testing.T) {
		errsBefore := counter(te.metrics.ScrapeErrors.WithLabelValues(string(scrape.ReasonConnectionRefused)))
		_ = fp.srv.Close()
		eventually(t, "refused scrapes held", func() error {
			r, err := te.Latest(context.Background(), key)
			if err != nil {
				return err
			}
			if r.Missing != 1 || r.Decision.Rule != decision.RuleMissingData || r.Decision.Desired != 3 {
				return fmt.Errorf("missing %d, desired %d, %s: %s", r.Missing, r.Decision.Desired, r.Decision.Rule, r.Decision.Reason)
			}
			if n := counter(te.metrics.ScrapeErrors.WithLabelValues(string(scrape.ReasonConnectionRefused))) - errsBefore; n < 3 {
				return fmt.Errorf("%v refused scrapes so far", n)
			}
			return nil
		})
		if n := te.log.count("pod metrics missing", pod, string(scrape.ReasonConnectionRefused)); n != 1 {
			t.Fatalf("%d log lines for the refused pod, want 1", n)
		}
	})
}

// A restart inside the pod (the counter goes backwards) is not a scrape failure: nothing is counted or
// logged as one, and the round without a rate holds rather than reading a negative or zero throughput.
func TestFaultCounterResetIsNotAFailure(t *testing.T) {
	const ns, ip = "faults-reset", "127.20.9.2"
	service(t, ns)
	scaleDeployment(t, ns, "llama", 2)
	readyPod(t, ns, ip)
	var generated atomic.Int64
	generated.Store(1_000_000)
	fp := startFakePod(t, ip, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(vllmPayload(0, 1, float64(generated.Add(100)))))
	})
	// A generous timeout: the failure count below must count resets, not one slow scrape on a busy machine.
	te := startEngine(t, nsReader{k8s, ns}, 5*time.Second)
	key := types.NamespacedName{Namespace: ns, Name: "llama"}
	eventually(t, "a rate", func() error {
		r, err := te.Latest(context.Background(), key)
		if err != nil || r.Decision.Rule == decision.RuleMissingData {
			return fmt.Errorf("%v %s", err, r.Decision.Reason)
		}
		return nil
	})
	hits := fp.hits.Load()
	generated.Store(0) // vLLM restarted
	eventually(t, "scrapes after the reset", func() error {
		r, err := te.Latest(context.Background(), key)
		if err != nil {
			return err
		}
		if r.Decision.Desired < r.Target.Current {
			t.Fatalf("scaled down across the reset: %d of %d (%s)", r.Decision.Desired, r.Target.Current, r.Decision.Reason)
		}
		if fp.hits.Load() < hits+5 {
			return errors.New("fewer than 5 scrapes since the reset")
		}
		return nil
	})
	if n := counter(te.metrics.Scrapes.WithLabelValues("error")); n != 0 {
		t.Fatalf("%v failed scrapes counted", n)
	}
	if n := te.log.count("pod metrics missing"); n != 0 {
		t.Fatalf("a reset logged as a failure:\n%s", te.log)
	}
}

// Pods come and go during a window: a pod that left is never scraped again and its samples do not outlive
// it; its replacement is scraped from its first round; a pod of another Deployment with the same labels is
// never scraped; and KEDA's calls keep being answered throughout (the race detector watches the engine's
// state under concurrent calls).
func TestFaultPodChurnAndLookAlikes(t *testing.T) {
	const ns = "faults-churn"
	svc := service(t, ns)
	first := readyPod(t, ns, "127.20.10.2")
	fpA := startFakePod(t, "127.20.10.2", text(vllmPayload(1, 2, 5)))
	fpB := startFakePod(t, "127.20.10.3", text(vllmPayload(1, 2, 5)))

	// Another Deployment whose pods carry exactly the service's labels, Ready, with a deep queue.
	labels := controllers.Labels(svc, "vllm")
	other := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "look-alike", Labels: labels},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: contract.SelectorLabels(svc.Name)},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}}}}
	must(t, k8s.Create(context.Background(), other))
	fpOther := startFakePod(t, "127.20.10.9", text(vllmPayload(500, 2, 5)))
	eventually(t, "the look-alike's pod to mark ready", func() error {
		pods := &corev1.PodList{}
		if err := k8s.List(context.Background(), pods, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, p := range pods.Items {
			if ref := metav1.GetControllerOf(&p); ref != nil && strings.HasPrefix(ref.Name, "look-alike-") {
				setReady(&p, "127.20.10.9")
				return k8s.Status().Update(context.Background(), &p)
			}
		}
		return errors.New("no look-alike pod yet")
	})

	te := startEngine(t, nsReader{k8s, ns}, time.Second)
	key := types.NamespacedName{Namespace: ns, Name: "llama"}

	// KEDA's calls, concurrently with everything below, through the shared engine and gRPC server.
	ctx, stopCalls := context.WithCancel(context.Background())
	var callers sync.WaitGroup
	for range 4 {
		callers.Go(func() {
			for ctx.Err() == nil {
				if n, err := desired(ns); err == nil && (n < 1 || n > 4) {
					t.Errorf("answer %d outside [1, 4]", n)
				}
				_, _ = te.Latest(ctx, key)
			}
		})
	}
	defer func() { stopCalls(); callers.Wait() }()

	readyOnly := func(want string) func() error {
		return func() error {
			r, err := te.Latest(context.Background(), key)
			if err != nil {
				return err
			}
			if len(r.Target.Ready) != 1 || r.Target.Ready[0].Name != want || r.Missing != 0 {
				return fmt.Errorf("ready %+v, missing %d", r.Target.Ready, r.Missing)
			}
			return nil
		}
	}
	eventually(t, "the first pod scraped", readyOnly(first))

	// The pod is deleted mid-window; the ReplicaSet replaces it, and the new pod becomes Ready elsewhere.
	must(t, k8s.Delete(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: first}}, client.GracePeriodSeconds(0)))
	var second string
	eventually(t, "the replacement to mark ready", func() error {
		pods := &corev1.PodList{}
		if err := k8s.List(context.Background(), pods, client.InNamespace(ns), client.MatchingLabels{contract.LabelInstance: "llama"}); err != nil {
			return err
		}
		for _, p := range pods.Items {
			if ref := metav1.GetControllerOf(&p); p.Name != first && ref != nil && !strings.HasPrefix(ref.Name, "look-alike-") {
				setReady(&p, "127.20.10.3")
				second = p.Name
				return k8s.Status().Update(context.Background(), &p)
			}
		}
		return errors.New("no replacement yet")
	})
	eventually(t, "only the replacement scraped", readyOnly(second))
	// The suite's own engine (behind the gRPC server) scrapes these pods too, through its informer cache.
	eventually(t, "the suite's engine moved on too", func() error {
		r, err := eng.Latest(context.Background(), key)
		if err != nil || len(r.Target.Ready) != 1 || r.Target.Ready[0].Name != second {
			return fmt.Errorf("%v: ready %+v", err, r.Target.Ready)
		}
		return nil
	})
	moreRounds := func(n int64) { t.Helper(); grows(t, "scrapes of the replacement", &fpB.hits, n) }
	moreRounds(6) // rounds that read the pod list before the deletion are over
	hitsA := fpA.hits.Load()
	moreRounds(10)
	if n := fpA.hits.Load() - hitsA; n != 0 {
		t.Fatalf("the deleted pod's address was scraped %d more times", n)
	}
	if n := fpOther.hits.Load(); n != 0 {
		t.Fatalf("the look-alike Deployment's pod was scraped %d times", n)
	}
}

// Two scaler replicas behind one Service: each scrapes the same pods and decides with the same code, so
// they reach the same answer; a replica that (re)starts later never answers below the current size before
// it has seen one full window, even when the other replica already scales down.
func TestFaultReplicasAgreeAndARestartedOneWarmsUp(t *testing.T) {
	const ns, ip = "faults-replicas", "127.20.11.2"
	service(t, ns) // window 2 s, 1..4 replicas, queue target 2
	scaleDeployment(t, ns, "llama", 3)
	readyPod(t, ns, ip)
	fp := startFakePod(t, ip, text(vllmPayload(30, 2, 5))) // ceil(32 / (2 + 2)) = 8 -> max 4
	key := types.NamespacedName{Namespace: ns, Name: "llama"}
	a := startEngine(t, nsReader{k8s, ns}, time.Second)
	b := startEngine(t, nsReader{k8s, ns}, time.Second)
	both := func(want int32) func() error {
		return func() error {
			ra, errA := a.Latest(context.Background(), key)
			rb, errB := b.Latest(context.Background(), key)
			if errA != nil || errB != nil {
				return fmt.Errorf("%v %v", errA, errB)
			}
			if ra.Decision.Desired != want || rb.Decision.Desired != want {
				return fmt.Errorf("replica A %d (%s), replica B %d (%s), want %d", ra.Decision.Desired, ra.Decision.Reason, rb.Decision.Desired, rb.Decision.Reason, want)
			}
			return nil
		}
	}
	eventually(t, "both replicas scale up alike", both(4))

	// The load goes; a third replica starts now: replica A scales down after its window while C, fresh,
	// holds the current size for its first window.
	var generated atomic.Int64
	fp.set(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(vllmPayload(0, 0, float64(generated.Load()))))
	})
	var mu sync.Mutex
	type seen struct {
		at      time.Time
		desired int32
		current int32
		rule    decision.Rule
	}
	var cResults []seen
	c := &testEngine{log: &logLines{}, metrics: engine.NewMetrics(prometheus.NewRegistry())}
	c.Engine = engine.New(nsReader{k8s, ns}, scrape.NewFetcher(time.Second, 1<<20), engine.ParseVLLM,
		engine.Config{Interval: 100 * time.Millisecond, Workers: 4}, c.metrics,
		func(_ context.Context, r engine.Result) {
			mu.Lock()
			defer mu.Unlock()
			cResults = append(cResults, seen{r.At, r.Decision.Desired, r.Target.Current, r.Decision.Rule})
		}, c.log.logger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Start(ctx) }()
	defer func() { cancel(); <-done }()

	eventually(t, "replica A scales down", func() error {
		r, err := a.Latest(context.Background(), key)
		if err != nil || r.Decision.Desired >= 3 {
			return fmt.Errorf("%v: %d (%s)", err, r.Decision.Desired, r.Decision.Reason)
		}
		return nil
	})
	eventually(t, "replica C past its first window", func() error {
		mu.Lock()
		defer mu.Unlock()
		var first time.Time
		for _, s := range cResults {
			if s.rule == decision.RuleMissingData || s.rule == decision.RuleNoReadyPod {
				continue
			}
			if first.IsZero() {
				first = s.at
			}
			if s.at.Sub(first) < 2*time.Second && s.desired < s.current {
				t.Fatalf("replica C scaled down to %d of %d %s after its first data (%s)", s.desired, s.current, s.at.Sub(first), s.rule)
			}
			if s.at.Sub(first) > 3*time.Second {
				return nil
			}
		}
		return fmt.Errorf("%d results so far", len(cResults))
	})
	eventually(t, "all three agree again", func() error {
		ra, _ := a.Latest(context.Background(), key)
		rb, _ := b.Latest(context.Background(), key)
		rc, _ := c.Latest(context.Background(), key)
		if ra.Decision.Desired != rb.Decision.Desired || rb.Decision.Desired != rc.Decision.Desired {
			return fmt.Errorf("A %d, B %d, C %d", ra.Decision.Desired, rb.Decision.Desired, rc.Decision.Desired)
		}
		return nil
	})
}

// A service whose policy is unusable (an invalid CR that slipped past validation, e.g. stored before a
// validation rule existed) is skipped and said so once per change of the reason, and once more when it is
// fixed, not every interval. A fake client stands in for the API server, which would refuse such objects.
func TestFaultServiceSkippedIsLoggedOncePerReason(t *testing.T) {
	svc := &v1alpha1.LLMInferenceService{ObjectMeta: metav1.ObjectMeta{Namespace: "faults-skip", Name: "bad"},
		Spec: v1alpha1.LLMInferenceServiceSpec{Model: v1alpha1.ModelSpec{ID: "m"},
			Autoscaling: &v1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: 3, MaxReplicas: 2,
				Metrics: []v1alpha1.AutoscalingMetric{{Type: v1alpha1.MetricRequestQueue, RequestQueue: &v1alpha1.RequestQueueTarget{TargetAverageQueueDepth: 2}}}}}}
	fc := fake.NewClientBuilder().WithScheme(env.Scheme).WithObjects(svc).Build()
	lists := &countingReader{Reader: fc}
	te := startEngine(t, lists, time.Second)
	rounds := func(n int64) { t.Helper(); grows(t, "engine rounds", &lists.n, n) }
	update := func(f func(a *v1alpha1.AutoscalingSpec)) {
		t.Helper()
		s := &v1alpha1.LLMInferenceService{}
		must(t, fc.Get(context.Background(), client.ObjectKeyFromObject(svc), s))
		f(s.Spec.Autoscaling)
		must(t, fc.Update(context.Background(), s))
	}
	rounds(10)
	if n := te.log.count("service skipped", "maxReplicas 2 is below minReplicas 3"); n != 1 {
		t.Fatalf("%d 'service skipped' lines over 10 rounds, want 1:\n%s", n, te.log)
	}
	update(func(a *v1alpha1.AutoscalingSpec) { a.MaxReplicas = 4; a.Metrics = nil }) // another reason
	rounds(10)
	if n := te.log.count("service skipped"); n != 2 {
		t.Fatalf("%d 'service skipped' lines after the reason changed, want 2:\n%s", n, te.log)
	}
	if n := te.log.count("service skipped", "targetAverageQueueDepth"); n != 1 {
		t.Fatalf("the new reason was logged %d times, want 1", n)
	}
	update(func(a *v1alpha1.AutoscalingSpec) {
		a.Metrics = []v1alpha1.AutoscalingMetric{{Type: v1alpha1.MetricRequestQueue, RequestQueue: &v1alpha1.RequestQueueTarget{TargetAverageQueueDepth: 2}}}
	})
	rounds(10)
	if n := te.log.count("no longer skipped"); n != 1 {
		t.Fatalf("%d recovery lines, want 1:\n%s", n, te.log)
	}
	if n := te.log.count("service skipped"); n != 2 {
		t.Fatalf("%d 'service skipped' lines after the fix, want still 2", n)
	}
	if _, err := te.Latest(context.Background(), client.ObjectKeyFromObject(svc)); err != nil && !errors.Is(err, engine.ErrNoDecision) {
		t.Fatalf("the fixed service is not served: %v", err)
	}
}

// countingReader counts the engine's lists of services: one per supervisor round.
type countingReader struct {
	client.Reader
	n atomic.Int64
}

func (r *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := list.(*v1alpha1.LLMInferenceServiceList); ok {
		r.n.Add(1)
	}
	return r.Reader.List(ctx, list, opts...)
}

// grows waits until counter has grown by at least n from its value now.
func grows(t *testing.T, what string, counter *atomic.Int64, n int64) {
	t.Helper()
	start := counter.Load()
	eventually(t, what, func() error {
		if got := counter.Load() - start; got < n {
			return fmt.Errorf("%d of %d so far", got, n)
		}
		return nil
	})
}
