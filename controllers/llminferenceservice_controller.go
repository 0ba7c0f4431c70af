package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	inferencev1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/vram"
)

// Reasons of the conditions an LLMInferenceService carries.
const (
	ReasonAvailable                   = "Available"
	ReasonWaitingForReadyReplica      = "WaitingForReadyReplica"
	ReasonScaledToZero                = "ScaledToZero"
	ReasonNameConflict                = "NameConflict"
	ReasonReconcileError              = "ReconcileError"
	ReasonDisabled                    = "Disabled"
	ReasonWaitingForFirstReadyReplica = "WaitingForFirstReadyReplica"
	ReasonScaledObjectReady           = "ScaledObjectReady"
	ReasonKEDANotInstalled            = "KEDANotInstalled"
	ReasonInvalidAutoscaling          = "InvalidAutoscaling"
	ReasonNone                        = "None"
	ReasonSpecWarnings                = "SpecWarnings"
	ReasonVRAMMisfit                  = "VRAMMisfit"
)

// LLMInferenceServiceReconciler turns each LLMInferenceService into a Deployment, a Service, a model-cache
// PersistentVolumeClaim and, with autoscaling, a KEDA ScaledObject.
type LLMInferenceServiceReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Config   Config
	// APIReader reads from the API server, past the cache, which holds only the operator's labelled
	// ConfigMaps, ServiceAccounts, Roles and RoleBindings (CacheOptions): a same-named object of someone
	// else's is found there. SetupWithManager sets the manager's; nil means Client.
	APIReader client.Reader
}

// +kubebuilder:rbac:groups=inference.llm-d.ai,resources=llminferenceservices,verbs=get;list;watch
// +kubebuilder:rbac:groups=inference.llm-d.ai,resources=llminferenceservices/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=services;persistentvolumeclaims,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=keda.sh,resources=scaledobjects,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;create;update

// Reconcile brings one service's objects and status to match its spec.
func (r *LLMInferenceServiceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	svc := &v1alpha1.LLMInferenceService{}
	if err := r.Client.Get(ctx, req.NamespacedName, svc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !svc.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // owner references take everything with it
	}
	before := svc.Status.DeepCopy()
	st := &svc.Status
	st.ObservedGeneration = svc.Generation
	st.Endpoint = Endpoint(svc, r.Config.ClusterDomain)
	st.Selector = Selector(svc)

	var claimWarnings []string
	err := r.reconcileObjects(ctx, svc, &claimWarnings)
	r.setWarnings(svc, claimWarnings)
	if err == nil {
		err = r.routing(ctx, svc)
	}
	var conflict errNotOwned
	switch {
	case errors.As(err, &conflict):
		r.setReady(svc, metav1.ConditionFalse, ReasonNameConflict, conflict.Error())
		err = nil // a person must act; the watch on that object brings us back
	case apierrors.IsConflict(err):
		// Another writer changed an object between our read and our write: read again, quietly.
		return ctrl.Result{Requeue: true}, r.writeStatus(ctx, svc, before)
	case errors.As(err, new(routingError)):
	case err != nil:
		r.setReady(svc, metav1.ConditionFalse, ReasonReconcileError, err.Error())
	}
	if serr := r.writeStatus(ctx, svc, before); serr != nil && err == nil {
		err = serr
	}
	return ctrl.Result{}, err
}

// routing reconciles the service's routing: what goes wrong there goes into the Routing condition only,
// and the service's other objects and conditions stand. Errors other than a name conflict are returned, to
// retry.
func (r *LLMInferenceServiceReconciler) routing(ctx context.Context, svc *v1alpha1.LLMInferenceService) error {
	err := r.reconcileRouting(ctx, svc)
	var conflict errNotOwned
	switch {
	case errors.As(err, &conflict):
		r.setRouting(svc, metav1.ConditionFalse, ReasonNameConflict, conflict.Error())
		return nil
	case apierrors.IsConflict(err):
		return err
	case err != nil:
		r.setRouting(svc, metav1.ConditionFalse, ReasonReconcileError, "writing the router's objects: "+err.Error())
		return routingError{err}
	}
	return nil
}

// routingError is a failure of routing alone: it is retried without touching the Ready condition.
type routingError struct{ err error }

func (e routingError) Error() string { return e.err.Error() }
func (e routingError) Unwrap() error { return e.err }

