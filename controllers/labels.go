package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
)

const (
	// LabelComponent says what role an object plays.
	LabelComponent = "app.kubernetes.io/component"
	// LabelPartOf groups everything under llm-d.
	LabelPartOf = "app.kubernetes.io/part-of"

	// DownloadContainerName is the init container that fetches the weights into the model cache.
	DownloadContainerName = "model-download"
	// ComponentServer is LabelComponent's value on model server pods.
	ComponentServer = "inference-server"
	// ServicePort is the Service's HTTP port, so that the base URL http://<name>.<namespace>.svc.cluster.local/v1
	// (no port) works.
	ServicePort = 80
	// MetricsPortName is the Service port the chart's ServiceMonitor scrapes.
	MetricsPortName = "metrics"
)

// Labels are the labels of every object the operator creates for svc.
func Labels(svc *v1alpha1.LLMInferenceService, component string) map[string]string {
	l := contract.SelectorLabels(svc.Name)
	l[contract.LabelManagedBy] = contract.ManagedByValue
	l[LabelPartOf] = "llm-d"
	l[LabelComponent] = component
	return l
}

// Selector is contract.SelectorLabels in the string form of status.selector.
func Selector(svc *v1alpha1.LLMInferenceService) string {
	return labels.SelectorFromSet(contract.SelectorLabels(svc.Name)).String()
}

// ModelCacheName is the name of a service's model cache PersistentVolumeClaim.
func ModelCacheName(svc *v1alpha1.LLMInferenceService) string { return svc.Name + "-model-cache" }

// Endpoint is the OpenAI-compatible base URL of a service inside the cluster.
func Endpoint(svc *v1alpha1.LLMInferenceService, clusterDomain string) string {
	return fmt.Sprintf("http://%s.%s.svc.%s/v1", svc.Name, svc.Namespace, clusterDomain)
}
