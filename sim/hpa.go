package sim

import (
	"fmt"
	"math"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"

	"github.com/llm-d/llm-d/api/contract"
)

// Rules is one direction of an HPA's behavior (autoscaling/v2 HPAScalingRules) with selectPolicy Max: the
// policy that allows the larger change wins.
type Rules struct {
	// Window is stabilizationWindowSeconds.
	Window time.Duration
	// Percent and Pods are the two policies' values; 0 leaves a policy out.
	Percent, Pods int32
	// Period is the policies' periodSeconds.
	Period time.Duration
}

// Behavior is what the HPA is configured with: spec.behavior plus the tolerance.
type Behavior struct {
	// Tolerance is the band around a usage ratio of 1 within which the HPA leaves the count alone (the
	// controller manager's --horizontal-pod-autoscaler-tolerance, 0.1, or the behavior's per-direction
	// tolerance, which the llm-d operator sets to 0).
	Tolerance float64
	Up, Down  Rules
}

// DefaultBehavior is the HPA's behavior when spec.behavior is unset (Kubernetes documentation, "Default
// Behavior"): scale up at once by the larger of +100 % and +4 pods per 15 s; scale down after a 300 s
// stabilization window, by up to 100 % per 15 s; 10 % tolerance.
func DefaultBehavior() Behavior {
	return Behavior{
		Tolerance: 0.1,
		Up:        Rules{Window: 0, Percent: 100, Pods: 4, Period: 15 * time.Second},
		Down:      Rules{Window: 300 * time.Second, Percent: 100, Period: 15 * time.Second},
	}
}

// OperatorBehavior is the behavior the llm-d operator writes into every ScaledObject (contract.HPABehavior):
// the default scale-up rate limit, no stabilization and no tolerance, since the scaler's number already is
// the decision.
func OperatorBehavior() Behavior { return behaviorOf(contract.HPABehavior()) }

// behaviorOf reads an autoscaling/v2 behavior of the shape Behavior models: in each direction a set
// stabilization window, selectPolicy Max over Percent and Pods policies of one period, and the same tolerance
// both ways (unset: the HPA's 0.1). It panics on any other shape, which only a change to
// contract.HPABehavior brings (TestHPAOperatorBehavior fails then).
func behaviorOf(b *autoscalingv2.HorizontalPodAutoscalerBehavior) Behavior {
	up, upTol := rulesOf(b.ScaleUp)
	down, downTol := rulesOf(b.ScaleDown)
	if upTol != downTol {
		panic(fmt.Sprintf("sim: HPA tolerances differ by direction (%v up, %v down); Behavior models one", upTol, downTol))
	}
	return Behavior{Tolerance: upTol, Up: up, Down: down}
}

func rulesOf(r *autoscalingv2.HPAScalingRules) (Rules, float64) {
	if r.StabilizationWindowSeconds == nil || (r.SelectPolicy != nil && *r.SelectPolicy != autoscalingv2.MaxChangePolicySelect) {
		panic("sim: an HPA direction without a stabilization window or with selectPolicy other than Max")
	}
	out := Rules{Window: time.Duration(*r.StabilizationWindowSeconds) * time.Second}
	for _, p := range r.Policies {
		period := time.Duration(p.PeriodSeconds) * time.Second
		if out.Period != 0 && out.Period != period {
			panic("sim: HPA policies of different periods in one direction")
		}
		out.Period = period
		switch p.Type {
		case autoscalingv2.PercentScalingPolicy:
			out.Percent = p.Value
		case autoscalingv2.PodsScalingPolicy:
			out.Pods = p.Value
		}
	}
	tolerance := DefaultBehavior().Tolerance
	if r.Tolerance != nil {
		tolerance = r.Tolerance.AsApproximateFloat64()
	}
	return out, tolerance
}

// HPA models the horizontal pod autoscaler's replica calculation for one external metric with an
// AverageValue target (pkg/controller/podautoscaler: GetExternalMetricReplicas, then
// normalizeDesiredReplicasWithBehaviors). It is not safe for concurrent use.
type HPA struct {
	Behavior Behavior
	Min, Max int32

	recs   []hpaRecord // unstabilized recommendations, for the stabilization windows
	events []hpaRecord // replica changes, for the rate limits; desired holds the signed change
}