// reconcileObjects applies the PVC, the Deployment, the Service and the ScaledObject, and sets the Ready
// and Autoscaling conditions from what it finds.
func (r *LLMInferenceServiceReconciler) reconcileObjects(ctx context.Context, svc *v1alpha1.LLMInferenceService, warnings *[]string) error {
	desiredPVC := BuildModelCache(svc, r.Config)
	if _, err := apply(ctx, r.Client, svc, desiredPVC, &corev1.PersistentVolumeClaim{},
		r.recorder(svc, "PersistentVolumeClaim", desiredPVC.Name), keepImmutableClaimFields(desiredPVC, warnings)); err != nil {
		return err
	}

	if msg, err := r.vramMisfit(ctx, svc); err != nil {
		return err
	} else if msg != "" {
		// Refused before any pod exists: a pod that cannot hold the model only crash-loops on a GPU.
		r.setReady(svc, metav1.ConditionFalse, ReasonVRAMMisfit, msg)
		return nil
	}

	autoscaling := svc.Spec.Autoscaling != nil && svc.Spec.Autoscaling.Enabled
	dep, err := apply(ctx, r.Client, svc, BuildDeployment(svc, r.Config), &appsv1.Deployment{},
		r.recorder(svc, "Deployment", svc.Name), func(live *appsv1.Deployment) ([][]string, error) {
			if !autoscaling {
				return nil, nil
			}
			return [][]string{{"spec", "replicas"}}, r.handReplicasToHPA(ctx, svc, live)
		})
	if err != nil {
		return err
	}

	if _, err := apply(ctx, r.Client, svc, BuildService(svc), &corev1.Service{},
		r.recorder(svc, "Service", svc.Name), nil); err != nil {
		return err
	}

	svc.Status.Replicas = dep.Status.Replicas
	svc.Status.ReadyReplicas = dep.Status.ReadyReplicas
	if svc.Status.GPUProduct, err = r.gpuProduct(ctx, svc); err != nil {
		return err
	}
	switch {
	case dep.Status.ReadyReplicas > 0:
		r.setReady(svc, metav1.ConditionTrue, ReasonAvailable,
			fmt.Sprintf("%d of %d replicas serve %s", dep.Status.ReadyReplicas, dep.Status.Replicas, svc.Status.Endpoint))
	case dep.Spec.Replicas != nil && *dep.Spec.Replicas == 0:
		r.setReady(svc, metav1.ConditionFalse, ReasonScaledToZero, "replicas is 0: no pod serves requests")
	default:
		pods := &corev1.PodList{}
		if err := r.Client.List(ctx, pods, client.InNamespace(svc.Namespace), client.MatchingLabels(contract.SelectorLabels(svc.Name))); err != nil {
			return err
		}
		if problems := podProblems(svc, pods.Items); len(problems) > 0 {
			msgs := make([]string, len(problems))
			for i, p := range problems {
				msgs[i] = p.message
			}
			r.setReady(svc, metav1.ConditionFalse, problems[0].reason, strings.Join(msgs, "; "))
			break
		}
		r.setReady(svc, metav1.ConditionFalse, ReasonWaitingForReadyReplica,
			"no replica is ready yet: a first start downloads the weights (minutes), later starts load them from the cache")
	}
	return r.reconcileScaledObject(ctx, svc, dep, autoscaling)
}

// gpuProduct is the nvidia.com/gpu.product label most common among the nodes of the service's ready pods;
// "" when none of them carries it.
func (r *LLMInferenceServiceReconciler) gpuProduct(ctx context.Context, svc *v1alpha1.LLMInferenceService) (string, error) {
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.InNamespace(svc.Namespace), client.MatchingLabels(contract.SelectorLabels(svc.Name))); err != nil {
		return "", err
	}
	count := map[string]int{}
	best := ""
	for _, p := range pods.Items {
		if _, ready := firstReady(&p); p.Spec.NodeName == "" || !ready {
			continue
		}
		node := &metav1.PartialObjectMetadata{}
		node.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
		if err := r.Client.Get(ctx, client.ObjectKey{Name: p.Spec.NodeName}, node); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return "", err
		}
		product := node.Labels[contract.LabelGPUProduct]
		if product == "" {
			continue
		}
		count[product]++
		if c := count[product]; c > count[best] || c == count[best] && product < best {
			best = product
		}
	}
	return best, nil
}

