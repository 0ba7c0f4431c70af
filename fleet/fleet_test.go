package fleet

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/llm-d/llm-d/internal/poll"
	"github.com/llm-d/llm-d/loadgen"
	"github.com/llm-d/llm-d/test/testenv"
)

// TestFleetAgainstAPIServer runs the fleet against a real kube-apiserver: pods are created, moved to
// Running and given IPs through the status subresource as kwok (or a kubelet) would, and the fleet's
// servers follow them.
func TestFleetAgainstAPIServer(t *testing.T) {
	logf.SetLogger(logr.Discard()) // envtest logs through controller-runtime, which would complain of no logger
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	}()
	t.Log("control plane up")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k8s := env.Client
	const ns = "fleet"
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))

	kube, err := kubernetes.NewForConfig(env.Config)
	must(t, err)
	cfg := testConfig()
	cfg.Namespace = ns
	f := newFleet(t, cfg)
	ran := make(chan error, 1)
	go func() { ran <- f.Run(ctx, kube) }()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			cancel()
			if err := <-ran; err != nil {
				t.Error(err)
			}
		})
	}
	defer stop()

	eventually := func(what string, fn func() error) {
		t.Helper()
		if err := poll.Eventually(ctx, 30*time.Second, fn); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Log(what)
	}
	servesModel := func(addr, model string) func() error {
		return func() error {
			m, err := modelAt(addr)
			if err == nil && m != model {
				err = fmt.Errorf("%s serves %q, want %q", addr, m, model)
			}
			return err
		}
	}
	// create makes a pod as the operator's Deployment would, Pending like a fresh pod.
	create := func(name string) *corev1.Pod {
		p := testPod(ns, name, "llama", "", "--model=api-model", "--port=8000")
		p.UID, p.Status = "", corev1.PodStatus{}
		must(t, k8s.Create(ctx, p))
		return p
	}
	// setStatus changes the pod's status as kwok would, retrying on conflicts with its own reads.
	setStatus := func(p *corev1.Pod, phase corev1.PodPhase, ip string) {
		t.Helper()
		eventually("updating the status of "+p.Name, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
				return err
			}
			running := testPod(ns, p.Name, "llama", ip)
			p.Status = running.Status
			p.Status.Phase = phase
			if ip == "" {
				p.Status.PodIP, p.Status.PodIPs = "", nil
			}
			return k8s.Status().Update(ctx, p)
		})
	}

	// Pending: nothing listens. Running with an IP: a server answers there, on the named port.
	a := create("a")
	addrA := "127.10.253.1:8000"
	setStatus(a, corev1.PodPending, "")
	if err := refused(addrA); err != nil {
		t.Fatal(err)
	}
	setStatus(a, corev1.PodRunning, "127.10.253.1")
	eventually("the server of a Running pod", servesModel(addrA, "api-model"))
	if s := f.Snapshot(); len(s) != 1 || s[0].Name != "a" || s[0].Service != "llama" || s[0].Address != addrA || !s[0].Ready {
		t.Errorf("snapshot %+v", s)
	}

	// A new IP moves the server.
	setStatus(a, corev1.PodRunning, "127.10.253.2")
	eventually("the server at the pod's new IP", servesModel("127.10.253.2:8000", "api-model"))
	eventually("the server at the pod's old IP to stop", func() error { return refused(addrA) })

	// Failed stops it.
	setStatus(a, corev1.PodFailed, "127.10.253.2")
	eventually("a Failed pod's server to stop", func() error { return refused("127.10.253.2:8000") })

	// Deleting a Running pod stops its server.
	b := create("b")
	setStatus(b, corev1.PodRunning, "127.10.253.3")
	eventually("the server of pod b", servesModel("127.10.253.3:8000", "api-model"))
	must(t, k8s.Delete(ctx, b))
	eventually("a deleted pod's server to stop", func() error { return refused("127.10.253.3:8000") })

	// A pod the operator does not manage is left alone.
	other := testPod(ns, "other", "llama", "")
	other.UID, other.Status, other.Labels = "", corev1.PodStatus{}, map[string]string{"app": "other"}
	must(t, k8s.Create(ctx, other))
	setStatus(other, corev1.PodRunning, "127.10.253.4")
	c := create("c")
	setStatus(c, corev1.PodRunning, "127.10.253.5")
	eventually("the server of pod c", servesModel("127.10.253.5:8000", "api-model"))
	if err := refused("127.10.253.4:8000"); err != nil {
		t.Errorf("an unmanaged pod: %v", err)
	}
	if s := f.Snapshot(); len(s) != 2 || s[0].Name != "a" || s[0].Address != "" || s[1].Name != "c" {
		t.Errorf("snapshot %+v, want a (Failed, no server) and c", s)
	}

	// The front door routes the service's traffic to its one serving pod; llmd burst drives it so.
	front := httptest.NewServer(f.Handler(ns, "llama"))
	defer front.Close()
	g, err := loadgen.New(loadgen.Config{URL: front.URL + "/v1", Model: "api-model", RPS: 200, Duration: 50 * time.Millisecond,
		PromptTokens: 30, MaxTokens: 5, Arrivals: loadgen.Uniform})
	must(t, err)
	checkBurst(t, g.Run(ctx), 10)

	// Stopping the fleet stops every server.
	stop()
	if err := refused("127.10.253.5:8000"); err != nil {
		t.Errorf("after the fleet stopped: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
