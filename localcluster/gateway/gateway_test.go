package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	inferencev1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/fleet"
	"github.com/llm-d/llm-d/internal/poll"
	"github.com/llm-d/llm-d/localcluster"
	"github.com/llm-d/llm-d/localcluster/gateway"
)

const (
	namespace   = "default"
	servedModel = "test-model"
	pickerSvc   = "routing-epp"
)

// routing is the test's cluster: three simulated vLLM pods behind an InferencePool, the real endpoint
// picker serving the pool, and the gateway in front.
type routing struct {
	c     *localcluster.Cluster
	epp   *localcluster.EPP
	gw    *gateway.Gateway
	url   string // the gateway's
	pool  types.NamespacedName
	sel   map[string]string
	hc    *http.Client
	picks map[string]string // pod IP -> pod name, as the picker's endpoints name them
}

// TestRoutingThroughTheEndpointPicker runs the Gateway API Inference Extension's picker (cmd/epp) against
// a local cluster: it watches an InferencePool, scrapes the simulated pods' vLLM metrics, and answers the
// gateway's ext_proc streams. The scenarios share one cluster and run in order.
func TestRoutingThroughTheEndpointPicker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local cluster and the endpoint picker (minutes on first build); not in -short")
	}
	r := startRouting(t)
	t.Run("burst goes to the less loaded pods", r.burstAvoidsLoadedPod)
	t.Run("a pod that goes away receives no more requests", r.goneIsNotPicked)
	t.Run("picker down: the pool's failure mode", r.pickerDown)
}

func startRouting(t *testing.T) *routing {
	ctx := context.Background()
	c, err := localcluster.Start(ctx, localcluster.Options{
		Nodes: []localcluster.Node{{Name: "gpu-node-0", GPUs: 8}},
		// Not the default range: another package's cluster (go test runs packages in parallel) serves
		// its pods on 127.10.0.x, and the gateway must reach these pods, not those.
		PodCIDR: "127.30.0.0/16",
		KeepDir: os.Getenv("LLMD_KEEP_CLUSTER") != "",
		Logf:    t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if err := c.Failed(); err != nil {
				t.Log(err)
			}
			t.Logf("logs in %s (LLMD_KEEP_CLUSTER=1 keeps them)", c.LogDir)
		}
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	if err := c.InstallInferencePoolCRD(ctx); err != nil {
		t.Fatal(err)
	}

	// Small batches, so that a few long requests make a queue; ready at once; ten times real speed.
	cfg := fleet.DefaultConfig()
	cfg.Server.Model = servedModel
	cfg.Server.Params.StartupDelay = 0
	cfg.Server.Params.MaxNumSeqs = 4
	cfg.ShutdownTimeout = 2 * time.Second
	f, err := fleet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kube, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	fleetCtx, stopFleet := context.WithCancel(ctx)
	fleetDone := make(chan struct{})
	go func() { defer close(fleetDone); _ = f.Run(fleetCtx, kube) }()
	t.Cleanup(func() { stopFleet(); <-fleetDone })

	r := &routing{c: c, pool: types.NamespacedName{Namespace: namespace, Name: "routing"},
		sel: map[string]string{contract.LabelManagedBy: contract.ManagedByValue, contract.LabelName: contract.NameVLLM, "app": "routing"},
		hc:  &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}}
	t.Logf("cluster up; creating the pods")
	r.createPods(t, 3)
	t.Logf("pods served; starting the picker")
	pool := &inferencev1.InferencePool{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.pool.Namespace, Name: r.pool.Name},
		Spec: inferencev1.InferencePoolSpec{
			Selector:          inferencev1.LabelSelector{MatchLabels: map[inferencev1.LabelKey]inferencev1.LabelValue{}},
			TargetPorts:       []inferencev1.Port{{Number: contract.HTTPPort}},
			EndpointPickerRef: &inferencev1.EndpointPickerRef{Name: pickerSvc, Port: &inferencev1.Port{Number: 9002}},
		},
	}
	for k, v := range r.sel {
		pool.Spec.Selector.MatchLabels[inferencev1.LabelKey(k)] = inferencev1.LabelValue(v)
	}
	if err := c.Client.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if r.epp, err = c.StartEPP(ctx, localcluster.EPPOptions{Pool: r.pool}); err != nil {
		t.Fatal(err)
	}
	t.Logf("picker serving; starting the gateway")
	gwCtx, stopGateway := context.WithCancel(ctx)
	r.gw, err = gateway.New(gwCtx, c.Config, gateway.Config{
		Pool: r.pool,
		ResolvePicker: func(ns string, ref inferencev1.EndpointPickerRef) (string, error) {
			if ns != namespace || ref.Name != pickerSvc || ref.Port == nil || ref.Port.Number != 9002 {
				return "", fmt.Errorf("no picker Service %s/%s", ns, ref.Name)
			}
			return r.epp.GRPCAddr, nil
		},
	})
	if err != nil {
		stopGateway()
		t.Fatal(err)
	}
	ts := httptest.NewServer(r.gw)
	t.Cleanup(func() { ts.Close(); _ = r.gw.Close(); stopGateway() })
	r.url = ts.URL
	r.waitPickerSees(t, 3)
	t.Logf("the picker routes to the 3 pods")
	return r
}

