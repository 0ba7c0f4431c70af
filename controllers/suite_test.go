package controllers_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
	"github.com/llm-d/llm-d/internal/poll"
	"github.com/llm-d/llm-d/internal/repo"
	"github.com/llm-d/llm-d/test/testenv"
)

// The suite runs the operator's reconciler in-process against a real kube-apiserver and etcd, with the real
// kube-controller-manager creating ReplicaSets and pods and collecting garbage.
var (
	env *testenv.Env
	k8s client.Client
	cfg = func() controllers.Config {
		c := controllers.DefaultConfig()
		c.ScalerAddress = "llm-d-scaler.llm-d-system.svc:9090"
		c.DefaultStorageClass = "fast-ssd"
		c.InferencePools, c.HTTPRoutes = true, true // testenv.Options.Routing installs their CRDs
		return c
	}()
	timeout = 60 * time.Second
	// operatorLog holds everything the operator logged, for the tests that check what it never says.
	operatorLog testenv.SyncBuffer
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	env, err = testenv.Start(testenv.Options{
		Controllers: []string{"garbagecollector", "deployment", "replicaset", "serviceaccount", "pvc-protection"},
		Routing:     true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	k8s = env.Client

	ctrl.SetLogger(zap.New(zap.WriteTo(io.MultiWriter(os.Stderr, &operatorLog)), zap.UseDevMode(false)))
	// Services labelled unmanagedLabel are left to the tests that drive a reconciler of their own.
	unmanaged, err := labels.Parse("!" + unmanagedLabel)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{&v1alpha1.LLMInferenceService{}: {Label: unmanaged}}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&controllers.LLMInferenceServiceReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("llm-d-operator"), Config: cfg,
	}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&controllers.LLMInferencePoolReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("llm-d-operator")}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// One large GPU node for the whole suite (80 GB, as NVIDIA's feature discovery labels it), so that the
	// VRAM check has something to compare with.
	if err := k8s.Create(context.Background(), gpuNode("gpu-a100", "81920", "")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	defer func() { cancel(); <-done }()
	return m.Run()
}

var nsCounter atomic.Int32

// namespace creates a fresh namespace for one test.
func namespace(t *testing.T, name string) string {
	t.Helper()
	if name == "" {
		name = fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				return r
			}
			return '-'
		}, strings.ToLower(t.Name())))
		if len(name) > 63 {
			name = name[:63]
		}
		name = strings.TrimRight(name, "-")
	}
	must(t, k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}))
	return name
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// sample reads a manifest from config/samples as the user would apply it.
func sample(t *testing.T, file string) *v1alpha1.LLMInferenceService {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo.Root(), "config", "samples", file))
	must(t, err)
	svc := &v1alpha1.LLMInferenceService{}
	must(t, yaml.UnmarshalStrict(data, svc))
	return svc
}

// applyManifest creates a manifest file byte for byte as `kubectl apply -f` would send it.
func applyManifest(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo.Root(), "config", "samples", file))
	must(t, err)
	u := &unstructured.Unstructured{}
	must(t, yaml.Unmarshal(data, &u.Object))
	must(t, k8s.Create(context.Background(), u))
}

// sampleIn reads a sample into a namespace of its own that holds the Hugging Face token Secret the samples
// name, and returns both, the sample not yet created.
func sampleIn(t *testing.T, file string) (string, *v1alpha1.LLMInferenceService) {
	t.Helper()
	ns := namespace(t, "")
	hfSecret(t, ns, "hf-token-secret")
	s := sample(t, file)
	s.Namespace = ns
	return ns, s
}

func hfSecret(t *testing.T, ns, name string) {
	t.Helper()
	must(t, k8s.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		StringData: map[string]string{"HF_TOKEN": "hf_test_value_never_logged"},
	}))
}

// eventually fails the test when f has not returned nil within the suite's timeout.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	if err := poll.Eventually(context.Background(), timeout, f); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func get(obj client.Object, ns, name string) error {
	return k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, obj)
}

func getService(t *testing.T, ns, name string) *v1alpha1.LLMInferenceService {
	t.Helper()
	s := &v1alpha1.LLMInferenceService{}
	must(t, get(s, ns, name))
	return s
}

// condition waits until the service's condition has the wanted reason and returns it.
func condition(t *testing.T, ns, name, typ, reason string) metav1.Condition {
	t.Helper()
	var c metav1.Condition
	eventually(t, fmt.Sprintf("condition %s reason %s", typ, reason), func() error {
		s := &v1alpha1.LLMInferenceService{}
		if err := get(s, ns, name); err != nil {
			return err
		}
		got := meta.FindStatusCondition(s.Status.Conditions, typ)
		if got == nil || got.Reason != reason || got.ObservedGeneration != s.Generation {
			return fmt.Errorf("condition %s is %+v at generation %d", typ, got, s.Generation)
		}
		c = *got
		return nil
	})
	return c
}

// markOnePodReady sets the Ready condition on one of the service's pods through the status subresource, as
// a kubelet would; the real ReplicaSet and Deployment controllers carry it to the Deployment's status.
func markOnePodReady(t *testing.T, ns, name string) {
	t.Helper()
	setPodStatus(t, ns, name, "a pod marked ready", func(st *corev1.PodStatus) {
		now := metav1.Now()
		st.Phase = corev1.PodRunning
		st.Conditions = []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	})
}

// setPodStatus changes the status of one of the service's model server pods through the status
// subresource, as the kubelet does.
func setPodStatus(t *testing.T, ns, name, what string, change func(*corev1.PodStatus)) {
	t.Helper()
	setComponentPodStatus(t, ns, name, controllers.ComponentServer, what, change)
}

// setComponentPodStatus changes the status of one of the service's pods of a component (its model servers
// or its endpoint picker).
func setComponentPodStatus(t *testing.T, ns, name, component, what string, change func(*corev1.PodStatus)) {
	t.Helper()
	eventually(t, what, func() error {
		pods := &corev1.PodList{}
		if err := k8s.List(context.Background(), pods, client.InNamespace(ns),
			client.MatchingLabels{contract.LabelInstance: name, controllers.LabelComponent: component}); err != nil {
			return err
		}
		if len(pods.Items) == 0 {
			return fmt.Errorf("no pod yet")
		}
		p := pods.Items[0]
		change(&p.Status)
		return k8s.Status().Update(context.Background(), &p)
	})
}

// warningEvent waits for a Warning event about the service whose note contains text.
func warningEvent(t *testing.T, ns, name, reason, text string) {
	t.Helper()
	eventually(t, "warning event "+reason, func() error {
		evs := &eventsv1.EventList{}
		if err := k8s.List(context.Background(), evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == name && e.Type == corev1.EventTypeWarning && e.Reason == reason && strings.Contains(e.Note, text) {
				return nil
			}
		}
		return fmt.Errorf("no %s event containing %q among %d events", reason, text, len(evs.Items))
	})
}

func deployment(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	eventually(t, "deployment", func() error { return get(d, ns, name) })
	return d
}

func isNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		return fmt.Errorf("still exists")
	}
	return err
}

func gpuNode(name, memMiB, replicas string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{contract.LabelGPUMemory: memMiB}}}
	if replicas != "" {
		n.Labels[contract.LabelGPUReplicas] = replicas
	}
	return n
}
