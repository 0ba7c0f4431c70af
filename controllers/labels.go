package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/llm-d/llm-d/api/v1alpha1"
)

const (
	// LabelManagedBy is the label the chart's ServiceMonitor selects model server Services on.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is LabelManagedBy's value on everything the operator creates.
	ManagedByValue = "llm-d"
	// LabelInstance carries the LLMInferenceService's name.
	LabelInstance = "app.kubernetes.io/instance"
	// LabelName names the application: always vllm for model servers.
	LabelName = "app.kubernetes.io/name"
	// LabelComponent says what role an object plays.
	LabelComponent = "app.kubernetes.io/component"
	// LabelPartOf groups everything under llm-d.
	LabelPartOf = "app.kubernetes.io/part-of"

	// ContainerName is the name of the vLLM container in every model server pod.
	ContainerName = "vllm"
	// DownloadContainerName is the init container that fetches the weights into the model cache.
	DownloadContainerName = "model-download"
	// ComponentServer is LabelComponent's value on model server pods.
	ComponentServer = "inference-server"
	// HTTPPort is the port vLLM listens on, for the OpenAI API and /metrics alike.
	HTTPPort = 8000
	// ServicePort is the Service's HTTP port, so that the base URL http://<name>.<namespace>.svc.cluster.local/v1
	// (no port) works.
	ServicePort = 80
	// MetricsPortName is the Service port the chart's ServiceMonitor scrapes.
	MetricsPortName = "metrics"
)

// SelectorLabels select a service's model server pods. They are immutable once the Deployment exists.
func SelectorLabels(svc *v1alpha1.LLMInferenceService) map[string]string {
	return map[string]string{LabelName: "vllm", LabelInstance: svc.Name}
}

// Labels are the labels of every object the operator creates for svc.
func Labels(svc *v1alpha1.LLMInferenceService, component string) map[string]string {
	l := SelectorLabels(svc)
	l[LabelManagedBy] = ManagedByValue
	l[LabelPartOf] = "llm-d"
	l[LabelComponent] = component
	return l
}

// Selector is SelectorLabels in the string form of status.selector.
func Selector(svc *v1alpha1.LLMInferenceService) string {
	return labels.SelectorFromSet(SelectorLabels(svc)).String()
}

// ModelCacheName is the name of a service's model cache PersistentVolumeClaim.
func ModelCacheName(svc *v1alpha1.LLMInferenceService) string { return svc.Name + "-model-cache" }

// Endpoint is the OpenAI-compatible base URL of a service inside the cluster.
func Endpoint(svc *v1alpha1.LLMInferenceService, clusterDomain string) string {
	return fmt.Sprintf("http://%s.%s.svc.%s/v1", svc.Name, svc.Namespace, clusterDomain)
}