// reconcileScaledObject creates the ScaledObject once the first replica is ready (so the scaler has a pod to
// measure: a decision needs one pod's metrics), keeps it in sync, and removes it when autoscaling is turned off.
func (r *LLMInferenceServiceReconciler) reconcileScaledObject(ctx context.Context, svc *v1alpha1.LLMInferenceService,
	dep *appsv1.Deployment, autoscaling bool) error {
	if !r.Config.KEDA {
		if autoscaling {
			r.setCondition(svc, v1alpha1.ConditionAutoscaling, metav1.ConditionFalse, ReasonKEDANotInstalled,
				"the keda.sh/v1alpha1 ScaledObject API is not served: install KEDA, then restart the llm-d operator")
		} else {
			r.setCondition(svc, v1alpha1.ConditionAutoscaling, metav1.ConditionFalse, ReasonDisabled, "autoscaling.enabled is false")
		}
		svc.Status.ScaledObject = ""
		return nil
	}
	live := &kedav1alpha1.ScaledObject{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}, live)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if exists && !metav1.IsControlledBy(live, svc) {
		return errNotOwned{"ScaledObject", live.Namespace, live.Name}
	}

	if !autoscaling {
		if exists {
			if err := r.Client.Delete(ctx, live); client.IgnoreNotFound(err) != nil {
				return err
			}
			r.event(svc, corev1.EventTypeNormal, "ScaledObjectDeleted",
				fmt.Sprintf("autoscaling disabled: deleted ScaledObject %s; the Deployment runs spec.replicas", live.Name))
		}
		svc.Status.ScaledObject = ""
		r.setCondition(svc, v1alpha1.ConditionAutoscaling, metav1.ConditionFalse, ReasonDisabled,
			"autoscaling.enabled is false: the Deployment runs spec.replicas")
		return nil
	}
	if msg := invalidAutoscaling(svc.Spec.Autoscaling); msg != "" {
		// Only a spec stored before a validation rule existed (or with validation off) gets here. KEDA would refuse such a
		// ScaledObject; an existing one keeps the last valid bounds.
		old := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionAutoscaling)
		if old == nil || old.Reason != ReasonInvalidAutoscaling || old.Message != msg {
			r.event(svc, corev1.EventTypeWarning, ReasonInvalidAutoscaling, msg)
		}
		r.setCondition(svc, v1alpha1.ConditionAutoscaling, metav1.ConditionFalse, ReasonInvalidAutoscaling, msg)
		return nil
	}
	if !exists && dep.Status.ReadyReplicas == 0 {
		svc.Status.ScaledObject = ""
		r.setCondition(svc, v1alpha1.ConditionAutoscaling, metav1.ConditionFalse, ReasonWaitingForFirstReadyReplica,
			"autoscaling starts once the first replica is ready, so that the scaler has a pod to measure")
		return nil
	}
	if r.Config.ScalerTLSSecret != "" {
		res, err := ensureTriggerAuthentication(ctx, r.Client, r.Config)
		if err != nil {
			return err
		}
		r.recordApply(svc, "ClusterTriggerAuthentication", "", TriggerAuthenticationName, res) // cluster-scoped
	}
	so, err := apply(ctx, r.Client, svc, BuildScaledObject(svc, r.Config), &kedav1alpha1.ScaledObject{},
		r.recorder(svc, "ScaledObject", svc.Name), nil)
	if err != nil {
		return err
	}
	svc.Status.ScaledObject = so.Name
	r.setCondition(svc, v1alpha1.ConditionAutoscaling, metav1.ConditionTrue, ReasonScaledObjectReady,
		fmt.Sprintf("ScaledObject %s hands the replica count (%d to %d) to the llm-d scaler at %s",
			so.Name, svc.Spec.Autoscaling.MinReplicas, svc.Spec.Autoscaling.MaxReplicas, r.Config.ScalerAddress))
	return nil
}

// invalidAutoscaling says what the API server's validation would refuse in an autoscaling block, for
// objects stored before a rule existed; "" when it is usable.
func invalidAutoscaling(a *v1alpha1.AutoscalingSpec) string {
	switch {
	case a.MinReplicas < 1:
		return fmt.Sprintf("autoscaling.minReplicas is %d: it must be at least 1; fix the spec (no ScaledObject is written until then)", a.MinReplicas)
	case a.MaxReplicas < a.MinReplicas:
		return fmt.Sprintf("autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d): fix the spec (no ScaledObject is written until then)",
			a.MinReplicas, a.MaxReplicas)
	}
	return ""
}

// vramMisfit says, with the numbers, why the service cannot fit the largest GPU of the cluster (as GPU
// feature discovery labels nodes); "" when it fits, when it asks for no GPU, or when nothing is known.
func (r *LLMInferenceServiceReconciler) vramMisfit(ctx context.Context, svc *v1alpha1.LLMInferenceService) (string, error) {
	v, ok := vram.Estimate(svc)
	if !ok || contract.GPUsPerReplica(svc.Spec.Resources) == 0 {
		return "", nil
	}
	nodes, err := gpuNodes(ctx, r.Client)
	if err != nil {
		return "", err
	}
	if fits, msg := fitsSomeGPU(v, nodes); !fits {
		return svc.Spec.Model.ID + " " + msg, nil
	}
	return "", nil
}

