package controllers

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
)

// BuildService builds the Service named like the LLMInferenceService: port 80 ("http") so that
// http://<name>.<namespace>.svc.cluster.local/v1 works without a port, and "metrics" for the ServiceMonitor.
func BuildService(svc *v1alpha1.LLMInferenceService) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:      svc.Name,
			Namespace: svc.Namespace,
			Labels:    Labels(svc, ComponentServer),
		},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: contract.SelectorLabels(svc.Name),
			Ports: []corev1.ServicePort{
				{Name: "http", Port: ServicePort, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP},
				{Name: MetricsPortName, Port: contract.HTTPPort, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}
