// Package report makes each service's decision visible where SREs look: the LLMInferenceService's
// status.autoscaler (written when the decision changes, not every round) and an event whenever the
// direction changes.
package report

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/scaler/engine"
)

// Reporter writes decisions to status and events.
type Reporter struct {
	Client   client.Client
	Recorder events.EventRecorder
	Log      logr.Logger

	mu   sync.Mutex
	last map[types.UID]written // by UID: a service deleted and recreated under its name starts afresh
}

type written struct {
	desired int32
	rule    string
	reason  string
}

// Observe is an engine.Observer.
func (r *Reporter) Observe(ctx context.Context, res engine.Result) {
	key := res.Target.Key()
	d := res.Decision
	now := written{d.Desired, string(d.Rule), d.Reason}
	r.mu.Lock()
	if r.last == nil {
		r.last = map[types.UID]written{}
	}
	prev, seen := r.last[res.Target.UID]
	r.mu.Unlock()
	// The reason's numbers change every round; status follows the count and the rule, not every digit.
	if seen && prev.desired == now.desired && prev.rule == now.rule {
		return
	}
	svc := &v1alpha1.LLMInferenceService{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, UID: res.Target.UID}}
	st := &v1alpha1.AutoscalerStatus{
		DesiredReplicas:             d.Desired,
		Recommendation:              d.Recommendation,
		DemandReplicas:              res.Demand,
		Pool:                        res.Pool,
		Rule:                        string(d.Rule),
		Reason:                      d.Reason,
		LastDecisionTime:            metav1.NewTime(res.At),
		ReadyPods:                   int32(len(res.Target.Ready)),
		StartingPods:                int32(res.Target.Starting),
		MissingPods:                 int32(res.Missing),
		WaitingPerPod:               decimal(d.WaitingPerPod),
		RunningPerPod:               decimal(d.RunningPerPod),
		DecodeTokensPerSecondPerPod: decimal(d.DecodeTPSPerPod),
		KVCacheUsage:                decimal(d.KVCacheUsage),
	}
	patch := map[string]any{"status": map[string]any{"autoscaler": st}}
	if err := r.Client.Status().Patch(ctx, svc, client.RawPatch(types.MergePatchType, mustJSON(patch))); err != nil {
		r.Log.Info("could not write status.autoscaler", "service", key, "error", err.Error())
		return // try again next round
	}
	r.mu.Lock()
	r.last[res.Target.UID] = now
	r.mu.Unlock()
	if seen && prev.desired != now.desired && r.Recorder != nil {
		reason := "ScaleUp"
		if now.desired < prev.desired {
			reason = "ScaleDown"
		}
		r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, reason, "Autoscale", "%d -> %d replicas: %s", prev.desired, now.desired, d.Reason)
	}
}

func decimal(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs and maps reach here
	}
	return b
}
