package fleet

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/llm-d/llm-d/internal/poll"
	"github.com/llm-d/llm-d/loadgen"
)

func TestPodTarget(t *testing.T) {
	running := testPod("ns", "p", "svc", "127.10.1.2", "--model=meta-llama/Llama-3.1-8B", "--port=8000")
	if got, why := podTarget(running, "d"); why != "" || got != (target{uid: "uid-p", ip: "127.10.1.2", port: 8000, model: "meta-llama/Llama-3.1-8B"}) {
		t.Errorf("podTarget = %+v, %q", got, why)
	}
	cases := map[string]func(p *corev1.Pod){
		"Pending":     func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending },
		"Failed":      func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed },
		"no IP":       func(p *corev1.Pod) { p.Status.PodIP = "" },
		"terminating": func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: time.Now()} },
		"loopback":    func(p *corev1.Pod) { p.Status.PodIP = "10.0.0.7" },
		"garbage IP":  func(p *corev1.Pod) { p.Status.PodIP = "x" },
	}
	for want, mutate := range cases {
		p := running.DeepCopy()
		mutate(p)
		if _, why := podTarget(p, "d"); !strings.Contains(why, want) && !strings.Contains(why, strings.ToLower(want)) &&
			!strings.Contains(why, "not an IP") {
			t.Errorf("%s: reason %q", want, why)
		}
	}
	if _, why := podTarget(nil, "d"); why == "" {
		t.Error("a nil pod has a target")
	}
}

func TestModelAndPort(t *testing.T) {
	cases := []struct {
		args  []string
		ports []corev1.ContainerPort
		model string
		port  int
	}{
		{nil, nil, "default", 8000},
		{[]string{"--model", "m1", "--served-model-name", "served"}, nil, "served", 8000},
		{[]string{"--model=/models/x", "--served_model_name=served"}, nil, "served", 8000},
		{[]string{"--model", "m2"}, []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9}, {Name: "http", ContainerPort: 8123}}, "m2", 8123},
		{[]string{"--model"}, []corev1.ContainerPort{{ContainerPort: 9000}}, "default", 8000},
	}
	for _, tc := range cases {
		p := testPod("ns", "p", "svc", "127.10.1.2", tc.args...)
		p.Spec.Containers[0].Ports = tc.ports
		got, why := podTarget(p, "default")
		if why != "" || got.model != tc.model || got.port != tc.port {
			t.Errorf("args %q ports %v: %+v %q; want model %s port %d", tc.args, tc.ports, got, why, tc.model, tc.port)
		}
	}
	// The port of a sidecar named http is vLLM's only if the vLLM container has none.
	p := testPod("ns", "p", "svc", "127.10.1.2")
	p.Spec.Containers[0].Ports = nil
	p.Spec.Containers = append([]corev1.Container{{Name: "proxy", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8081}}}}, p.Spec.Containers...)
	if got, _ := podTarget(p, "d"); got.port != 8081 {
		t.Errorf("port %d, want the sidecar's 8081", got.port)
	}
}

// TestSync drives the reconciliation directly, without an API server.
func TestSync(t *testing.T) {
	f := newFleet(t, testConfig())
	defer f.stopAll()
	p := testPod("ns", "a", "svc", "127.10.251.1", "--model=m-a")
	addr := "127.10.251.1:8000"
	if err := f.sync("ns/a", p); err != nil {
		t.Fatal(err)
	}
	if m, err := modelAt(addr); err != nil || m != "m-a" {
		t.Fatalf("server at %s: model %q, %v; want m-a", addr, m, err)
	}
	snap := f.Snapshot()
	if len(snap) != 1 || snap[0].Address != addr || snap[0].Service != "svc" || !snap[0].Ready || snap[0].Model != "m-a" || snap[0].Reason != "" {
		t.Errorf("snapshot %+v", snap)
	}

	// Not Ready: still served (vLLM is up), but not routed to.
	p.Status.Conditions[0].Status = corev1.ConditionFalse
	if err := f.sync("ns/a", p); err != nil {
		t.Fatal(err)
	}
	if _, err := modelAt(addr); err != nil {
		t.Errorf("an unready pod's server stopped: %v", err)
	}
	if s := f.Snapshot(); s[0].Ready {
		t.Errorf("snapshot %+v says ready", s)
	}

	// A new IP moves the server.
	p.Status.PodIP = "127.10.251.2"
	if err := f.sync("ns/a", p); err != nil {
		t.Fatal(err)
	}
	if err := refused(addr); err != nil {
		t.Error(err)
	}
	if _, err := modelAt("127.10.251.2:8000"); err != nil {
		t.Error(err)
	}

	// Failed stops it; the pod stays in the snapshot with the reason.
	p.Status.Phase = corev1.PodFailed
	if err := f.sync("ns/a", p); err != nil {
		t.Fatal(err)
	}
	if err := refused("127.10.251.2:8000"); err != nil {
		t.Error(err)
	}
	if s := f.Snapshot(); len(s) != 1 || s[0].Address != "" || !strings.Contains(s[0].Reason, "Failed") {
		t.Errorf("snapshot %+v", s)
	}

	// Running again, then gone.
	p.Status.Phase = corev1.PodRunning
	if err := f.sync("ns/a", p); err != nil {
		t.Fatal(err)
	}
	if _, err := modelAt("127.10.251.2:8000"); err != nil {
		t.Error(err)
	}
	if err := f.sync("ns/a", nil); err != nil {
		t.Fatal(err)
	}
	if err := refused("127.10.251.2:8000"); err != nil {
		t.Error(err)
	}
	if s := f.Snapshot(); len(s) != 0 {
		t.Errorf("snapshot of a fleet whose pod is gone: %+v", s)
	}
}

