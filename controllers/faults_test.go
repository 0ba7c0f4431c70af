package controllers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/prometheus/common/expfmt"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
	"github.com/llm-d/llm-d/internal/poll"
	"github.com/llm-d/llm-d/internal/repo"
)

// The operator rows of docs/faults.md. Tests that need a process to die or a write to fail between two
// calls drive the reconciler directly on controller-runtime's fake client (with interceptors), which keeps
// each step deterministic; the others run against the suite's real kube-apiserver.

// writes counts the writes a client makes, by verb and kind, and can fail chosen ones.
type writes struct {
	mu     sync.Mutex
	counts map[string]int
	// fail, when set, is asked before each write of a kind; a non-nil error is returned instead of writing.
	fail func(verb, kind string) error
}

func (w *writes) total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.counts {
		n += c
	}
	return n
}

func (w *writes) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprint(w.counts)
}

func (w *writes) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts = map[string]int{}
}

func (w *writes) record(verb string, obj any) error {
	kind := kindOf(obj)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		if err := w.fail(verb, kind); err != nil {
			return err
		}
	}
	if w.counts == nil {
		w.counts = map[string]int{}
	}
	w.counts[verb+" "+kind]++
	return nil
}

// kindOf names the kind of a typed object or of an apply configuration.
func kindOf(obj any) string {
	if u, ok := obj.(interface{ GetKind() string }); ok && u.GetKind() != "" {
		return u.GetKind()
	}
	if o, ok := obj.(runtime.Object); ok {
		if gvk, err := apiutil.GVKForObject(o, env.Scheme); err == nil {
			return gvk.Kind
		}
	}
	return fmt.Sprintf("%T", obj)
}

