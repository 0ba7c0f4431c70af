package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
	"github.com/llm-d/llm-d/loadgen"
	"github.com/llm-d/llm-d/localcluster"
	"github.com/llm-d/llm-d/localcluster/gateway"
	"github.com/llm-d/llm-d/test/testenv"
)

const routedNS = "routing"

// direct reaches the pods and the gateway on loopback, never through a proxy.
var direct = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}

// TestRoutingThroughTheOperatorsPicker runs the endpoint picker the operator writes for a service with
// spec.router: the Gateway API Inference Extension's cmd/epp, as the picker Deployment's pod would run it
// (its flags, its ConfigMap, its ServiceAccount's permissions and nothing more). The picker reads the
// operator's InferencePool, scrapes the simulated vLLM pods, and answers a gateway's ext_proc streams; a
// burst against one loaded pod goes to the two others.
func TestRoutingThroughTheOperatorsPicker(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	k := stack.Cluster.Client
	createNamespace(t, routedNS)
	svc := &v1alpha1.LLMInferenceService{}
	readSample(t, "llama-3-8b.yaml", svc)
	svc.Namespace, svc.Name = routedNS, "llama-routed"
	svc.Spec.Replicas = ptrInt32(3)
	svc.Spec.Router = &v1alpha1.RouterSpec{}
	testenv.Must(t, stack.ModelCacheVolume(ctx, routedNS, svc.Name))
	testenv.Must(t, k.Create(ctx, svc))

	testenv.Eventually(t, 3*time.Minute, "3 model servers serving and the picker's objects", func() error {
		pods := servedPods(t, svc.Name)
		if len(pods) != 3 {
			return fmt.Errorf("%d pods run", len(pods))
		}
		for _, p := range pods {
			if err := healthy(ctx, p); err != nil {
				return err
			}
		}
		s := &v1alpha1.LLMInferenceService{}
		if err := k.Get(ctx, client.ObjectKeyFromObject(svc), s); err != nil {
			return err
		}
		// kwok runs the picker's pod as Ready without a process: the condition then says no Gateway
		// routes to it.
		if c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionRouting); c == nil || c.Reason != controllers.ReasonNoGateway {
			return fmt.Errorf("Routing: %+v", c)
		}
		return nil
	})
	picker, gw, url := routeThroughPicker(ctx, t, svc.Name)
	pods := servedPods(t, svc.Name)
	// The picker lists the pool's pods as its ServiceAccount: it sees all three only if its Role lets it.
	testenv.Eventually(t, time.Minute, "the picker to see the 3 pods", func() error {
		q, err := picker.Queues()
		if err != nil {
			return err
		}
		for _, p := range pods {
			if _, ok := q[p.Name]; !ok {
				return fmt.Errorf("the picker knows %v, not %s", q, p.Name)
			}
		}
		return nil
	})

	loaded := pods[0]
	loadCtx, stopLoad := context.WithCancel(ctx)
	var load sync.WaitGroup
	t.Cleanup(func() { stopLoad(); load.Wait() })
	// Twelve requests of 4,000 prompt tokens and 2,000 output tokens fill the pod's 33,600-token KV cache
	// twice over: half of them wait.
	for i := range 12 {
		load.Go(func() {
			for loadCtx.Err() == nil {
				_ = complete(loadCtx, "http://"+podEndpoint(loaded), svc.Spec.Model.ID, fmt.Sprintf("long %d %s", i, strings.Repeat("x", 16000)), 2000)
			}
		})
	}
	testenv.Eventually(t, time.Minute, "the picker to see the loaded pod's queue", func() error {
		q, err := picker.Queues()
		if err != nil {
			return err
		}
		if q[loaded.Name] < 2 {
			return fmt.Errorf("the picker sees queues %v, want %s's at least 2", q, loaded.Name)
		}
		return nil
	})
	gw.ResetCounts()
	const n = 30
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if err := complete(ctx, url, svc.Spec.Model.ID, fmt.Sprintf("short %d", i), 8); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a request through the gateway: %v", err)
	}
	counts := gw.Counts()
	t.Logf("burst of %d with %s loaded: %v", n, loaded.Name, counts.Picked)
	if got := counts.Picked[podEndpoint(loaded)]; got > n/10 {
		t.Errorf("the loaded pod %s got %d of %d requests, want at most %d (random routing sends it a third)", loaded.Name, got, n, n/10)
	}
	if counts.FailedClosed+counts.Rejected+len(counts.FailedOpen) != 0 {
		t.Errorf("counts %+v, want every request routed by the picker", counts)
	}
	if os.Getenv("LLMD_ROUTING_BENCH") != "" {
		compareRoutings(ctx, t, svc, picker, url)
	}
}

