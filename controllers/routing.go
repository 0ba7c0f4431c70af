package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	inferencev1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/llm-d/llm-d/api/v1alpha1"
)

// Reasons of the Routing condition.
const (
	ReasonRouted                       = "Routed"
	ReasonNoGateway                    = "NoGateway"
	ReasonPickerStarting               = "PickerStarting"
	ReasonPickerNotReady               = "PickerNotReady"
	ReasonPickerCannotRead             = "PickerCannotRead"
	ReasonInferencePoolCRDNotInstalled = "InferencePoolCRDNotInstalled"
	ReasonGatewayAPINotInstalled       = "GatewayAPINotInstalled"
)

// crdHint says how to install what routing needs.
const (
	inferenceCRDHint = "InferencePool CRD not installed: install the Gateway API Inference Extension CRDs " +
		"(kubectl apply -f https://github.com/kubernetes-sigs/gateway-api-inference-extension/releases/download/v1.5.0/manifests.yaml), " +
		"then restart the llm-d operator"
	gatewayCRDHint = "the Gateway API's HTTPRoute CRD is not installed: install the Gateway API " +
		"(kubectl apply -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.6.3/standard-install.yaml), " +
		"then restart the llm-d operator"
)

// +kubebuilder:rbac:groups=inference.networking.k8s.io,resources=inferencepools,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=inference.networking.x-k8s.io,resources=inferenceobjectives;inferencemodelrewrites,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=serviceaccounts;configmaps,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=delete
// +kubebuilder:rbac:groups="",resources=services,verbs=delete
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// reconcileRouting writes, for a service with spec.router, its InferencePool, its endpoint picker and its
// HTTPRoute, and removes them when the router block goes; the Routing condition says where it stands.
func (r *LLMInferenceServiceReconciler) reconcileRouting(ctx context.Context, svc *v1alpha1.LLMInferenceService) error {
	if svc.Spec.Router == nil {
		if err := r.removeRouting(ctx, svc); err != nil {
			return err
		}
		r.setCondition(svc, v1alpha1.ConditionRouting, metav1.ConditionFalse, ReasonDisabled,
			fmt.Sprintf("spec.router is not set: the Service (%s) sends each request to a pod at random", svc.Status.Endpoint))
		return nil
	}
	if !r.Config.InferencePools {
		r.setRouting(svc, metav1.ConditionFalse, ReasonInferencePoolCRDNotInstalled, inferenceCRDHint)
		return nil
	}
	if err := r.applyPicker(ctx, svc); err != nil {
		return err
	}
	notReadyReason, notReady, err := r.pickerNotReady(ctx, svc)
	if err != nil {
		return err
	}
	// A picker that may not list pods still turns ready (it has read its pool) and routes nothing: the
	// access check runs until the picker is found ready and able to read, not on every reconcile after.
	if notReady != "" || !pickerChecked(svc) {
		if msg, err := r.pickerCannotRead(ctx, svc); err != nil {
			return err
		} else if msg != "" {
			r.setRouting(svc, metav1.ConditionFalse, ReasonPickerCannotRead, msg)
			return nil
		}
	}
	if notReady != "" {
		r.setRouting(svc, metav1.ConditionFalse, notReadyReason, notReady)
		return nil
	}
	return r.reconcileHTTPRoute(ctx, svc)
}

// pickerChecked reports whether the Routing condition of the service's current generation already says
// its picker is ready and may read what it routes to.
func pickerChecked(svc *v1alpha1.LLMInferenceService) bool {
	prev := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionRouting)
	return prev != nil && prev.ObservedGeneration == svc.Generation &&
		slices.Contains([]string{ReasonRouted, ReasonNoGateway, ReasonGatewayAPINotInstalled}, prev.Reason)
}

// applyPicker applies the picker's objects and the InferencePool, the pool last, once its picker exists.
func (r *LLMInferenceServiceReconciler) applyPicker(ctx context.Context, svc *v1alpha1.LLMInferenceService) error {
	name := PickerName(svc)
	for _, o := range []client.Object{&corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}, &corev1.ConfigMap{}} {
		if err := r.notForeign(ctx, svc, o, name); err != nil {
			return err
		}
	}
	for _, o := range []struct {
		desired, live client.Object
		kind, name    string
	}{
		{BuildPickerServiceAccount(svc), &corev1.ServiceAccount{}, "ServiceAccount", name},
		{BuildPickerRole(svc), &rbacv1.Role{}, "Role", name},
		{BuildPickerRoleBinding(svc), &rbacv1.RoleBinding{}, "RoleBinding", name},
		{BuildPickerConfigMap(svc), &corev1.ConfigMap{}, "ConfigMap", name},
		{BuildPickerDeployment(svc, r.Config.EPPImage), &appsv1.Deployment{}, "Deployment", name},
		{BuildPickerService(svc), &corev1.Service{}, "Service", name},
		{BuildInferencePool(svc), &inferencev1.InferencePool{}, "InferencePool", svc.Name},
	} {
		if _, err := apply(ctx, r.Client, svc, o.desired, o.live, r.recorder(svc, o.kind, o.name), nil); err != nil {
			return err
		}
	}
	return nil
}