// counted wraps c so that every write goes through w; reading a Secret, even its metadata, fails the test.
func counted(t *testing.T, c client.WithWatch, w *writes) client.WithWatch {
	secretRead := func(obj any) {
		if k := kindOf(obj); k == "Secret" || k == "SecretList" {
			t.Errorf("the operator read a Secret (%T): it must read none", obj)
		}
	}
	return interceptor.NewClient(c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			secretRead(obj)
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			secretRead(list)
			return c.List(ctx, list, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if err := w.record("create", obj); err != nil {
				return err
			}
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if err := w.record("update", obj); err != nil {
				return err
			}
			return c.Update(ctx, obj, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			if err := w.record("apply", obj); err != nil {
				return err
			}
			return c.Apply(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if err := w.record("patch", obj); err != nil {
				return err
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			if err := w.record("delete", obj); err != nil {
				return err
			}
			return c.Delete(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if err := w.record("update/"+sub, obj); err != nil {
				return err
			}
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			if err := w.record("patch/"+sub, obj); err != nil {
				return err
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
}

// fakeWorld is a fake API server holding objs, with the write counter w in front of it.
func fakeWorld(t *testing.T, w *writes, objs ...client.Object) client.WithWatch {
	fc := fake.NewClientBuilder().WithScheme(env.Scheme).WithObjects(objs...).WithReturnManagedFields().
		WithStatusSubresource(&v1alpha1.LLMInferenceService{}, &appsv1.Deployment{}).Build()
	return counted(t, fc, w)
}

func faultService(ns, name string, autoscaling bool) *v1alpha1.LLMInferenceService {
	s := &v1alpha1.LLMInferenceService{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Generation: 1},
		Spec: v1alpha1.LLMInferenceServiceSpec{
			Model:    v1alpha1.ModelSpec{ID: "meta-llama/Meta-Llama-3.1-8B-Instruct"},
			Engine:   v1alpha1.EngineSpec{Args: []string{"--max-model-len=8192"}},
			Replicas: ptr.To[int32](1),
		},
	}
	if autoscaling {
		s.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: 1, MaxReplicas: 4,
			Metrics: []v1alpha1.AutoscalingMetric{{Type: v1alpha1.MetricRequestQueue, RequestQueue: &v1alpha1.RequestQueueTarget{TargetAverageQueueDepth: 5}}}}
	}
	return s
}

func reconcileOnce(t *testing.T, r *controllers.LLMInferenceServiceReconciler, ns, name string) (ctrl.Result, error) {
	t.Helper()
	return r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
}

// owned lists the objects of the given kinds in ns and checks each is exactly one, controlled by svc.
func checkOwnedOnce(t *testing.T, c client.Client, svc *v1alpha1.LLMInferenceService) {
	t.Helper()
	for _, list := range []client.ObjectList{&appsv1.DeploymentList{}, &corev1.ServiceList{}, &corev1.PersistentVolumeClaimList{}} {
		must(t, c.List(context.Background(), list, client.InNamespace(svc.Namespace)))
		items, err := meta.ExtractList(list)
		must(t, err)
		if len(items) != 1 {
			t.Fatalf("%T: %d objects, want exactly 1", list, len(items))
		}
		if !metav1.IsControlledBy(items[0].(client.Object), svc) {
			t.Fatalf("%T: not controlled by the service", items[0])
		}
	}
}

// A restart in the middle of a reconcile: the process dies after writing some objects (here the Service
// write fails, as if the process was killed before it). The restarted operator (a new reconciler, nothing in
// memory) finishes the job: every object exists exactly once, owned by the service; nothing is left in an
// error state; and a further reconcile writes nothing. On the real API server, with a service the suite's
// operator leaves to the test.
func TestFaultRestartInTheMiddleOfAReconcile(t *testing.T) {
	ns := namespace(t, "")
	svc := faultService(ns, "llama", false)
	svc.UID, svc.Generation = "", 0
	createUnmanaged(t, svc)
	w := &writes{fail: func(verb, kind string) error {
		if kind == "Service" && verb == "apply" {
			return errors.New("connection reset: the operator's process was killed")
		}
		return nil
	}}
	c := realWorld(t, w)
	first := &controllers.LLMInferenceServiceReconciler{Client: c, Config: cfg}
	if _, err := reconcileOnce(t, first, ns, "llama"); err == nil {
		t.Fatal("the interrupted reconcile reported no error")
	}

	w.mu.Lock()
	w.fail = nil
	w.mu.Unlock()
	rec := events.NewFakeRecorder(100)
	restarted := &controllers.LLMInferenceServiceReconciler{Client: c, Config: cfg, Recorder: rec}
	if _, err := reconcileOnce(t, restarted, ns, "llama"); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	must(t, c.Get(context.Background(), client.ObjectKeyFromObject(svc), svc))
	checkOwnedOnce(t, c, svc)
	if ready := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionReady); ready == nil || ready.Reason == controllers.ReasonReconcileError {
		t.Fatalf("Ready after the restart: %+v", ready)
	}
	// The Deployment's status moves while its pod is created; once it stops, a reconcile writes nothing.
	noWrites(t, cfg, ns, "llama")
}

// A write conflict (another writer changed an object between the operator's read and its write, which the
// API server answers with 409) is retried quietly: no error condition, no Warning event, and the next
// reconcile applies the change.
func TestFaultWriteConflictIsRetriedQuietly(t *testing.T) {
	ns := namespace(t, "")
	svc := faultService(ns, "llama", false)
	svc.UID, svc.Generation = "", 0
	createUnmanaged(t, svc)
	w := &writes{}
	c := realWorld(t, w)
	rec := events.NewFakeRecorder(100)
	r := &controllers.LLMInferenceServiceReconciler{Client: c, Config: cfg, Recorder: rec}
	if _, err := reconcileOnce(t, r, ns, "llama"); err != nil {
		t.Fatal(err)
	}
	drain(rec)
	// Drift: someone edits the pod template; the operator must put it back.
	d := &appsv1.Deployment{}
	eventually(t, "edit the Deployment", func() error {
		if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "llama"}, d); err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = "someone/else:latest"
		return c.Update(context.Background(), d)
	})

	var conflicts atomic.Int32
	w.mu.Lock()
	w.fail = func(verb, kind string) error {
		if kind == "Deployment" && verb == "apply" && conflicts.Add(1) == 1 {
			return apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, "llama",
				errors.New("the object has been modified; please apply your changes to the latest version and try again"))
		}
		return nil
	}
	w.mu.Unlock()
	res, err := reconcileOnce(t, r, ns, "llama")
	if err != nil || !res.Requeue { //nolint:staticcheck // Requeue is what the reconciler returns
		t.Fatalf("on a conflict: %+v, %v; want a quiet requeue", res, err)
	}
	must(t, c.Get(context.Background(), client.ObjectKeyFromObject(svc), svc))
	if ready := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionReady); ready != nil && ready.Reason == controllers.ReasonReconcileError {
		t.Fatalf("a conflict became an error condition: %+v", ready)
	}
	for _, e := range drain(rec) {
		if strings.HasPrefix(e, corev1.EventTypeWarning) {
			t.Fatalf("a conflict became a Warning event: %s", e)
		}
	}
	if _, err := reconcileOnce(t, r, ns, "llama"); err != nil {
		t.Fatal(err)
	}
	must(t, c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "llama"}, d))
	if d.Spec.Template.Spec.Containers[0].Image == "someone/else:latest" {
		t.Fatal("the drift was not reverted after the conflict")
	}
}

