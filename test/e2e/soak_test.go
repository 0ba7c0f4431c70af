package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/loadgen"
	"github.com/llm-d/llm-d/test/testenv"
)

// Soak parameters. The stack's simulated GPUs run at 10x, so LLMD_SOAK=6m is an hour of the GPUs' time;
// the control loops are compressed too (window 20 s for 300 s, HPA sync 2 s for 15 s).
const (
	soakNamespace = "soak"
	soakRPS       = 6                // per service, steady: two to four pods each
	churnEvery    = 15 * time.Second // one pod deleted, as a node drain or an OOM kill would
	// quietSample covers Go's forced GC period (2 min), so that every process collects at least once and
	// the heap goal reflects what survives a collection, not what was allocated since the last one.
	quietSample = 2*time.Minute + 15*time.Second
)

// TestSoak runs two services through LLMD_SOAK of steady load with pod churn, then checks that the
// operator's and the scaler's goroutines and live heap come back to what they were before the load: the
// baseline is taken after a warm-up burst, so that everything started lazily (informers, connection pools,
// per-service state) is in it. Run it with `make soak`; the report goes to LLMD_SOAK_REPORT.
func TestSoak(t *testing.T) {
	spec := os.Getenv("LLMD_SOAK")
	if spec == "" {
		t.Skip("the soak runs with `make soak` (LLMD_SOAK=<duration of load and churn>)")
	}
	soakFor, err := time.ParseDuration(spec)
	if err != nil || soakFor <= 0 {
		t.Fatalf("LLMD_SOAK=%q: want a positive duration such as 6m", spec)
	}
	ctx := context.Background()
	createNamespace(t, soakNamespace)
	services := []*v1alpha1.LLMInferenceService{
		deploy(t, soakNamespace, "llama-3-8b-autoscaling.yaml"),
		deploy(t, soakNamespace, "phi-3-mini.yaml"),
	}
	doors := make([]string, len(services))
	recs := make([]*testenv.Replicas, len(services))
	for i, svc := range services {
		var err error
		doors[i], err = stack.FrontDoor(soakNamespace, svc.Name)
		testenv.Must(t, err)
		recs[i] = testenv.WatchReplicas(t, stack.Cluster.Client, client.ObjectKey{Namespace: soakNamespace, Name: svc.Name})
	}
	load := func(ctx context.Context, rps float64, d time.Duration) []loadgen.Summary {
		sums := make([]loadgen.Summary, len(services))
		var wg sync.WaitGroup
		for i, svc := range services {
			wg.Go(func() { sums[i] = burstCtx(ctx, doors[i], svc.Spec.Model.ID, rps, d) })
		}
		wg.Wait()
		return sums
	}
	atMin := func(what string) {
		t.Helper()
		testenv.Eventually(t, window+3*time.Minute, what, func() error {
			for i, svc := range services {
				if n := recs[i].Last(); n != svc.Spec.Autoscaling.MinReplicas {
					return fmt.Errorf("%s has %d replicas", svc.Name, n)
				}
			}
			return nil
		})
	}

	t.Log("warm-up: a burst on each service, then quiet")
	load(ctx, 12, 30*time.Second)
	atMin("both services back at minReplicas after the warm-up")
	base := measure(t, quietSample)

	t.Logf("soak: %s of %d req/s per service, a pod deleted every %s", soakFor, soakRPS, churnEvery)
	start := time.Now()
	var deleted atomic.Int64
	peak := newPeaks()
	stopChurn := testenv.Every(churnEvery, func() {
		if deletePod(ctx, services[rand.IntN(len(services))].Name) {
			deleted.Add(1)
		}
	})
	stopPeaks := testenv.Every(10*time.Second, func() { peak.add(scrapeProcesses()) })
	sums := load(ctx, soakRPS, soakFor)
	stopChurn()
	stopPeaks()
	loaded := time.Since(start)

	atMin("both services back at minReplicas after the soak")
	end := measure(t, quietSample)

	var b strings.Builder
	fmt.Fprintf(&b, "Soak of %s (%s of simulated GPU time at 10x), %s, Go %s.\n\n", loaded.Round(time.Second),
		(loaded * 10).Round(time.Minute), time.Now().UTC().Format("2006-01-02"), runtime.Version())
	fmt.Fprintf(&b, "Load: %d req/s per service (2,000 prompt tokens, 400 output tokens), %d pods deleted (one every %s).\n\n",
		soakRPS, deleted.Load(), churnEvery)
	fmt.Fprintln(&b, "| service | requests | succeeded | errors | TTFT p50 | TTFT p95 | replicas (min-max) | replica changes |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|")
	for i, s := range sums {
		fmt.Fprintf(&b, "| %s | %d | %d | %v | %s | %s | %d-%d | %d |\n", services[i].Name, s.Requests, s.Successes, s.Errors,
			s.TTFT.P50.Round(time.Millisecond), s.TTFT.P95.Round(time.Millisecond), recs[i].Min(), recs[i].Max(), recs[i].Changes())
	}
	fmt.Fprintf(&b, "\nEach process sampled every 2 s for %s of quiet before and after, at minReplicas; the minimum over the samples.\n\n", quietSample)
	fmt.Fprintln(&b, "| process | measure | before | peak during the soak | after | after - before |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|")
	var failures []string
	for _, p := range processNames {
		for _, m := range measures {
			before, after, top := base[p][m.name], end[p][m.name], peak.get(p, m.name)
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", p, m.name, m.format(before), m.format(top), m.format(after), m.format(after-before))
			if m.bound != nil && after > m.bound(before) {
				failures = append(failures, fmt.Sprintf("%s %s: %s before, %s after (bound %s)", p, m.name,
					m.format(before), m.format(after), m.format(m.bound(before))))
			}
		}
	}
	if len(failures) == 0 {
		fmt.Fprintln(&b, "\nVerdict: goroutines and live heap back to their baseline.")
	} else {
		fmt.Fprintf(&b, "\nVerdict: NOT back to baseline: %s\n", strings.Join(failures, "; "))
	}
	t.Log("\n" + b.String())
	if path := os.Getenv("LLMD_SOAK_REPORT"); path != "" {
		testenv.Must(t, os.WriteFile(path, []byte(soakReportHeader+b.String()), 0o644))
	}
	for _, f := range failures {
		t.Error(f)
	}
	for i, s := range sums {
		if s.Successes == 0 {
			t.Errorf("%s: no request succeeded during the soak: %v", services[i].Name, s.Errors)
		}
	}
}