// createPods runs a Deployment of n pods for the pool and waits until the fleet serves each.
func (r *routing) createPods(t *testing.T, n int32) {
	ctx := context.Background()
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "routing"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(n),
			Selector: &metav1.LabelSelector{MatchLabels: r.sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: r.sel},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "vllm", Image: "vllm/vllm-openai", // never pulled: kwok runs no containers
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: contract.HTTPPort}},
				}}},
			},
		},
	}
	if err := r.c.Client.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	r.waitServed(t, int(n))
}

// waitServed waits until n pods of the pool run and answer on their IPs, and records their names.
func (r *routing) waitServed(t *testing.T, n int) {
	t.Helper()
	err := poll.Eventually(context.Background(), 2*time.Minute, func() error {
		pods := r.pods(t)
		if len(pods) != n {
			return fmt.Errorf("%d pods run, want %d", len(pods), n)
		}
		r.picks = map[string]string{}
		for _, p := range pods {
			resp, err := r.hc.Get("http://" + endpoint(p) + "/health")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("pod %s: /health %s", p.Name, resp.Status)
			}
			r.picks[endpoint(p)] = p.Name
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pods are the pool's pods that run with an IP and are not being deleted.
func (r *routing) pods(t *testing.T) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := r.c.Client.List(context.Background(), &list, client.InNamespace(namespace), client.MatchingLabels(r.sel)); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func endpoint(p corev1.Pod) string { return fmt.Sprintf("%s:%d", p.Status.PodIP, contract.HTTPPort) }

// waitPickerSees waits until the picker routes to exactly the pods that run now, n of them.
func (r *routing) waitPickerSees(t *testing.T, n int) {
	t.Helper()
	err := poll.Eventually(context.Background(), time.Minute, func() error {
		q, err := r.epp.Queues()
		if err != nil {
			return err
		}
		var names []string
		for _, p := range r.pods(t) {
			names = append(names, p.Name)
		}
		if len(names) != n || len(q) != n {
			return fmt.Errorf("the picker knows pods %v, %d run (%v), want %d", q, len(names), names, n)
		}
		for _, name := range names {
			if _, ok := q[name]; !ok {
				return fmt.Errorf("the picker knows pods %v, not %s", q, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// complete sends one completion to url and returns its status.
func (r *routing) complete(ctx context.Context, url, prompt string, maxTokens int) (int, error) {
	body, _ := json.Marshal(map[string]any{"model": servedModel, "prompt": prompt, "max_tokens": maxTokens})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/completions", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return resp.StatusCode, err
}

// burst sends n short completions through the gateway at once and fails the test unless all succeed.
func (r *routing) burst(t *testing.T, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if _, err := r.complete(context.Background(), r.url, fmt.Sprintf("request %d", i), 8); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a request through the gateway: %v", err)
	}
}

// burstAvoidsLoadedPod loads one pod with long requests sent to it directly, waits until the picker has
// scraped its queue, and sends a burst through the gateway: the picker's queue and KV-cache scorers send
// it to the two idle pods. Random routing would send a third of it to the loaded pod.
func (r *routing) burstAvoidsLoadedPod(t *testing.T) {
	pods := r.pods(t)
	loaded := pods[0]
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var load sync.WaitGroup
	t.Cleanup(func() { stopLoad(); load.Wait() })
	for i := range 24 { // 4 run, 20 wait
		load.Go(func() {
			_, _ = r.complete(loadCtx, "http://"+endpoint(loaded), fmt.Sprintf("long request %d", i), 4000)
		})
	}
	err := poll.Eventually(context.Background(), time.Minute, func() error {
		q, err := r.epp.Queues()
		if err != nil {
			return err
		}
		if q[loaded.Name] < 10 {
			return fmt.Errorf("the picker sees queues %v, want %s's at least 10", q, loaded.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	r.gw.ResetCounts()
	const n = 30
	r.burst(t, n)
	counts := r.gw.Counts()
	t.Logf("burst of %d with %s loaded: %v", n, loaded.Name, r.named(counts.Picked))
	if got := counts.Picked[endpoint(loaded)]; got > n/10 {
		t.Errorf("the loaded pod %s got %d of %d requests, want at most %d", loaded.Name, got, n, n/10)
	}
	total := 0
	for _, v := range counts.Picked {
		total += v
	}
	if total != n || counts.FailedClosed+counts.Rejected+len(counts.FailedOpen) != 0 {
		t.Errorf("counts %+v, want all %d requests routed by the picker", counts, n)
	}
}

// goneIsNotPicked scales the Deployment down by one; once the picker has dropped the pod, no request goes
// to it, and every request succeeds.
func (r *routing) goneIsNotPicked(t *testing.T) {
	before := r.pods(t)
	dep := &appsv1.Deployment{}
	if err := r.c.Client.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: "routing"}, dep); err != nil {
		t.Fatal(err)
	}
	dep.Spec.Replicas = ptr.To(int32(len(before) - 1))
	if err := r.c.Client.Update(context.Background(), dep); err != nil {
		t.Fatal(err)
	}
	r.waitPickerSees(t, len(before)-1)
	after := map[string]bool{}
	for _, p := range r.pods(t) {
		after[p.Name] = true
	}
	var gone corev1.Pod
	for _, p := range before {
		if !after[p.Name] {
			gone = p
		}
	}
	r.gw.ResetCounts()
	const n = 20
	r.burst(t, n)
	counts := r.gw.Counts()
	t.Logf("after %s went away: %v", gone.Name, r.named(counts.Picked))
	if got := counts.Picked[endpoint(gone)]; got != 0 {
		t.Errorf("%d requests went to %s (%s), which is gone", got, gone.Name, endpoint(gone))
	}
}

// pickerDown kills the picker: the pool fails closed by default (the gateway answers 500 and forwards
// nothing), and once the pool says FailOpen the gateway routes to a ready pod itself.
func (r *routing) pickerDown(t *testing.T) {
	if err := r.epp.Kill(); err != nil {
		t.Fatal(err)
	}
	r.gw.ResetCounts()
	if code, err := r.complete(context.Background(), r.url, "picker down", 8); code != http.StatusInternalServerError {
		t.Fatalf("with the picker down and the pool failing closed: status %d, %v; want 500", code, err)
	}
	if c := r.gw.Counts(); c.FailedClosed != 1 || len(c.Picked)+len(c.FailedOpen) != 0 {
		t.Fatalf("counts %+v, want one request refused and none forwarded", c)
	}

	pool := &inferencev1.InferencePool{}
	if err := r.c.Client.Get(context.Background(), r.pool, pool); err != nil {
		t.Fatal(err)
	}
	if got := pool.Spec.EndpointPickerRef.FailureMode; got != inferencev1.EndpointPickerFailClose {
		t.Errorf("the pool's failureMode defaults to %q, want FailClose", got)
	}
	pool.Spec.EndpointPickerRef.FailureMode = inferencev1.EndpointPickerFailOpen
	if err := r.c.Client.Update(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	// The gateway reads the pool from its watch: the first request it fails open shows it has the edit.
	err := poll.Eventually(context.Background(), 30*time.Second, func() error {
		_, err := r.complete(context.Background(), r.url, "picker down", 8)
		return err
	})
	if err != nil {
		t.Fatalf("with the picker down and the pool failing open: %v, want 200", err)
	}
	r.gw.ResetCounts()
	const n = 10
	r.burst(t, n)
	c := r.gw.Counts()
	open := 0
	for ep, v := range c.FailedOpen {
		if _, ok := r.picks[ep]; !ok {
			t.Errorf("%d requests failed open to %s, not a pod of the pool", v, ep)
		}
		open += v
	}
	if open != n || len(c.Picked) != 0 || c.FailedClosed != 0 {
		t.Errorf("counts %+v, want all %d requests routed by the gateway itself", c, n)
	}
}

// named maps endpoint counts to pod names, for logs.
func (r *routing) named(counts map[string]int) map[string]int {
	out := map[string]int{}
	for ep, v := range counts {
		name := r.picks[ep]
		if name == "" {
			name = ep
		}
		out[name] = v
	}
	return out
}