// realWorld is a client of the suite's API server with the write counter w in front of it.
func realWorld(t *testing.T, w *writes) client.WithWatch {
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	must(t, err)
	return counted(t, c, w)
}

func drain(rec *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// An LLMInferenceService that the API server's validation would refuse but that exists anyway
// (stored before a rule was added, or written with validation off): the reconcile must not fail in a loop,
// and the problem must reach the status and an event. Expected: Ready=False with the message and one Warning
// event; no ScaledObject that KEDA would refuse.
func TestFaultInvalidSpecPastValidation(t *testing.T) {
	svc := faultService("invalid", "llama", true)
	svc.Spec.Autoscaling.MinReplicas, svc.Spec.Autoscaling.MaxReplicas = 3, 2
	w := &writes{}
	dep := &appsv1.Deployment{}
	c := fakeWorld(t, w, svc)
	rec := events.NewFakeRecorder(100)
	r := &controllers.LLMInferenceServiceReconciler{Client: c, Config: cfg, Recorder: rec}
	for i := range 3 {
		if _, err := reconcileOnce(t, r, "invalid", "llama"); err != nil {
			t.Fatalf("reconcile %d returned %v: controller-runtime would retry it forever", i, err)
		}
		// A replica becomes ready, as it would in a cluster, so that the ScaledObject step is reached.
		if err := c.Get(context.Background(), types.NamespacedName{Namespace: "invalid", Name: "llama"}, dep); err == nil && dep.Status.ReadyReplicas == 0 {
			dep.Status.Replicas, dep.Status.ReadyReplicas = 1, 1
			must(t, c.Status().Update(context.Background(), dep))
		}
	}
	must(t, c.Get(context.Background(), client.ObjectKeyFromObject(svc), svc))
	so := &kedav1alpha1.ScaledObject{}
	soErr := c.Get(context.Background(), client.ObjectKeyFromObject(svc), so)
	said := false
	for _, cond := range svc.Status.Conditions {
		if cond.Status != metav1.ConditionTrue && strings.Contains(cond.Message, "maxReplicas") || cond.Type == v1alpha1.ConditionConfigurationWarning && strings.Contains(cond.Message, "maxReplicas") {
			said = true
		}
	}
	warned := false
	for _, e := range drain(rec) {
		if strings.HasPrefix(e, corev1.EventTypeWarning) && strings.Contains(e, "maxReplicas") {
			warned = true
		}
	}
	if !said || !warned || soErr == nil {
		t.Fatalf("minReplicas 3 > maxReplicas 2 past validation: "+
			"said in status %v, Warning event %v, ScaledObject written %v (min %v max %v); conditions %+v",
			said, warned, soErr == nil, ptr.Deref(so.Spec.MinReplicaCount, -1), ptr.Deref(so.Spec.MaxReplicaCount, -1), svc.Status.Conditions)
	}
}

// Objects the operator manages, deleted by hand, come back (owned by the service, with a new UID); a
// ScaledObject too, once the service autoscales.
func TestFaultManagedObjectDeletedByHandIsRecreated(t *testing.T) {
	ns := namespace(t, "")
	svc := faultService(ns, "llama", true)
	svc.UID, svc.Generation = "", 0
	must(t, k8s.Create(context.Background(), svc))
	deployment(t, ns, "llama")
	markOnePodReady(t, ns, "llama")
	// The ScaledObject is created once a replica is ready; the Deployment goes last, its pods with it.
	for _, obj := range []client.Object{&corev1.Service{}, &kedav1alpha1.ScaledObject{}, &appsv1.Deployment{}} {
		t.Run(fmt.Sprintf("%T", obj), func(t *testing.T) {
			eventually(t, "the object", func() error { return get(obj, ns, "llama") })
			old := obj.GetUID()
			must(t, k8s.Delete(context.Background(), obj, client.PropagationPolicy(metav1.DeletePropagationBackground)))
			eventually(t, "the object recreated", func() error {
				if err := get(obj, ns, "llama"); err != nil {
					return err
				}
				if obj.GetUID() == old {
					return errors.New("still the old object")
				}
				if !metav1.IsControlledBy(obj, getService(t, ns, "llama")) {
					return errors.New("recreated without the service as controller")
				}
				return nil
			})
		})
	}
}

// No secret value in the operator's log, events, status, the Deployment or the operator's metrics: the
// operator reads no Secret at all (counted() fails the test if it reads one, even its metadata), and
// references the token from the pod by secretKeyRef.
func TestFaultSecretValueNeverLeaks(t *testing.T) {
	const value = "hf_test_value_never_logged"
	// On the fake client: the Secret is never read with its data.
	svc := faultService("secrets", "llama", false)
	svc.Spec.Model.Source.Type = v1alpha1.ModelSourceHuggingFace
	svc.Spec.Model.Source.HuggingFaceTokenSecret = "hf"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "secrets", Name: "hf"}, Data: map[string][]byte{"HF_TOKEN": []byte(value)}}
	c := fakeWorld(t, &writes{}, svc, secret)
	if _, err := reconcileOnce(t, &controllers.LLMInferenceServiceReconciler{Client: c, Config: cfg, Recorder: events.NewFakeRecorder(100)}, "secrets", "llama"); err != nil {
		t.Fatal(err)
	}

	// On the real API server: nothing the operator wrote holds the value.
	ns := namespace(t, "")
	hfSecret(t, ns, "hf-token")
	real := faultService(ns, "llama", false)
	real.UID, real.Generation = "", 0
	real.Spec.Model.Source.Type = v1alpha1.ModelSourceHuggingFace
	real.Spec.Model.Source.HuggingFaceTokenSecret = "hf-token"
	must(t, k8s.Create(context.Background(), real))
	deployment(t, ns, "llama")
	condition(t, ns, "llama", v1alpha1.ConditionReady, controllers.ReasonWaitingForReadyReplica)
	var dump bytes.Buffer
	for _, list := range []client.ObjectList{&v1alpha1.LLMInferenceServiceList{}, &appsv1.DeploymentList{}, &corev1.ServiceList{},
		&corev1.PersistentVolumeClaimList{}, &eventsv1.EventList{}, &corev1.EventList{}} {
		must(t, k8s.List(context.Background(), list, client.InNamespace(ns)))
		b, err := json.Marshal(list)
		must(t, err)
		dump.Write(b)
	}
	fams, err := crmetrics.Registry.Gather()
	must(t, err)
	for _, f := range fams {
		_, _ = expfmt.MetricFamilyToText(&dump, f)
	}
	if bytes.Contains(dump.Bytes(), []byte(value)) {
		t.Fatalf("the secret's value appears in what the operator wrote or exports")
	}
	if !bytes.Contains(dump.Bytes(), []byte(`"secretKeyRef":{"name":"hf-token"`)) {
		t.Fatalf("the Deployment does not reference the token by secretKeyRef")
	}
	if log := operatorLog.String(); log == "" || strings.Contains(log, value) {
		t.Fatalf("the operator's log (%d bytes) is empty or holds the secret's value", len(log))
	}
}

