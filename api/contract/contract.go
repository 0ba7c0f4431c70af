// Package contract holds the names and numbers the operator, the scaler and the model server pods agree on:
// the labels the operator puts on what it creates and the scaler selects on, the port vLLM serves its API and
// metrics on, the metadata keys of the KEDA trigger the operator writes and the scaler reads, and how many
// GPUs a replica takes. Both sides import it and nothing else of each other, so it imports only the standard
// library and Kubernetes' core types. It also holds the policies both sides must apply alike: the HPA
// behavior the operator writes and the simulator models, and the API's default scale-down window, which the
// scaler applies to services built without the API server's defaulting.
package contract

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const (
	// LabelManagedBy marks everything the operator creates; ServiceMonitors and the scaler select on it.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is LabelManagedBy's value on everything the operator creates.
	ManagedByValue = "llm-d"
	// LabelInstance carries the LLMInferenceService's name.
	LabelInstance = "app.kubernetes.io/instance"
	// LabelName names the application.
	LabelName = "app.kubernetes.io/name"
	// NameVLLM is LabelName's value on model server pods.
	NameVLLM = "vllm"

	// LabelGPUProduct, LabelGPUMemory (MiB per GPU) and LabelGPUReplicas (pods sharing a time-sliced GPU)
	// are the node labels NVIDIA's GPU feature discovery sets: the operator places pods and checks memory by
	// them, and reports the product its pods run on for the scaler's capacity prior.
	LabelGPUProduct  = "nvidia.com/gpu.product"
	LabelGPUMemory   = "nvidia.com/gpu.memory"
	LabelGPUReplicas = "nvidia.com/gpu.replicas"

	// ContainerName is the name of the vLLM container in every model server pod.
	ContainerName = "vllm"
	// HTTPPort is the port vLLM listens on, for the OpenAI API and /metrics alike.
	HTTPPort = 8000

	// MetadataScalerAddress is the KEDA external trigger's metadata key for the scaler's gRPC address.
	MetadataScalerAddress = "scalerAddress"
	// MetadataService is the KEDA external trigger's metadata key naming the LLMInferenceService to scale
	// (in the ScaledObject's namespace).
	MetadataService = "service"

	// GPUResource is the extended resource NVIDIA's device plugin advertises.
	GPUResource corev1.ResourceName = "nvidia.com/gpu"
)

// SelectorLabels select the model server pods of the LLMInferenceService named service. They are immutable
// once the Deployment exists.
func SelectorLabels(service string) map[string]string {
	return map[string]string{LabelName: NameVLLM, LabelInstance: service}
}

// GPUsPerReplica is the number of GPUs one replica with resources r requests: the limit when one is set (the
// API server then copies it into requests), else the request.
func GPUsPerReplica(r corev1.ResourceRequirements) int64 {
	if q, ok := r.Limits[GPUResource]; ok {
		return q.Value()
	}
	if q, ok := r.Requests[GPUResource]; ok {
		return q.Value()
	}
	return 0
}

// DefaultScaleDownStabilizationSeconds is spec.autoscaling.scaleDownStabilizationSeconds when unset: the
// CRD's +kubebuilder:default, which the API server applies (a test compares the two).
const DefaultScaleDownStabilizationSeconds = 300

// HPAPeriodSeconds is the HPA's default sync period; the rate limits of HPABehavior are per sync.
const HPAPeriodSeconds = 15

// HPABehavior is the behavior the operator writes into every ScaledObject's HPA, and the one the simulator
// models. The scaler's number already is the decision (the scaler owns the scale-down stabilization window),
// so the HPA must not decide again: no stabilization window (two windows would compound), no tolerance (the
// default 10 % would swallow 10 -> 11), and scale-down to the scaler's number in one sync. Scale-up keeps the
// HPA's default rate limit, the larger of +100 % and +4 pods per sync, as a guard against a runaway signal.
func HPABehavior() *autoscalingv2.HorizontalPodAutoscalerBehavior {
	rules := func(policies ...autoscalingv2.HPAScalingPolicy) *autoscalingv2.HPAScalingRules {
		window, selectMax, zero := int32(0), autoscalingv2.MaxChangePolicySelect, resource.MustParse("0")
		return &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &window, SelectPolicy: &selectMax,
			Policies: policies, Tolerance: &zero}
	}
	percent := func(v int32) autoscalingv2.HPAScalingPolicy {
		return autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: v, PeriodSeconds: HPAPeriodSeconds}
	}
	pods := func(v int32) autoscalingv2.HPAScalingPolicy {
		return autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: v, PeriodSeconds: HPAPeriodSeconds}
	}
	return &autoscalingv2.HorizontalPodAutoscalerBehavior{
		ScaleUp:   rules(percent(100), pods(4)),
		ScaleDown: rules(percent(100)),
	}
}
