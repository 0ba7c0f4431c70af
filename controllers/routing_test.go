package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	inferencev1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
)

// pickerObjects are the objects of a service's endpoint picker, empty, to be read by name.
func pickerObjects() []client.Object {
	return []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &corev1.ServiceAccount{}, &rbacv1.Role{},
		&rbacv1.RoleBinding{}, &corev1.ConfigMap{}}
}

// A service with spec.router gets an InferencePool of its pods and an endpoint picker; the Routing condition
// follows the picker from starting to ready, a Gateway gets an HTTPRoute, and removing the router block
// deletes them all. The service's own Service stays throughout.
func TestRouterLifecycle(t *testing.T) {
	ns, s := sampleIn(t, "llama-3-8b.yaml")
	s.Spec.Router = &v1alpha1.RouterSpec{Scoring: v1alpha1.RouterScoring{QueueWeight: ptr.To[int32](5)}}
	must(t, k8s.Create(context.Background(), s))
	s = getService(t, ns, s.Name)
	picker := s.Name + "-epp"

	pool := &inferencev1.InferencePool{}
	eventually(t, "the InferencePool", func() error { return get(pool, ns, s.Name) })
	if pool.Spec.TargetPorts[0].Number != 8000 || string(pool.Spec.EndpointPickerRef.Name) != picker ||
		pool.Spec.EndpointPickerRef.FailureMode != inferencev1.EndpointPickerFailClose || !metav1.IsControlledBy(pool, s) {
		t.Errorf("pool %+v", pool.Spec)
	}
	for _, o := range pickerObjects() {
		eventually(t, fmt.Sprintf("the picker's %T", o), func() error { return get(o, ns, picker) })
		if !metav1.IsControlledBy(o, s) {
			t.Errorf("%T %s is not controlled by the service: %v", o, picker, o.GetOwnerReferences())
		}
	}
	cm := &corev1.ConfigMap{}
	must(t, get(cm, ns, picker))
	if !strings.Contains(cm.Data["config.yaml"], "pluginRef: queue-scorer\n    weight: 5") {
		t.Errorf("the picker's configuration lacks the CR's queue weight:\n%s", cm.Data["config.yaml"])
	}

	// No kubelet runs the picker: it starts, then fails as a kubelet would say, then turns ready.
	condition(t, ns, s.Name, v1alpha1.ConditionRouting, controllers.ReasonPickerStarting)
	setComponentPodStatus(t, ns, s.Name, controllers.ComponentPicker, "the picker pod crashing", func(st *corev1.PodStatus) {
		st.Phase = corev1.PodRunning
		st.ContainerStatuses = []corev1.ContainerStatus{{Name: "epp", Image: cfg.EPPImage, RestartCount: 3,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1,
				Message: `failed to load config: plugin "queue-scorer" not found`}}}}
	})
	c := condition(t, ns, s.Name, v1alpha1.ConditionRouting, controllers.ReasonPickerNotReady)
	if !strings.Contains(c.Message, `plugin "queue-scorer" not found`) || !strings.Contains(c.Message, "--previous") {
		t.Errorf("message %q", c.Message)
	}
	warningEvent(t, ns, s.Name, controllers.ReasonPickerNotReady, "keeps exiting")
	setComponentPodStatus(t, ns, s.Name, controllers.ComponentPicker, "the picker pod ready", func(st *corev1.PodStatus) {
		now := metav1.Now()
		st.ContainerStatuses = nil
		st.Conditions = []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
	})
	c = condition(t, ns, s.Name, v1alpha1.ConditionRouting, controllers.ReasonNoGateway)
	if c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "no Gateway is named") {
		t.Errorf("without a gateway: %+v", c)
	}
	// At steady state a reconcile of a routed service writes nothing, access checks included.
	noWrites(t, cfg, ns, s.Name)

	edit(t, ns, s.Name, func(s *v1alpha1.LLMInferenceService) {
		s.Spec.Router.Gateway = &v1alpha1.GatewayRef{Name: "inference-gateway"}
	})
	route := &gatewayv1.HTTPRoute{}
	eventually(t, "the HTTPRoute", func() error { return get(route, ns, s.Name) })
	if string(route.Spec.ParentRefs[0].Name) != "inference-gateway" || string(route.Spec.Rules[0].BackendRefs[0].Name) != s.Name {
		t.Errorf("route %+v", route.Spec)
	}
	if c = condition(t, ns, s.Name, v1alpha1.ConditionRouting, controllers.ReasonRouted); c.Status != metav1.ConditionTrue {
		t.Errorf("routed: %+v", c)
	}

	edit(t, ns, s.Name, func(s *v1alpha1.LLMInferenceService) { s.Spec.Router = nil })
	condition(t, ns, s.Name, v1alpha1.ConditionRouting, controllers.ReasonDisabled)
	gone := append(pickerObjects(), &inferencev1.InferencePool{}, &gatewayv1.HTTPRoute{})
	for _, o := range gone {
		name := picker
		switch o.(type) {
		case *inferencev1.InferencePool, *gatewayv1.HTTPRoute:
			name = s.Name
		}
		eventually(t, fmt.Sprintf("%T %s deleted", o, name), func() error { return isNotFound(get(o, ns, name)) })
	}
	must(t, get(&corev1.Service{}, ns, s.Name))
	must(t, get(&appsv1.Deployment{}, ns, s.Name))
}