type hpaRecord struct {
	at      time.Duration
	desired int32
}

// Sync is one HPA sync at now: the target has current replicas and the metric's total value is total,
// against an AverageValue target. It returns the new replica count.
func (h *HPA) Sync(now time.Duration, current int32, total, target float64) int32 {
	return h.SyncMetrics(now, current, Metric{Total: total, Target: target})
}

// Metric is one external metric's total value and its AverageValue target.
type Metric struct{ Total, Target float64 }

// SyncMetrics is one HPA sync with several metrics (a ScaledObject with several triggers): each metric
// proposes a count, within the tolerance of current or ceil(total/target), and the largest proposal wins
// (computeReplicasForMetrics).
func (h *HPA) SyncMetrics(now time.Duration, current int32, metrics ...Metric) int32 {
	var raw int32
	for i, m := range metrics {
		n := current
		if current == 0 || math.Abs(1-m.Total/(m.Target*float64(current))) > h.Behavior.Tolerance {
			n = int32(math.Ceil(m.Total / m.Target))
		}
		if i == 0 || n > raw {
			raw = n
		}
	}
	desired := h.stabilize(now, current, raw)
	desired = h.limit(now, current, desired)
	if desired != current {
		h.events = append(h.events, hpaRecord{now, desired - current})
	}
	return desired
}

// stabilize applies the windows: scale up to no more than the lowest recommendation in the up window, down
// to no less than the highest in the down window.
func (h *HPA) stabilize(now time.Duration, current, raw int32) int32 {
	up, down := raw, raw
	keep := h.recs[:0]
	longest := max(h.Behavior.Up.Window, h.Behavior.Down.Window)
	for _, r := range h.recs {
		age := now - r.at
		if age > longest {
			continue
		}
		keep = append(keep, r)
		if age <= h.Behavior.Up.Window {
			up = min(up, r.desired)
		}
		if age <= h.Behavior.Down.Window {
			down = max(down, r.desired)
		}
	}
	h.recs = append(keep, hpaRecord{now, raw})
	rec := current
	if rec < up {
		rec = up
	}
	if rec > down {
		rec = down
	}
	return rec
}

// limit applies the rate policies, measured from the replica count at the start of each policy's period,
// and the min/max bounds.
func (h *HPA) limit(now time.Duration, current, desired int32) int32 {
	switch {
	case desired > current:
		start := current - h.changed(now, h.Behavior.Up.Period, true)
		lim := current
		if h.Behavior.Up.Pods > 0 {
			lim = max(lim, start+h.Behavior.Up.Pods)
		}
		if h.Behavior.Up.Percent > 0 {
			lim = max(lim, int32(math.Ceil(float64(start)*(1+float64(h.Behavior.Up.Percent)/100))))
		}
		desired = min(desired, lim, h.Max)
	case desired < current:
		start := current - h.changed(now, h.Behavior.Down.Period, false) // changed is negative here
		lim := current
		if h.Behavior.Down.Pods > 0 {
			lim = min(lim, start-h.Behavior.Down.Pods)
		}
		if h.Behavior.Down.Percent > 0 {
			lim = min(lim, int32(math.Floor(float64(start)*(1-float64(h.Behavior.Down.Percent)/100))))
		}
		desired = max(desired, lim, h.Min)
	}
	return min(max(desired, h.Min), h.Max)
}

// changed sums the scale-ups (up) or scale-downs within the last period, as the HPA does from its
// scale events: an event exactly one period old no longer counts.
func (h *HPA) changed(now, period time.Duration, up bool) int32 {
	var sum int32
	keep := h.events[:0]
	for _, e := range h.events {
		if now-e.at > 10*time.Minute {
			continue // older than any period: forget
		}
		keep = append(keep, e)
		if now-e.at < period && (e.desired > 0) == up {
			sum += e.desired
		}
	}
	h.events = keep
	return sum
}