// 1,000 services (LLMD_FAULTS_SERVICES overrides the count) reconciled by the operator reach a steady state
// in which a full pass of reconciles over all of them writes nothing: no status rewrite, no no-op update.
// The pass runs a second reconciler over the same API server with a client that counts writes. The test
// has a control plane of its own: each service has a ClusterIP Service, and the suite's API server, like
// envtest's default, allocates from a /24.
func TestFaultThousandServicesNoWriteAtSteadyState(t *testing.T) {
	n := 1000
	if s := os.Getenv("LLMD_FAULTS_SERVICES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	etcdDir, err := repo.Tools("etcd")
	must(t, err)
	kubeDir, err := repo.Tools("kubernetes")
	must(t, err)
	keda, err := repo.ModuleDir("github.com/kedacore/keda/v2")
	must(t, err)
	big := &envtest.Environment{Scheme: env.Scheme, ErrorIfCRDPathMissing: true,
		ControlPlaneStartTimeout: 3 * time.Minute, ControlPlaneStopTimeout: time.Minute, // 2 busy cores
		CRDDirectoryPaths: []string{filepath.Join(repo.Root(), "config", "crd", "bases"), filepath.Join(keda, "config", "crd", "bases")}}
	big.ControlPlane.Etcd = &envtest.Etcd{Path: filepath.Join(etcdDir, "etcd")}
	api := big.ControlPlane.GetAPIServer()
	api.Path = filepath.Join(kubeDir, "kube-apiserver")
	api.Configure().Set("service-cluster-ip-range", "10.0.0.0/16")
	restCfg, err := big.Start()
	must(t, err)
	t.Cleanup(func() { _ = big.Stop() })
	c, err := client.New(restCfg, client.Options{Scheme: env.Scheme})
	must(t, err)

	// The operator, as the suite runs it, but without the routing CRDs, which this control plane lacks.
	cfg := cfg
	cfg.InferencePools, cfg.HTTPRoutes = false, false
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)}})
	must(t, err)
	must(t, (&controllers.LLMInferenceServiceReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("llm-d-operator"), Config: cfg}).SetupWithManager(mgr))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	const ns = "thousand"
	must(t, c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	for i := range n {
		s := faultService(ns, fmt.Sprintf("svc-%04d", i), false)
		s.UID, s.Generation = "", 0
		s.Spec.Replicas = ptr.To[int32](0) // no pods: the test is about the operator's writes
		must(t, c.Create(context.Background(), s))
	}
	// Creating and reconciling 1,000 services takes minutes on a small machine: a longer deadline than the
	// suite's. Checked one service at a time, from where the last poll stopped, so that polling stays cheap.
	slowly := func(what string, f func() error) {
		t.Helper()
		if err := poll.Eventually(context.Background(), 15*time.Minute, f); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	next := 0
	slowly("every service reconciled", func() error {
		for ; next < n; next++ {
			s := &v1alpha1.LLMInferenceService{}
			if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("svc-%04d", next)}, s); err != nil {
				return err
			}
			cond := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady)
			if cond == nil || cond.Reason != controllers.ReasonScaledToZero || s.Status.ObservedGeneration != s.Generation {
				return fmt.Errorf("%d of %d services reconciled", next, n)
			}
		}
		return nil
	})
	w := &writes{}
	wc, err := client.NewWithWatch(restCfg, client.Options{Scheme: env.Scheme})
	must(t, err)
	r := &controllers.LLMInferenceServiceReconciler{Client: counted(t, wc, w), Config: cfg, Recorder: events.NewFakeRecorder(10 * n)}
	passes := 0
	pass := func() error {
		passes++
		w.reset()
		for i := range n {
			if _, err := reconcileOnce(t, r, ns, fmt.Sprintf("svc-%04d", i)); err != nil {
				return poll.Permanent(err)
			}
		}
		if total := w.total(); total != 0 {
			return fmt.Errorf("a pass over %d services wrote %d times: %s", n, total, w)
		}
		return nil
	}
	slowly("a pass with no write", pass)
	// Steady means it stays so: a second pass right after writes nothing either.
	must(t, pass())
	t.Logf("%d services: %d passes of reconciles, the last two with 0 writes", n, passes)
}
