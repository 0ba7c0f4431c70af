package controllers

import (
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
)

const (
	// TriggerName names the external trigger in KEDA's logs and metrics (the HPA's metric is
	// "s0-desired-replicas", from the scaler's metric name).
	TriggerName = "llm-d"
	// fallbackFailures is how many failed calls to the scaler KEDA tolerates before it holds the size.
	fallbackFailures = 3
)

// BuildScaledObject builds the KEDA ScaledObject that hands a service's replica count to the llm-d scaler.
//
// Who owns what: the scaler decides the replica count (queue depth, throughput, starting pods, the
// scale-down stabilization window, the pool's budget) and reports it as an AverageValue metric with target 1,
// so the HPA's ceil(total/target) is exactly that count. The HPA therefore must not decide again
// (contract.HPABehavior). If the scaler cannot be reached, KEDA's fallback holds the current size: nothing
// scales on missing data.
func BuildScaledObject(svc *v1alpha1.LLMInferenceService, cfg Config) *kedav1alpha1.ScaledObject {
	a := svc.Spec.Autoscaling
	trigger := kedav1alpha1.ScaleTriggers{
		Type:       "external",
		Name:       TriggerName,
		MetricType: autoscalingv2.AverageValueMetricType,
		Metadata: map[string]string{
			contract.MetadataScalerAddress: cfg.ScalerAddress,
			contract.MetadataService:       svc.Name,
		},
	}
	if cfg.ScalerTLSSecret != "" {
		trigger.Metadata[MetadataEnableTLS] = "true"
		trigger.AuthenticationRef = &kedav1alpha1.AuthenticationRef{Name: TriggerAuthenticationName, Kind: "ClusterTriggerAuthentication"}
	}
	return &kedav1alpha1.ScaledObject{
		ObjectMeta: metav1.ObjectMeta{
			Name:      svc.Name,
			Namespace: svc.Namespace,
			Labels:    Labels(svc, "autoscaler"),
		},
		Spec: kedav1alpha1.ScaledObjectSpec{
			ScaleTargetRef:  &kedav1alpha1.ScaleTarget{Name: svc.Name, APIVersion: "apps/v1", Kind: "Deployment"},
			MinReplicaCount: ptr.To(a.MinReplicas),
			MaxReplicaCount: ptr.To(a.MaxReplicas),
			Triggers:        []kedav1alpha1.ScaleTriggers{trigger},
			Fallback: &kedav1alpha1.Fallback{
				FailureThreshold: fallbackFailures,
				Replicas:         a.MinReplicas,
				Behavior:         kedav1alpha1.FallbackBehaviorCurrentReplicas,
			},
			Advanced: &kedav1alpha1.AdvancedConfig{HorizontalPodAutoscalerConfig: &kedav1alpha1.HorizontalPodAutoscalerConfig{
				Behavior: contract.HPABehavior(),
			}},
		},
	}
}