// setWarnings sets the ConfigurationWarning condition from the spec and from what the live objects
// cannot take (extra).
func (r *LLMInferenceServiceReconciler) setWarnings(svc *v1alpha1.LLMInferenceService, extra []string) {
	w := append(ConfigurationWarnings(svc), extra...)
	if len(w) == 0 {
		r.setCondition(svc, v1alpha1.ConditionConfigurationWarning, metav1.ConditionFalse, ReasonNone, "the spec raises no warning")
		return
	}
	msg := strings.Join(w, "; ")
	old := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionConfigurationWarning)
	if old == nil || old.Status != metav1.ConditionTrue || old.Message != msg {
		r.event(svc, corev1.EventTypeWarning, ReasonSpecWarnings, msg)
	}
	r.setCondition(svc, v1alpha1.ConditionConfigurationWarning, metav1.ConditionTrue, ReasonSpecWarnings, msg)
}

// setReady sets the Ready condition; a problem a person must fix also becomes a Warning event, once per change.
func (r *LLMInferenceServiceReconciler) setReady(svc *v1alpha1.LLMInferenceService, s metav1.ConditionStatus, reason, msg string) {
	old := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionReady)
	fresh := old == nil || old.Reason != reason || old.Message != msg
	if fresh && slices.Contains([]string{ReasonSecretNotFound, ReasonSecretKeyNotFound, ReasonImagePullFailed, ReasonCrashLoopBackOff,
		ReasonNameConflict, ReasonReconcileError, ReasonVRAMMisfit}, reason) {
		r.event(svc, corev1.EventTypeWarning, reason, msg)
	}
	r.setCondition(svc, v1alpha1.ConditionReady, s, reason, msg)
}

func (r *LLMInferenceServiceReconciler) setCondition(svc *v1alpha1.LLMInferenceService, t string, s metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&svc.Status.Conditions, metav1.Condition{
		Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: svc.Generation,
	})
}

// writeStatus writes the status only when it changed, so a steady state costs no write.
func (r *LLMInferenceServiceReconciler) writeStatus(ctx context.Context, svc *v1alpha1.LLMInferenceService, before *v1alpha1.LLMInferenceServiceStatus) error {
	if equality.Semantic.DeepEqual(before, &svc.Status) {
		return nil
	}
	err := r.Client.Status().Update(ctx, svc)
	if apierrors.IsConflict(err) {
		return nil // a newer generation is queued; its reconcile writes the status
	}
	return err
}

// recordApply reports a managed object written; namespace "" is a cluster-scoped object.
func (r *LLMInferenceServiceReconciler) recordApply(svc *v1alpha1.LLMInferenceService, kind, namespace, name string, res result) {
	if res == unchanged {
		return
	}
	ref := name
	if namespace != "" {
		ref = namespace + "/" + name
	}
	msg := fmt.Sprintf("%s %s %s", strings.ToLower(string(res)), kind, ref)
	if res == migrated {
		msg += ": the fields earlier operator versions wrote by update now belong to server-side apply manager " + FieldManager
	}
	r.event(svc, corev1.EventTypeNormal, string(res)+kind, msg)
	log.Log.WithName("llminferenceservice").Info(string(res), "kind", kind, "namespace", namespace, "name", name)
}

// recorder reports the writes apply makes to one of the service's objects.
func (r *LLMInferenceServiceReconciler) recorder(svc *v1alpha1.LLMInferenceService, kind, name string) func(result) {
	return func(res result) { r.recordApply(svc, kind, svc.Namespace, name, res) }
}

// handReplicasToHPA parks Deployment.spec.replicas, at its live value, with handoverManager when the
// operator still owns it while autoscaling is on, so that the operator's apply without replicas does not
// remove it. The HPA takes the field over with its first scale; turning autoscaling off takes it back,
// as the operator's apply forces its fields.
func (r *LLMInferenceServiceReconciler) handReplicasToHPA(ctx context.Context, svc *v1alpha1.LLMInferenceService, live *appsv1.Deployment) error {
	if live.Spec.Replicas == nil || !ownsField(live, FieldManager, "spec", "replicas") {
		return nil
	}
	cfg := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": live.Name, "namespace": live.Namespace},
		"spec":     map[string]any{"replicas": int64(*live.Spec.Replicas)},
	}}
	cfg.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("Deployment"))
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(cfg), client.FieldOwner(handoverManager)); err != nil {
		return err
	}
	r.event(svc, corev1.EventTypeNormal, "ReplicasHandedOver", fmt.Sprintf(
		"autoscaling is on: Deployment %s/%s keeps %d replicas until the HPA scales it; the operator no longer sets spec.replicas",
		live.Namespace, live.Name, *live.Spec.Replicas))
	return nil
}