// notForeign fails with errNotOwned when the API server holds an object of obj's kind named name that svc
// does not control. It is for the kinds the cache holds only when labelled as the operator's: apply, which
// reads the cache, would take such an object for missing and apply over it.
func (r *LLMInferenceServiceReconciler) notForeign(ctx context.Context, svc *v1alpha1.LLMInferenceService, obj client.Object, name string) error {
	key := client.ObjectKey{Namespace: svc.Namespace, Name: name}
	if err := r.Client.Get(ctx, key, obj); !apierrors.IsNotFound(err) {
		return client.IgnoreNotFound(err) // in the cache: apply checks it
	}
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	if err := reader.Get(ctx, key, obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if metav1.IsControlledBy(obj, svc) {
		return nil
	}
	gvk, err := apiutil.GVKForObject(obj, r.Client.Scheme())
	if err != nil {
		return err
	}
	return errNotOwned{gvk.Kind, svc.Namespace, name}
}

// pickerCannotRead asks the API server whether the picker's ServiceAccount may read what the picker reads
// (the Role the operator wrote grants it, unless a policy of the cluster's takes it away); "" when it may.
func (r *LLMInferenceServiceReconciler) pickerCannotRead(ctx context.Context, svc *v1alpha1.LLMInferenceService) (string, error) {
	user := fmt.Sprintf("system:serviceaccount:%s:%s", svc.Namespace, PickerName(svc))
	var denied []string
	for _, a := range []authorizationv1.ResourceAttributes{
		{Namespace: svc.Namespace, Verb: "list", Resource: "pods"},
		{Namespace: svc.Namespace, Verb: "watch", Resource: "pods"},
		{Namespace: svc.Namespace, Verb: "get", Group: inferencev1.GroupName, Resource: "inferencepools", Name: svc.Name},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + svc.Namespace}, ResourceAttributes: &a,
		}}
		if err := r.Client.Create(ctx, sar); err != nil {
			return "", err
		}
		if !sar.Status.Allowed {
			what := a.Verb + " " + a.Resource
			if a.Group != "" {
				what += "." + a.Group
			}
			denied = append(denied, what)
		}
	}
	if len(denied) == 0 {
		return "", nil
	}
	return fmt.Sprintf("the picker's ServiceAccount %s/%s may not %s in namespace %s: it cannot see the pods it routes to; "+
		"check the RoleBinding %s and the cluster's authorization policies", svc.Namespace, PickerName(svc),
		strings.Join(denied, ", "), svc.Namespace, PickerName(svc)), nil
}

// pickerNotReady says why the picker's Deployment has no ready replica: PickerNotReady with what its pods'
// statuses tell (an image that cannot be pulled, a picker that keeps exiting), else PickerStarting; ""
// once one is ready.
func (r *LLMInferenceServiceReconciler) pickerNotReady(ctx context.Context, svc *v1alpha1.LLMInferenceService) (reason, msg string, err error) {
	dep := &appsv1.Deployment{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: svc.Namespace, Name: PickerName(svc)}, dep); err != nil {
		return "", "", err
	}
	if dep.Status.ReadyReplicas > 0 {
		return "", "", nil
	}
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.InNamespace(svc.Namespace), client.MatchingLabels(pickerSelector(svc))); err != nil {
		return "", "", err
	}
	if msg := pickerPodProblem(pods.Items, r.Config.EPPImage); msg != "" {
		return ReasonPickerNotReady, msg, nil
	}
	return ReasonPickerStarting, fmt.Sprintf("the endpoint picker %s has no ready replica yet: it is ready once it has read InferencePool %s",
		PickerName(svc), svc.Name), nil
}

// pickerPodProblem reads from the picker pods' statuses why they do not run: an image that cannot be pulled,
// or a picker that keeps exiting (its last output says why, a configuration it refuses for one).
func pickerPodProblem(pods []corev1.Pod, image string) string {
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			w := cs.State.Waiting
			if w == nil {
				continue
			}
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
				return fmt.Sprintf("pod %s cannot pull the endpoint picker's image %s (%s: %s): check the operator's --epp-image "+
					"(the chart's router.eppImage, now %s) and the registry's credentials", p.Name, cs.Image, w.Reason, w.Message, image)
			case "CrashLoopBackOff":
				out := ""
				if t := cs.LastTerminationState.Terminated; t != nil && strings.TrimSpace(t.Message) != "" {
					out = ", its last output: " + tail(strings.TrimSpace(t.Message), maxPodMessage)
				}
				return fmt.Sprintf("the endpoint picker in pod %s keeps exiting%s; see kubectl logs -n %s %s --previous",
					p.Name, out, p.Namespace, p.Name)
			}
		}
	}
	return ""
}

