package controllers

import (
	"crypto/sha256"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	inferencev1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/epp"
)

const (
	// ComponentPicker is LabelComponent's value on the endpoint picker's objects.
	ComponentPicker = "endpoint-picker"
	// NamePicker is the app.kubernetes.io/name of the picker's pods: not NameVLLM, so that neither the
	// service's Service, its InferencePool nor the scaler ever takes a picker pod for a model server.
	NamePicker = "llm-d-epp"
	// pickerConfigKey is the ConfigMap key of the picker's EndpointPickerConfig.
	pickerConfigKey = "config.yaml"
	pickerConfigDir = "/etc/llm-d-epp"
	// pickerConfigHash on the pod template rolls the picker when its configuration changes: it reads the
	// file once, at startup.
	pickerConfigHash = "inference.llm-d.ai/picker-config-sha256"
)

// PickerName is the name of a service's endpoint picker: its Deployment, Service, ServiceAccount, Role,
// RoleBinding and ConfigMap.
func PickerName(svc *v1alpha1.LLMInferenceService) string { return svc.Name + "-epp" }

// pickerSelector selects a service's picker pods.
func pickerSelector(svc *v1alpha1.LLMInferenceService) map[string]string {
	return map[string]string{contract.LabelName: NamePicker, contract.LabelInstance: svc.Name}
}

// pickerLabels are the labels of the picker's objects.
func pickerLabels(svc *v1alpha1.LLMInferenceService) map[string]string {
	l := Labels(svc, ComponentPicker)
	l[contract.LabelName] = NamePicker
	return l
}

// Scoring is the picker's scoring for a router block: the extension's defaults where the block sets none.
func Scoring(r *v1alpha1.RouterSpec) epp.Scoring {
	s := epp.DefaultScoring()
	if r == nil {
		return s
	}
	weight := func(w *int32, into *float64) {
		if w != nil {
			*into = float64(*w)
		}
	}
	weight(r.Scoring.QueueWeight, &s.Queue)
	weight(r.Scoring.KVCacheWeight, &s.KVCache)
	weight(r.Scoring.PrefixCacheWeight, &s.PrefixCache)
	if r.Scoring.Picker == v1alpha1.PickerWeightedRandom {
		s.Picker = epp.WeightedRandom
	}
	return s
}

// failureMode is the router's failure mode (the CRD default, for objects the API server did not default).
func failureMode(r *v1alpha1.RouterSpec) inferencev1.EndpointPickerFailureMode {
	if r.FailureMode == v1alpha1.FailOpen {
		return inferencev1.EndpointPickerFailOpen
	}
	return inferencev1.EndpointPickerFailClose
}

// BuildInferencePool builds the InferencePool of a service's model server pods (port 8000, vLLM's), whose
// endpoint picker is the service's picker.
func BuildInferencePool(svc *v1alpha1.LLMInferenceService) *inferencev1.InferencePool {
	sel := map[inferencev1.LabelKey]inferencev1.LabelValue{}
	for k, v := range contract.SelectorLabels(svc.Name) {
		sel[inferencev1.LabelKey(k)] = inferencev1.LabelValue(v)
	}
	return &inferencev1.InferencePool{
		ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Labels: Labels(svc, ComponentServer)},
		Spec: inferencev1.InferencePoolSpec{
			Selector:    inferencev1.LabelSelector{MatchLabels: sel},
			TargetPorts: []inferencev1.Port{{Number: contract.HTTPPort}},
			EndpointPickerRef: &inferencev1.EndpointPickerRef{
				Kind:        "Service",
				Name:        inferencev1.ObjectName(PickerName(svc)),
				Port:        &inferencev1.Port{Number: epp.PortGRPC},
				FailureMode: failureMode(svc.Spec.Router),
			},
		},
	}
}

// BuildPickerServiceAccount builds the picker's ServiceAccount.
func BuildPickerServiceAccount(svc *v1alpha1.LLMInferenceService) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: pickerMeta(svc)}
}

// BuildPickerRole builds what the picker may read, in the service's namespace only: the pods it routes to
// and its InferencePool, and the extension's InferenceObjective and InferenceModelRewrite, which it watches
// when their CRDs are installed. Nothing else, and nothing it may write.
func BuildPickerRole(svc *v1alpha1.LLMInferenceService) *rbacv1.Role {
	read := []string{"get", "list", "watch"}
	return &rbacv1.Role{
		ObjectMeta: pickerMeta(svc),
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: read},
			{APIGroups: []string{inferencev1.GroupName}, Resources: []string{"inferencepools"}, Verbs: read},
			{APIGroups: []string{"inference.networking.x-k8s.io"}, Resources: []string{"inferenceobjectives", "inferencemodelrewrites"}, Verbs: read},
		},
	}
}

// BuildPickerRoleBinding grants the picker's Role to its ServiceAccount.
func BuildPickerRoleBinding(svc *v1alpha1.LLMInferenceService) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: pickerMeta(svc),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: PickerName(svc)},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: PickerName(svc), Namespace: svc.Namespace}},
	}
}

