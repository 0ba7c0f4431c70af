package discovery

import (
	"testing"
	"time"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/scaler/pool"
)

// A pool member's priority reaches the allocator in the API's order; unset is normal.
func TestPoolPriority(t *testing.T) {
	for p, want := range map[v1alpha1.PoolPriority]pool.Priority{
		v1alpha1.PriorityHigh: pool.High, v1alpha1.PriorityNormal: pool.Normal, v1alpha1.PriorityLow: pool.Low, "": pool.Normal,
	} {
		if got := PoolPriority(p); got != want {
			t.Errorf("PoolPriority(%q) = %s, want %s", p, got, want)
		}
	}
}

// A service the API server did not default (read from a file by llmd simulate) gets the CRD's default
// window (api/contract compares that constant with the CRD).
func TestPolicyForDefaultsTheWindow(t *testing.T) {
	svc := &v1alpha1.LLMInferenceService{Spec: v1alpha1.LLMInferenceServiceSpec{Autoscaling: &v1alpha1.AutoscalingSpec{
		Enabled: true, MinReplicas: 1, MaxReplicas: 4,
		Metrics: []v1alpha1.AutoscalingMetric{{Type: v1alpha1.MetricRequestQueue, RequestQueue: &v1alpha1.RequestQueueTarget{TargetAverageQueueDepth: 5}}},
	}}}
	p, err := PolicyFor(svc)
	if err != nil {
		t.Fatal(err)
	}
	if p.ScaleDownWindow != 300*time.Second {
		t.Errorf("window %s, want 300s", p.ScaleDownWindow)
	}
}