const soakReportHeader = `# Soak results

Written by ` + "`make soak`" + ` (test/e2e: TestSoak) on the local cluster of ` + "`make demo`" + `: real etcd,
kube-apiserver, kube-controller-manager with the HPA, kube-scheduler, kwok, KEDA's operator and adapter (KEDA
calling the scaler over mutual TLS), llm-d's operator and scaler binaries, simulated vLLM pods. "goroutines" is
go_goroutines; "heap goal" is go_memstats_next_gc_bytes, set by each collection from the heap that survived
it, so it moves with what is retained, not with garbage; "heap in use" and "RSS" are reported, not bounded
(the runtime returns memory to the OS lazily). Bounds: goroutines at most 5 above the baseline, heap goal at
most 25% + 2 MiB above it.

`

// processNames are the binaries the soak measures.
var processNames = []string{"operator", "scaler"}

// measure samples the binaries every 2 s for d and keeps each measure's minimum: the floor a process
// returns to between bursts of work, which is what a leak raises.
func measure(t *testing.T, d time.Duration) map[string]map[string]float64 {
	t.Helper()
	lows := map[string]map[string]float64{}
	deadline := time.Now().Add(d)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		<-tick.C
		for p, ms := range scrapeProcesses() {
			if lows[p] == nil {
				lows[p] = map[string]float64{}
			}
			for m, v := range ms {
				if cur, ok := lows[p][m]; !ok || v < cur {
					lows[p][m] = v
				}
			}
		}
	}
	for _, p := range processNames {
		for _, m := range measures {
			if _, ok := lows[p][m.name]; !ok {
				t.Fatalf("%s: %s was never read from its /metrics", p, m.name)
			}
		}
	}
	return lows
}

// measureSpec is one number read from a binary's /metrics, and how far above its baseline it may end.
type measureSpec struct {
	name, metric string
	format       func(float64) string
	bound        func(before float64) float64 // nil: reported only
}

var (
	count    = func(v float64) string { return fmt.Sprintf("%.0f", v) }
	mib      = func(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }
	measures = []measureSpec{
		{"goroutines", "go_goroutines", count, func(b float64) float64 { return b + 5 }},
		{"heap goal", "go_memstats_next_gc_bytes", mib, func(b float64) float64 { return b*1.25 + 2<<20 }},
		{"heap in use", "go_memstats_heap_inuse_bytes", mib, nil},
		{"RSS", "process_resident_memory_bytes", mib, nil},
	}
)

// scrapeProcesses reads every measure of every binary that answers; a binary that does not is left out.
func scrapeProcesses() map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	for p, url := range map[string]string{"operator": stack.OperatorMetrics, "scaler": stack.ScalerMetrics} {
		families, err := scrapeURL(url)
		if err != nil {
			continue
		}
		out[p] = map[string]float64{}
		for _, m := range measures {
			if f, ok := families[m.metric]; ok && len(f.GetMetric()) == 1 {
				out[p][m.name] = gaugeValue(f.GetMetric()[0])
			}
		}
	}
	return out
}

// metricsClient opens a connection per scrape, so that the measuring leaves no idle connection (and its
// goroutines) in the process measured.
var metricsClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

func scrapeURL(url string) (map[string]*dto.MetricFamily, error) {
	resp, err := metricsClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

func gaugeValue(m *dto.Metric) float64 {
	if m.GetGauge() != nil {
		return m.GetGauge().GetValue()
	}
	return m.GetUntyped().GetValue()
}

// peaks keeps the largest value of every measure seen during the soak.
type peaks struct {
	mu sync.Mutex
	m  map[string]float64
}

func newPeaks() *peaks { return &peaks{m: map[string]float64{}} }

func (p *peaks) add(sample map[string]map[string]float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for proc, ms := range sample {
		for m, v := range ms {
			p.m[proc+"/"+m] = max(p.m[proc+"/"+m], v)
		}
	}
}

func (p *peaks) get(proc, m string) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[proc+"/"+m]
}

// deletePod deletes a random Running pod of service, as a node drain would; false if none was found.
func deletePod(ctx context.Context, service string) bool {
	pods := &corev1.PodList{}
	if err := stack.Cluster.Client.List(ctx, pods, client.InNamespace(soakNamespace),
		client.MatchingLabels{"app.kubernetes.io/instance": service}); err != nil {
		return false
	}
	var running []corev1.Pod
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			running = append(running, p)
		}
	}
	if len(running) == 0 {
		return false
	}
	return stack.Cluster.Client.Delete(ctx, &running[rand.IntN(len(running))]) == nil
}
