package controllers_test

import (
	"context"
	"slices"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
)

// With mutual TLS on, the operator writes the ClusterTriggerAuthentication that KEDA's trigger refers to,
// and puts it back when someone edits it.
func TestClusterTriggerAuthentication(t *testing.T) {
	ns := namespace(t, "")
	hfSecret(t, ns, "hf-token-secret")
	svc := sample(t, "llama-3-8b-autoscaling.yaml")
	svc.Namespace = ns
	must(t, k8s.Create(context.Background(), svc))
	markOnePodReady(t, ns, svc.Name)
	condition(t, ns, svc.Name, v1alpha1.ConditionAutoscaling, controllers.ReasonScaledObjectReady)

	// A second operator configuration, run by hand once, so the suite's operator (TLS off) stays as it is.
	tlsCfg := cfg
	tlsCfg.ScalerTLSSecret = "llm-d-scaler-client-tls"
	rec := events.NewFakeRecorder(100)
	r := &controllers.LLMInferenceServiceReconciler{Client: k8s, Config: tlsCfg, Recorder: rec}
	reconcile := func() {
		t.Helper()
		_, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: svc.Name}})
		must(t, err)
	}
	reconcile()
	ta := &kedav1alpha1.ClusterTriggerAuthentication{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Name: controllers.TriggerAuthenticationName}, ta))
	if len(ta.Spec.SecretTargetRef) != 3 || ta.Spec.SecretTargetRef[0].Name != tlsCfg.ScalerTLSSecret {
		t.Fatalf("spec %+v", ta.Spec)
	}
	// Cluster-scoped: the event names it without the service's namespace.
	if want := "Normal CreatedClusterTriggerAuthentication created ClusterTriggerAuthentication llm-d-scaler"; !slices.Contains(drain(rec), want) {
		t.Errorf("no event %q", want)
	}

	ta.Spec.SecretTargetRef = ta.Spec.SecretTargetRef[:1]
	must(t, k8s.Update(context.Background(), ta))
	reconcile()
	must(t, k8s.Get(context.Background(), client.ObjectKey{Name: controllers.TriggerAuthenticationName}, ta))
	if len(ta.Spec.SecretTargetRef) != 3 {
		t.Errorf("edited ClusterTriggerAuthentication not repaired: %+v", ta.Spec)
	}
	must(t, k8s.Delete(context.Background(), ta))
}