// Without the InferencePool CRD, a routed service says how to install it, in its Routing condition and a
// Warning event; its Deployment and Service are written as without a router, and nothing else is.
func TestRouterWithoutInferencePoolCRD(t *testing.T) {
	ns, s := sampleIn(t, "llama-3-8b.yaml")
	s.Spec.Router = &v1alpha1.RouterSpec{}
	createUnmanaged(t, s)
	c := cfg
	c.InferencePools, c.HTTPRoutes = false, false
	rec := events.NewFakeRecorder(100)
	r := &controllers.LLMInferenceServiceReconciler{Client: k8s, Config: c, Recorder: rec}
	reconcileUntil(t, r, ns, s.Name, "the Routing condition", func() error {
		got := meta.FindStatusCondition(getService(t, ns, s.Name).Status.Conditions, v1alpha1.ConditionRouting)
		if got == nil || got.Reason != controllers.ReasonInferencePoolCRDNotInstalled {
			return fmt.Errorf("routing condition %+v", got)
		}
		return nil
	})
	got := getService(t, ns, s.Name)
	routing := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionRouting)
	if routing.Status != metav1.ConditionFalse ||
		!strings.Contains(routing.Message, "InferencePool CRD not installed: install the Gateway API Inference Extension CRDs") {
		t.Errorf("routing %+v", routing)
	}
	if ready := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady); ready == nil ||
		ready.Reason != controllers.ReasonWaitingForReadyReplica {
		t.Errorf("Ready %+v: a missing routing CRD must leave the service's readiness alone", ready)
	}
	var warned bool
	for _, e := range drain(rec) {
		warned = warned || strings.Contains(e, "Warning "+controllers.ReasonInferencePoolCRDNotInstalled+" InferencePool CRD not installed")
	}
	if !warned {
		t.Error("no Warning event says the InferencePool CRD is missing")
	}
	must(t, get(&appsv1.Deployment{}, ns, s.Name))
	svc := &corev1.Service{}
	must(t, get(svc, ns, s.Name))
	if err := get(&appsv1.Deployment{}, ns, s.Name+"-epp"); !apierrors.IsNotFound(err) {
		t.Errorf("a picker without its pool: %v", err)
	}
	if err := get(&inferencev1.InferencePool{}, ns, s.Name); !apierrors.IsNotFound(err) {
		t.Errorf("an InferencePool written against the configuration: %v", err)
	}
	noWrites(t, c, ns, s.Name)
}

// Scoring that leaves the picker no scorer, or an unknown failure mode, is refused at admission with what is
// wrong.
func TestRouterRejectsBadScoring(t *testing.T) {
	ns := namespace(t, "")
	for _, c := range []struct {
		name   string
		router v1alpha1.RouterSpec
		want   string
	}{
		{"no-scorer", v1alpha1.RouterSpec{Scoring: v1alpha1.RouterScoring{
			QueueWeight: ptr.To[int32](0), KVCacheWeight: ptr.To[int32](0), PrefixCacheWeight: ptr.To[int32](0)}},
			"at least one scoring weight must be above 0"},
		{"bad-failure-mode", v1alpha1.RouterSpec{FailureMode: "FailSometimes"}, `supported values: "FailOpen", "FailClose"`},
		{"negative-weight", v1alpha1.RouterSpec{Scoring: v1alpha1.RouterScoring{QueueWeight: ptr.To[int32](-1)}}, "should be greater than or equal to 0"},
	} {
		s := sample(t, "llama-3-8b.yaml")
		s.Namespace, s.Name = ns, c.name
		s.Spec.Router = &c.router
		err := k8s.Create(context.Background(), s)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// The operator caches only its own labelled ConfigMaps, ServiceAccounts, Roles and RoleBindings: a
// same-named ConfigMap of someone else's, which the cache does not hold, is a name conflict in the Routing
// condition, and the operator leaves it as it is.
func TestRouterNameConflictPastTheCache(t *testing.T) {
	ns, s := sampleIn(t, "llama-3-8b.yaml")
	s.Spec.Router = &v1alpha1.RouterSpec{}
	foreign := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: s.Name + "-epp"}, Data: map[string]string{"team": "payments"}}
	must(t, k8s.Create(context.Background(), foreign))
	createUnmanaged(t, s)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cached, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme, ByObject: controllers.CacheOptions().ByObject})
	must(t, err)
	go func() { _ = cached.Start(ctx) }()
	c, err := client.New(env.Config, client.Options{Scheme: env.Scheme, Cache: &client.CacheOptions{Reader: cached}})
	must(t, err)
	r := &controllers.LLMInferenceServiceReconciler{Client: c, APIReader: k8s, Config: cfg, Recorder: events.NewFakeRecorder(100)}
	reconcileUntil(t, r, ns, s.Name, "the Routing condition", func() error {
		got := meta.FindStatusCondition(getService(t, ns, s.Name).Status.Conditions, v1alpha1.ConditionRouting)
		if got == nil || got.Reason != controllers.ReasonNameConflict || !strings.Contains(got.Message, "ConfigMap "+ns+"/"+s.Name+"-epp") {
			return fmt.Errorf("routing condition %+v", got)
		}
		return nil
	})
	after := &corev1.ConfigMap{}
	must(t, get(after, ns, foreign.Name))
	if len(after.OwnerReferences) != 0 || len(after.Data) != 1 || after.Data["team"] != "payments" {
		t.Errorf("the foreign ConfigMap was changed: owners %v, data %v", after.OwnerReferences, after.Data)
	}
	if err := get(&inferencev1.InferencePool{}, ns, s.Name); !apierrors.IsNotFound(err) {
		t.Errorf("an InferencePool whose picker cannot be configured: %v", err)
	}
}