// BuildPickerConfigMap builds the picker's scoring configuration.
func BuildPickerConfigMap(svc *v1alpha1.LLMInferenceService) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: pickerMeta(svc),
		Data:       map[string]string{pickerConfigKey: Scoring(svc.Spec.Router).Config()},
	}
}

// PickerArgs are the picker's command-line flags for a service's pool: its ports (the extension's
// defaults), its configuration file, no authentication on its metrics (it would need cluster-wide token and
// access reviews) and no tracing or pprof.
func PickerArgs(svc *v1alpha1.LLMInferenceService) []string {
	return []string{
		"--pool-name=" + svc.Name,
		"--pool-namespace=" + svc.Namespace,
		"--config-file=" + pickerConfigDir + "/" + pickerConfigKey,
		fmt.Sprintf("--grpc-port=%d", epp.PortGRPC),
		fmt.Sprintf("--grpc-health-port=%d", epp.PortHealth),
		fmt.Sprintf("--metrics-port=%d", epp.PortMetrics),
		"--metrics-endpoint-auth=false",
		"--tracing=false",
		"--enable-pprof=false",
	}
}

// BuildPickerDeployment builds the picker's Deployment: one replica of image (the operator's --epp-image),
// ready once it has read its InferencePool (its gRPC health check), restricted to what the restricted pod
// security standard allows.
func BuildPickerDeployment(svc *v1alpha1.LLMInferenceService, image string) *appsv1.Deployment {
	labels := pickerLabels(svc)
	config := sha256.Sum256([]byte(Scoring(svc.Spec.Router).Config()))
	probe := func(period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: epp.PortHealth}},
			PeriodSeconds:    period,
			FailureThreshold: failures,
		}
	}
	return &appsv1.Deployment{
		ObjectMeta: pickerMeta(svc),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: pickerSelector(svc)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{pickerConfigHash: fmt.Sprintf("%x", config)}},
				Spec: corev1.PodSpec{
					ServiceAccountName: PickerName(svc),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:  "epp",
						Image: image,
						Args:  PickerArgs(svc),
						Ports: []corev1.ContainerPort{
							{Name: "grpc", ContainerPort: epp.PortGRPC, Protocol: corev1.ProtocolTCP},
							{Name: "grpc-health", ContainerPort: epp.PortHealth, Protocol: corev1.ProtocolTCP},
							{Name: MetricsPortName, ContainerPort: epp.PortMetrics, Protocol: corev1.ProtocolTCP},
						},
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi"),
						}},
						ReadinessProbe:           probe(5, 3),
						LivenessProbe:            probe(10, 6),
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: pickerConfigDir, ReadOnly: true}},
					}},
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: PickerName(svc)},
					}}}},
					EnableServiceLinks: ptr.To(false),
				},
			},
		},
	}
}

// BuildPickerService builds the Service the InferencePool's endpointPickerRef names: the picker's ext_proc
// port, which gateways reach over HTTP/2, and its metrics.
func BuildPickerService(svc *v1alpha1.LLMInferenceService) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: pickerMeta(svc),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: pickerSelector(svc),
			Ports: []corev1.ServicePort{
				{Name: "grpc", Port: epp.PortGRPC, TargetPort: intstr.FromString("grpc"), Protocol: corev1.ProtocolTCP,
					AppProtocol: ptr.To("http2")},
				{Name: MetricsPortName, Port: epp.PortMetrics, TargetPort: intstr.FromString(MetricsPortName), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}

// BuildHTTPRoute builds the route on gateway that sends all of a service's traffic to its InferencePool.
func BuildHTTPRoute(svc *v1alpha1.LLMInferenceService, gateway v1alpha1.GatewayRef) *gatewayv1.HTTPRoute {
	return &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Labels: Labels(svc, ComponentServer)},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{parentRef(gateway, svc.Namespace)}},
			Rules: []gatewayv1.HTTPRouteRule{{
				Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{
					Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/"),
				}}},
				BackendRefs: []gatewayv1.HTTPBackendRef{poolBackend(svc.Name)},
			}},
		},
	}
}

func parentRef(g v1alpha1.GatewayRef, namespace string) gatewayv1.ParentReference {
	return gatewayv1.ParentReference{
		Group: ptr.To(gatewayv1.Group(gatewayv1.GroupName)), Kind: ptr.To(gatewayv1.Kind("Gateway")),
		Name: gatewayv1.ObjectName(g.Name), Namespace: ptr.To(gatewayv1.Namespace(gatewayNamespace(g, namespace))),
	}
}

func poolBackend(name string) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
		Group: ptr.To(gatewayv1.Group(inferencev1.GroupName)), Kind: ptr.To(gatewayv1.Kind("InferencePool")),
		Name: gatewayv1.ObjectName(name),
	}}}
}

func pickerMeta(svc *v1alpha1.LLMInferenceService) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: PickerName(svc), Namespace: svc.Namespace, Labels: pickerLabels(svc)}
}