// keepImmutableClaimFields adjusts the desired model cache to an existing claim: its access modes and
// storage class cannot change after creation, and its size only grows. A spec that asks for another
// access mode or class gets a warning that says how to apply it.
func keepImmutableClaimFields(desired *corev1.PersistentVolumeClaim, warnings *[]string) func(*corev1.PersistentVolumeClaim) ([][]string, error) {
	return func(live *corev1.PersistentVolumeClaim) ([][]string, error) {
		recreate := fmt.Sprintf("a claim's access modes and storage class cannot change: to apply it, delete the claim "+
			"(kubectl delete pvc %s -n %s; the weights are downloaded again) and the operator recreates it", live.Name, live.Namespace)
		if !slices.Equal(desired.Spec.AccessModes, live.Spec.AccessModes) {
			*warnings = append(*warnings, fmt.Sprintf("modelCache.accessMode is %s but PersistentVolumeClaim %s has %s: %s",
				desired.Spec.AccessModes[0], live.Name, live.Spec.AccessModes, recreate))
		}
		if desired.Spec.StorageClassName != nil && ptr.Deref(live.Spec.StorageClassName, "") != *desired.Spec.StorageClassName {
			*warnings = append(*warnings, fmt.Sprintf("the model cache's storage class is %s but PersistentVolumeClaim %s has %q: %s",
				*desired.Spec.StorageClassName, live.Name, ptr.Deref(live.Spec.StorageClassName, ""), recreate))
		}
		desired.Spec.AccessModes = live.Spec.AccessModes
		desired.Spec.StorageClassName = live.Spec.StorageClassName
		want := desired.Spec.Resources.Requests[corev1.ResourceStorage]
		if have, ok := live.Spec.Resources.Requests[corev1.ResourceStorage]; ok && have.Cmp(want) > 0 {
			desired.Spec.Resources.Requests[corev1.ResourceStorage] = have
		}
		return nil, nil
	}
}

func (r *LLMInferenceServiceReconciler) event(svc *v1alpha1.LLMInferenceService, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(svc, nil, typ, reason, "Reconcile", "%s", msg)
	}
}

// SetupWithManager registers the controller: it watches services, the objects they own, their model
// server and endpoint picker pods (whose status tells a missing Secret or image) and node labels.
func (r *LLMInferenceServiceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.LLMInferenceService{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.PersistentVolumeClaim{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(serviceOfPod), builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool {
				old, okOld := e.ObjectOld.(*corev1.Pod)
				cur, okNew := e.ObjectNew.(*corev1.Pod)
				return okOld && okNew && podProblemsChanged(old, cur)
			},
		})).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.allServices), builder.OnlyMetadata,
			builder.WithPredicates(predicate.LabelChangedPredicate{}))
	if r.Config.KEDA {
		b = b.Owns(&kedav1alpha1.ScaledObject{})
	}
	b = b.Owns(&corev1.ServiceAccount{}).Owns(&corev1.ConfigMap{}).Owns(&rbacv1.Role{}).Owns(&rbacv1.RoleBinding{})
	if r.Config.InferencePools {
		b = b.Owns(&inferencev1.InferencePool{})
	}
	if r.Config.HTTPRoutes {
		b = b.Owns(&gatewayv1.HTTPRoute{})
	}
	return b.Complete(r)
}

// serviceOfPod maps a model server or endpoint picker pod to its service, by the labels the operator gives
// its pods.
func serviceOfPod(_ context.Context, o client.Object) []reconcile.Request {
	l := o.GetLabels()
	if l[contract.LabelManagedBy] != contract.ManagedByValue || !slices.Contains([]string{ComponentServer, ComponentPicker}, l[LabelComponent]) ||
		l[contract.LabelInstance] == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: l[contract.LabelInstance]}}}
}

// allServices re-checks every service when node labels change: GPU memory may now fit, or no longer.
func (r *LLMInferenceServiceReconciler) allServices(ctx context.Context, _ client.Object) []reconcile.Request {
	list := &v1alpha1.LLMInferenceServiceList{}
	if err := r.Client.List(ctx, list); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, s := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
	}
	return reqs
}
