// Package install installs llm-d the way a user does (sandbox.Install: KEDA from its own manifests, llm-d with
// `helm install`, the manifests verbatim) on a local cluster whose one real node runs every component as a
// pod, and drives the whole scaling path through Services, cluster DNS, the HPA and real probes; then it
// upgrades and uninstalls the release.
package install

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/loadgen"
	"github.com/llm-d/llm-d/localcluster"
	"github.com/llm-d/llm-d/sandbox"
	"github.com/llm-d/llm-d/scaler/vllmmetrics"
	"github.com/llm-d/llm-d/test/testenv"
)

const (
	ns = "inference"
	// window replaces the samples' 300 s scale-down window once the manifests are applied, so that the
	// quiet after the burst takes seconds (patched as an operator would: the manifests stay verbatim).
	window = 20 * time.Second
)

// TestHelmInstall is the install path a user follows, and the scaling path it sets up, as real pods.
func TestHelmInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local cluster with a real node, KEDA and llm-d as pods; not in -short")
	}
	testenv.SkipUnless(t, localcluster.RealNodeSupported())
	ctx := context.Background()
	in, err := sandbox.Install(ctx, sandbox.InstallOptions{GPUs: 8, Volumes: 3, HPASyncPeriod: 2 * time.Second,
		// Packages test in parallel; localcluster's own test may hold the machine's real node for minutes.
		WaitForMachine: 20 * time.Minute,
		KeepDir:        os.Getenv("LLMD_KEEP_CLUSTER") != "", Logf: t.Logf})
	testenv.Must(t, err)
	c := in.Cluster
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of every program in %s (LLMD_KEEP_CLUSTER=1 keeps them)", c.LogDir)
		}
		if err := in.Stop(); err != nil {
			t.Error(err)
		}
	})
	k := c.Client
	testenv.Must(t, k.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	testenv.Must(t, k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hf-token-secret"},
		StringData: map[string]string{"HF_TOKEN": "hf_e2e"}}))
	for _, f := range []string{"llama-3-8b-autoscaling.yaml", "phi-3-mini.yaml", "production-pool.yaml"} {
		testenv.Must(t, in.ApplySample(ctx, f))
	}
	llama := types.NamespacedName{Namespace: ns, Name: "llama-3-8b"}
	testenv.Must(t, k.Patch(ctx, &v1alpha1.LLMInferenceService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: llama.Name}},
		client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"spec":{"autoscaling":{"scaleDownStabilizationSeconds":%d}}}`, int(window/time.Second)))))

	t.Run("the operator runs the services as pods with real probes", func(t *testing.T) {
		for _, name := range []string{"llama-3-8b", "phi-3-mini"} {
			testenv.Eventually(t, 4*time.Minute, name+" Ready", func() error { return serviceReady(ctx, c, name) })
		}
	})

	t.Run("KEDA reaches the scaler through cluster DNS and a Service", func(t *testing.T) {
		testenv.Eventually(t, 3*time.Minute, "the HPA reading the scaler's metric", func() error { return hpaActive(ctx, c, llama.Name) })
		so := &kedav1alpha1.ScaledObject{}
		testenv.Must(t, k.Get(ctx, llama, so))
		if got := so.Spec.Triggers[0].Metadata["scalerAddress"]; got != "llm-d-scaler.llm-d-system.svc:9090" {
			t.Errorf("trigger scalerAddress %q, want the scaler Service's name", got)
		}
	})

	url, err := in.ServiceURL(ctx, ns, llama.Name)
	testenv.Must(t, err)
	model := "meta-llama/Meta-Llama-3.1-8B-Instruct"
	rec := testenv.WatchReplicas(t, c.Client, llama)

	t.Run("a burst to the Service scales out through the HPA; new pods become ready", func(t *testing.T) {
		g, err := loadgen.New(loadgen.Config{URL: url, Model: model, RPS: 12, Duration: 3 * time.Minute, PromptTokens: 2000,
			MaxTokens: 400, Concurrency: 4000, Seed: 1})
		testenv.Must(t, err)
		loadCtx, stop := context.WithCancel(ctx)
		defer stop()
		done := make(chan struct{})
		go func() { defer close(done); g.Run(loadCtx) }()
		testenv.Eventually(t, 3*time.Minute, "two or more ready replicas", func() error {
			d := &appsv1.Deployment{}
			if err := k.Get(ctx, llama, d); err != nil {
				return err
			}
			if d.Status.ReadyReplicas < 2 {
				return fmt.Errorf("%d ready of %d wanted; replicas %s", d.Status.ReadyReplicas, *d.Spec.Replicas, rec.History())
			}
			return nil
		})
		// The burst ends here: requests still streaming are cut by the client, on purpose.
		stop()
		<-done
		served, errs := 0, map[loadgen.ErrorKind]int{}
		for _, r := range g.Results() {
			if r.TTFT > 0 {
				served++
			}
			if r.Err != "" && r.Err != loadgen.ErrCanceled {
				errs[r.Err]++
			}
		}
		sum := g.Summary()
		if served == 0 || len(errs) > 0 {
			t.Fatalf("burst through the Service: %d of %d requests got tokens, failures %v (%v)", served, sum.Requests, errs, sum.FirstErrors)
		}
		t.Logf("burst: %d requests, %d streaming when it stopped or done; replicas %s", sum.Requests, served, rec.History())
	})

	t.Run("the quiet scales back after the window; scale-down drains in-flight streams", func(t *testing.T) {
		// Long streams keep arriving through the scale-down, in waves of 10 s whose streams all run to their
		// end: too little decode per pod to hold the size, long enough that pods are deleted while serving.
		drained := watchTerminatingPods(t, c, llama.Name)
		quiet := time.Now()
		tr := &trickle{url: url, model: model}
		tr.wave()
		stopWaves := testenv.Every(10*time.Second, func() {
			if d := rec.FirstDecreaseAfter(quiet); d.IsZero() || time.Since(d) < 20*time.Second {
				tr.wave()
			}
		})
		testenv.Eventually(t, window+3*time.Minute, "replicas back to minReplicas", func() error {
			if n := rec.Last(); n != 1 {
				return fmt.Errorf("%d replicas; %s", n, rec.History())
			}
			return nil
		})
		if d := rec.FirstDecreaseAfter(quiet); d.Sub(quiet) < window-2*time.Second {
			t.Errorf("scaled down %s into the quiet, before the %s window", d.Sub(quiet).Round(time.Millisecond), window)
		}
		testenv.Eventually(t, 4*time.Minute, "the removed pods gone", func() error { return podsGone(ctx, c, llama.Name, 1) })
		stopWaves()
		sum := tr.wait()
		t.Logf("streams through the scale-down: %d, %d complete, errors %v; most in flight on each terminating pod: %v",
			sum.Requests, sum.Successes, sum.Errors, drained.seen())
		if sum.Successes != sum.Requests {
			t.Errorf("%d of %d streams did not complete during the scale-down: %v", sum.Requests-sum.Successes, sum.Requests, sum.FirstErrors)
		}
		if drained.max() == 0 {
			t.Errorf("no deleted pod was serving a stream when it terminated: the drain was not exercised")
		}
	})

	t.Run("helm upgrade with a changed value rolls the scaler; nothing is left of the old one", func(t *testing.T) {
		testenv.Must(t, in.Helm(ctx, "upgrade", sandbox.Release, sandbox.ChartDir(), "-n", sandbox.ReleaseNamespace, "--reuse-values", "--set", "scaler.scrapeInterval=2s", "--wait", "--timeout", "3m"))
		testenv.Eventually(t, 2*time.Minute, "one scaler pod, with the new flag", func() error {
			pods := &corev1.PodList{}
			if err := k.List(ctx, pods, client.InNamespace(sandbox.ReleaseNamespace), client.MatchingLabels{"app.kubernetes.io/component": "scaler"}); err != nil {
				return err
			}
			if len(pods.Items) != 1 {
				return fmt.Errorf("%d scaler pods", len(pods.Items))
			}
			for _, a := range pods.Items[0].Spec.Containers[0].Args {
				if a == "--scrape-interval=2s" {
					return nil
				}
			}
			return fmt.Errorf("scaler pod args %v", pods.Items[0].Spec.Containers[0].Args)
		})
		testenv.Eventually(t, 2*time.Minute, "the HPA reading the new scaler", func() error { return hpaActive(ctx, c, llama.Name) })
	})

	t.Run("helm uninstall leaves nothing of the release", func(t *testing.T) {
		testenv.Must(t, in.Helm(ctx, "uninstall", sandbox.Release, "-n", sandbox.ReleaseNamespace, "--wait", "--timeout", "3m"))
		testenv.Eventually(t, 2*time.Minute, "no object of the release", func() error { return releaseObjects(ctx, c) })
	})
}

// serviceReady is nil once the service's Ready condition is True.
func serviceReady(ctx context.Context, c *localcluster.Cluster, name string) error {
	s := &v1alpha1.LLMInferenceService{}
	if err := c.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		return err
	}
	if cond := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady); cond == nil || cond.Status != metav1.ConditionTrue {
		return fmt.Errorf("Ready: %+v", cond)
	}
	return nil
}

// hpaActive is nil once KEDA's HPA for the service reads its metric.
func hpaActive(ctx context.Context, c *localcluster.Cluster, name string) error {
	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	if err := c.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "keda-hpa-" + name}, hpa); err != nil {
		return err
	}
	for _, cond := range hpa.Status.Conditions {
		if cond.Type == autoscalingv2.ScalingActive && cond.Status == corev1.ConditionTrue && len(hpa.Status.CurrentMetrics) > 0 {
			return nil
		}
	}
	return fmt.Errorf("HPA conditions %+v", hpa.Status.Conditions)
}

// trickle sends waves of long streams, each wave 10 s of arrivals whose streams all run to their end.
type trickle struct {
	url, model string
	wg         sync.WaitGroup
	mu         sync.Mutex
	results    []loadgen.Result
}

func (tr *trickle) wave() {
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		// A connection per stream: kube-proxy places each one, and none is an idle keep-alive connection to a
		// pod that a scale-down has removed from the Service.
		hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		g, err := loadgen.New(loadgen.Config{URL: tr.url, Model: tr.model, RPS: 0.2, Duration: 10 * time.Second,
			PromptTokens: 100, MaxTokens: 1500, Arrivals: loadgen.Uniform, Client: hc})
		if err != nil {
			panic(err) // the configuration is the test's own
		}
		g.Run(context.Background())
		tr.mu.Lock()
		tr.results = append(tr.results, g.Results()...)
		tr.mu.Unlock()
	}()
}

// wait waits for every wave's streams to end and sums them up.
func (tr *trickle) wait() loadgen.Summary {
	tr.wg.Wait()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return loadgen.Summarize(tr.results)
}

// podsGone is nil once the service has exactly n pods, none terminating.
func podsGone(ctx context.Context, c *localcluster.Cluster, name string, n int) error {
	pods := &corev1.PodList{}
	if err := c.Client.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/instance": name}); err != nil {
		return err
	}
	if len(pods.Items) != n {
		return fmt.Errorf("%d pods, want %d", len(pods.Items), n)
	}
	return nil
}

// terminating records, for each pod of a service that is being deleted, the most requests it was seen
// running (its own vllm:num_requests_running, scraped from the pod's IP).
type terminating struct {
	mu      sync.Mutex
	running map[string]float64
}

func watchTerminatingPods(t *testing.T, c *localcluster.Cluster, name string) *terminating {
	w := &terminating{running: map[string]float64{}}
	hc := &http.Client{Timeout: 2 * time.Second}
	t.Cleanup(testenv.Every(500*time.Millisecond, func() {
		pods := &corev1.PodList{}
		if err := c.Client.List(context.Background(), pods, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/instance": name}); err != nil {
			return
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil || p.Status.PodIP == "" {
				continue
			}
			resp, err := hc.Get("http://" + p.Status.PodIP + ":8000/metrics")
			if err != nil {
				continue
			}
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			snap, err := vllmmetrics.Parse(b.Bytes())
			if err != nil {
				continue
			}
			w.mu.Lock()
			w.running[p.Name] = max(w.running[p.Name], snap.Running)
			w.mu.Unlock()
		}
	}))
	return w
}

func (w *terminating) max() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := 0.0
	for _, v := range w.running {
		m = max(m, v)
	}
	return m
}

func (w *terminating) seen() map[string]float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]float64{}
	for k, v := range w.running {
		out[k] = v
	}
	return out
}