// compareRoutings sends the same Poisson burst of long prompts through the Service's random routing
// (FrontDoor), through the picker, and through the picker with the weighted-random picker (spec.router's
// scoring.picker, which rolls the picker), one after the other while the loaded pod stays loaded, and logs
// the TTFT distributions: a benchmark (LLMD_ROUTING_BENCH=1), recorded in docs/benchmarks/routing.md, not a
// test.
func compareRoutings(ctx context.Context, t *testing.T, svc *v1alpha1.LLMInferenceService, picker *localcluster.EPP, routed string) {
	door, err := stack.FrontDoor(routedNS, svc.Name)
	testenv.Must(t, err)
	run := func(name, url string) {
		g, err := loadgen.New(loadgen.Config{URL: url, Model: svc.Spec.Model.ID, RPS: 10, Duration: 30 * time.Second,
			PromptTokens: 4000, MaxTokens: 300, Seed: 7})
		testenv.Must(t, err)
		s := g.Run(ctx)
		t.Logf("routing benchmark, %s: %d requests, %d ok, TTFT p50 %s p95 %s p99 %s", name, s.Requests, s.Successes,
			s.TTFT.P50, s.TTFT.P95, s.TTFT.P99)
	}
	run("service (random)", door)
	run("picker, max-score", routed)

	testenv.Must(t, picker.Kill())
	k := stack.Cluster.Client
	testenv.Eventually(t, time.Minute, "spec.router.scoring.picker", func() error {
		s := &v1alpha1.LLMInferenceService{}
		if err := k.Get(ctx, client.ObjectKeyFromObject(svc), s); err != nil {
			return err
		}
		s.Spec.Router.Scoring.Picker = v1alpha1.PickerWeightedRandom
		return k.Update(ctx, s)
	})
	testenv.Eventually(t, time.Minute, "the picker's new configuration", func() error {
		cm := &corev1.ConfigMap{}
		if err := k.Get(ctx, client.ObjectKey{Namespace: routedNS, Name: svc.Name + "-epp"}, cm); err != nil {
			return err
		}
		if !strings.Contains(cm.Data["config.yaml"], "weighted-random-picker") {
			return fmt.Errorf("config %s", cm.Data["config.yaml"])
		}
		return nil
	})
	_, _, url := routeThroughPicker(ctx, t, svc.Name)
	run("picker, weighted-random", url)
}

// routeThroughPicker runs the service's endpoint picker and a gateway in front of it, both stopped when the
// test ends, and returns them with the gateway's URL.
func routeThroughPicker(ctx context.Context, t *testing.T, name string) (*localcluster.EPP, *gateway.Gateway, string) {
	t.Helper()
	picker, err := stack.RunPicker(ctx, routedNS, name)
	testenv.Must(t, err)
	t.Cleanup(func() { _ = picker.Kill() })
	gw, url, err := stack.Gateway(ctx, routedNS, name, picker)
	testenv.Must(t, err)
	t.Cleanup(func() { _ = gw.Close() })
	return picker, gw, url
}

// servedPods are the service's model server pods that run with an IP, by name.
func servedPods(t *testing.T, name string) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	testenv.Must(t, stack.Cluster.Client.List(context.Background(), &list, client.InNamespace(routedNS), client.MatchingLabels(contract.SelectorLabels(name))))
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			out = append(out, p)
		}
	}
	return out
}

func podEndpoint(p corev1.Pod) string { return fmt.Sprintf("%s:%d", p.Status.PodIP, contract.HTTPPort) }

// healthy is nil once the pod's simulated vLLM has loaded its model: /health answers 200.
func healthy(ctx context.Context, p corev1.Pod) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+podEndpoint(p)+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := direct.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pod %s: /health %s", p.Name, resp.Status)
	}
	return nil
}

// complete sends one completion and returns an error unless it succeeds.
func complete(ctx context.Context, url, model, prompt string, maxTokens int) error {
	body, _ := json.Marshal(map[string]any{"model": model, "prompt": prompt, "max_tokens": maxTokens})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/completions", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := direct.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return err
}