func TestSyncReportsABusyAddress(t *testing.T) {
	f := newFleet(t, testConfig())
	defer f.stopAll()
	if err := f.sync("ns/a", testPod("ns", "a", "svc", "127.10.251.3")); err != nil {
		t.Fatal(err)
	}
	// A second pod claiming the same address cannot have it.
	err := f.sync("ns/b", testPod("ns", "b", "svc", "127.10.251.3"))
	if err == nil {
		t.Fatal("two servers bound one address")
	}
	s := f.Snapshot()
	if len(s) != 2 || s[1].Name != "b" || s[1].Address != "" || !strings.Contains(s[1].Reason, "address already in use") {
		t.Errorf("snapshot %+v", s)
	}
}

func TestFrontDoor(t *testing.T) {
	f := newFleet(t, testConfig())
	defer f.stopAll()
	front := httptest.NewServer(f.Handler("ns", "svc"))
	defer front.Close()

	// No pod yet: 503, as a Service without endpoints fails.
	resp, err := httpClient.Post(front.URL+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("front door of no pods: %s, want 503", resp.Status)
	}

	for i, ip := range []string{"127.10.251.11", "127.10.251.12"} {
		name := []string{"a", "b"}[i]
		if err := f.sync("ns/"+name, testPod("ns", name, "svc", ip, "--model=m")); err != nil {
			t.Fatal(err)
		}
	}
	// Another service's pod never gets this service's traffic.
	if err := f.sync("ns/other", testPod("ns", "other", "other", "127.10.251.13", "--model=other")); err != nil {
		t.Fatal(err)
	}

	// Streaming passes through: the first token arrives before the response ends.
	resp, err = httpClient.Post(front.URL+"/v1/completions", "application/json",
		strings.NewReader(`{"model":"m","prompt":"hello","max_tokens":5,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			lines++
		}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || lines != 7 { // 5 tokens, the finish chunk, [DONE]
		t.Errorf("streamed %s with %d events, want 200 and 7", resp.Status, lines)
	}

	// A load spread over both pods, all of it served.
	g, err := loadgen.New(loadgen.Config{URL: front.URL, Model: "m", RPS: 400, Duration: 100 * time.Millisecond,
		PromptTokens: 20, MaxTokens: 4, Arrivals: loadgen.Uniform})
	if err != nil {
		t.Fatal(err)
	}
	checkBurst(t, g.Run(context.Background()), 40)
}

// checkBurst wants all n requests of a burst through the front door to have succeeded.
func checkBurst(t *testing.T, s loadgen.Summary, n int) {
	t.Helper()
	if s.Requests != n || s.Successes != n {
		t.Errorf("burst through the front door: %d of %d requests succeeded, want all of %d: %+v", s.Successes, s.Requests, n, s)
	}
}

// TestRunWithFakeClient runs the informer path against client-go's fake clientset.
func TestRunWithFakeClient(t *testing.T) {
	p := testPod("ns", "a", "svc", "127.10.251.21", "--model=fake")
	unmanaged := testPod("ns", "b", "svc", "127.10.251.22")
	unmanaged.Labels = map[string]string{"app": "other"}
	kube := fake.NewClientset(p, unmanaged)
	f := newFleet(t, testConfig())
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- f.Run(ctx, kube) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Error(err)
		}
	}()
	err := poll.Eventually(ctx, 10*time.Second, func() error {
		_, err := modelAt("127.10.251.21:8000")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := refused("127.10.251.22:8000"); err != nil {
		t.Errorf("a pod without the managed-by label: %v", err)
	}
	if err := kube.CoreV1().Pods("ns").Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := poll.Eventually(ctx, 10*time.Second, func() error { return refused("127.10.251.21:8000") }); err != nil {
		t.Error(err)
	}
}
