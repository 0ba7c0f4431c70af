// Package report makes each service's decision visible where SREs look: the LLMInferenceService's
// status.autoscaler (written when the decision changes, and when its signals have changed and the last
// write is older than SignalRefresh, not every round) and an event whenever the direction changes.
package report

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/scaler/engine"
)

// Reasons and the action of the events the scaler records on a service.
const (
	// ReasonCannotRead (Warning) says the service's objects could not be read this round.
	ReasonCannotRead = "CannotRead"
	// ReasonScaleUp and ReasonScaleDown (Normal) say the desired replica count went up or down.
	ReasonScaleUp   = "ScaleUp"
	ReasonScaleDown = "ScaleDown"
	// ActionAutoscale is the action of every event the scaler records.
	ActionAutoscale = "Autoscale"
)

// Reporter writes decisions to status and events.
type Reporter struct {
	Client   client.Client
	Recorder events.EventRecorder
	Log      logr.Logger
	// SignalRefresh bounds how stale status.autoscaler's signals may be while the decision stays the same:
	// they are rewritten when they changed and the last write is at least this old. 0 means 30 s. A
	// service whose signals do not move (an idle one) is not written at all.
	SignalRefresh time.Duration

	mu   sync.Mutex
	last map[types.UID]written // by UID: a service deleted and recreated under its name starts afresh
}

type written struct {
	desired int32
	rule    string
	signals [4]string // waiting, running, decode tokens/s, KV cache: as status shows them
	at      time.Time // the decision's time
	failure string    // why the service's objects could not be read; "" when they were
}

// DefaultSignalRefresh is SignalRefresh's default.
const DefaultSignalRefresh = 30 * time.Second

// stale reports whether status must be rewritten: the count or the rule changed, or the signals did and
// the last write is at least refresh old. The reason's numbers change every round; they follow the
// signals.
func stale(prev written, seen bool, now written, refresh time.Duration) bool {
	switch {
	case !seen || prev.desired != now.desired || prev.rule != now.rule || prev.failure != now.failure:
		return true
	case prev.signals == now.signals:
		return false
	default:
		return now.at.Sub(prev.at) >= refresh
	}
}

// Observe is an engine.Observer.
func (r *Reporter) Observe(ctx context.Context, res engine.Result) {
	key := res.Target.Key()
	d := res.Decision
	now := written{desired: d.Desired, rule: string(d.Rule), at: res.At, signals: [4]string{
		decimal(d.WaitingPerPod), decimal(d.RunningPerPod), decimal(d.DecodeTPSPerPod), decimal(d.KVCacheUsage)}}
	if res.Err != nil {
		now.failure = res.Err.Error()
	}
	refresh := r.SignalRefresh
	if refresh == 0 {
		refresh = DefaultSignalRefresh
	}
	r.mu.Lock()
	if r.last == nil {
		r.last = map[types.UID]written{}
	}
	prev, seen := r.last[res.Target.UID]
	r.mu.Unlock()
	if !stale(prev, seen, now, refresh) {
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
		WaitingPerPod:               now.signals[0],
		RunningPerPod:               now.signals[1],
		DecodeTokensPerSecondPerPod: now.signals[2],
		KVCacheUsage:                now.signals[3],
	}
	patch := map[string]any{"status": map[string]any{"autoscaler": st}}
	if err := r.Client.Status().Patch(ctx, svc, client.RawPatch(types.MergePatchType, mustJSON(patch))); err != nil {
		r.Log.Info("could not write status.autoscaler", "service", key, "error", err.Error())
		return // try again next round
	}
	r.mu.Lock()
	r.last[res.Target.UID] = now
	r.mu.Unlock()
	if now.failure != "" && now.failure != prev.failure && r.Recorder != nil {
		r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, ReasonCannotRead, ActionAutoscale, "%s", d.Reason)
	}
	if seen && prev.desired != now.desired && r.Recorder != nil {
		reason := ReasonScaleUp
		if now.desired < prev.desired {
			reason = ReasonScaleDown
		}
		r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, reason, ActionAutoscale, "%d -> %d replicas: %s", prev.desired, now.desired, d.Reason)
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
