// Package contract holds the names and numbers the operator, the scaler and the model server pods agree on:
// the labels the operator puts on what it creates and the scaler selects on, the port vLLM serves its API and
// metrics on, the metadata keys of the KEDA trigger the operator writes and the scaler reads, and how many
// GPUs a replica takes. Both sides import it and nothing else of each other, so it imports only the standard
// library and Kubernetes' core types.
package contract

import corev1 "k8s.io/api/core/v1"

const (
	// LabelManagedBy marks everything the operator creates; ServiceMonitors and the scaler select on it.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is LabelManagedBy's value on everything the operator creates.
	ManagedByValue = "llm-d"
	// LabelInstance carries the LLMInferenceService's name.
	LabelInstance = "app.kubernetes.io/instance"
	// LabelName names the application.
	LabelName = "app.kubernetes.io/name"
	// NameServer is LabelName's value on model server pods.
	NameServer = "vllm"

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
	return map[string]string{LabelName: NameServer, LabelInstance: service}
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