// reconcileHTTPRoute attaches the service to its Gateway with an HTTPRoute.
func (r *LLMInferenceServiceReconciler) reconcileHTTPRoute(ctx context.Context, svc *v1alpha1.LLMInferenceService) error {
	ready := fmt.Sprintf("InferencePool %s and its endpoint picker %s are ready", svc.Name, PickerName(svc))
	gw := gatewayOf(svc.Spec.Router.Gateway, r.Config.Gateway)
	if gw.Name == "" {
		if err := r.deleteRoute(ctx, svc); err != nil {
			return err
		}
		r.setRouting(svc, metav1.ConditionFalse, ReasonNoGateway, fmt.Sprintf(
			"%s, but no Gateway is named (spec.router.gateway, or the operator's --gateway): nothing routes through the picker; "+
				"clients reach the Service %s, which picks pods at random", ready, svc.Status.Endpoint))
		return nil
	}
	if !r.Config.HTTPRoutes {
		r.setRouting(svc, metav1.ConditionFalse, ReasonGatewayAPINotInstalled, gatewayCRDHint)
		return nil
	}
	if _, err := apply(ctx, r.Client, svc, BuildHTTPRoute(svc, gw), &gatewayv1.HTTPRoute{}, r.recorder(svc, "HTTPRoute", svc.Name), nil); err != nil {
		return err
	}
	r.setRouting(svc, metav1.ConditionTrue, ReasonRouted, fmt.Sprintf("%s; HTTPRoute %s on Gateway %s/%s sends the service's requests to it",
		ready, svc.Name, gatewayNamespace(gw, svc.Namespace), gw.Name))
	return nil
}

// gatewayOf is the Gateway a router names, else the operator's.
func gatewayOf(named *v1alpha1.GatewayRef, operator v1alpha1.GatewayRef) v1alpha1.GatewayRef {
	if named != nil {
		return *named
	}
	return operator
}

// gatewayNamespace is the Gateway's namespace: the one it names, else the route's.
func gatewayNamespace(g v1alpha1.GatewayRef, namespace string) string {
	if g.Namespace != "" {
		return g.Namespace
	}
	return namespace
}

// setRouting sets the Routing condition; a problem a person must fix also becomes a Warning event, once per
// change.
func (r *LLMInferenceServiceReconciler) setRouting(svc *v1alpha1.LLMInferenceService, s metav1.ConditionStatus, reason, msg string) {
	old := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionRouting)
	if (old == nil || old.Reason != reason || old.Message != msg) && slices.Contains([]string{ReasonInferencePoolCRDNotInstalled,
		ReasonGatewayAPINotInstalled, ReasonPickerCannotRead, ReasonPickerNotReady, ReasonNameConflict, ReasonReconcileError}, reason) {
		r.event(svc, corev1.EventTypeWarning, reason, msg)
	}
	r.setCondition(svc, v1alpha1.ConditionRouting, s, reason, msg)
}

// removeRouting deletes what the router block made, when it is gone.
func (r *LLMInferenceServiceReconciler) removeRouting(ctx context.Context, svc *v1alpha1.LLMInferenceService) error {
	name := PickerName(svc)
	objs := []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: name}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: name}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: name}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: name}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: name}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: name}},
	}
	if r.Config.InferencePools {
		objs = append(objs, &inferencev1.InferencePool{ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: svc.Name}})
	}
	for _, o := range objs {
		if err := r.deleteOwned(ctx, svc, o); err != nil {
			return err
		}
	}
	return r.deleteRoute(ctx, svc)
}

// deleteRoute deletes the service's own HTTPRoute, if it has one.
func (r *LLMInferenceServiceReconciler) deleteRoute(ctx context.Context, svc *v1alpha1.LLMInferenceService) error {
	if !r.Config.HTTPRoutes {
		return nil
	}
	return r.deleteOwned(ctx, svc, &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: svc.Name}})
}

// deleteOwned deletes obj (named by its key) if it exists and svc controls it.
func (r *LLMInferenceServiceReconciler) deleteOwned(ctx context.Context, svc *v1alpha1.LLMInferenceService, obj client.Object) error {
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(obj, svc) {
		return nil
	}
	if err := r.Client.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	gvk, err := apiutil.GVKForObject(obj, r.Client.Scheme())
	if err != nil {
		return err
	}
	kind := gvk.Kind
	r.event(svc, corev1.EventTypeNormal, "Deleted"+kind, fmt.Sprintf("spec.router changed: deleted %s %s/%s", kind, obj.GetNamespace(), obj.GetName()))
	return nil
}
