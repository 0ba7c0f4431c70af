package decision

import (
	"math"
	"time"
)

// Calibration.
//
// The capacity prior is a table of GPUs and the model's size; the pods show what they really do. A pod with
// more requests waiting than the queue target at both ends of a rate window is backlogged through it, and
// admits requests as fast as it can: its first tokens/s is its saturation rate at the current mix. (A
// request or two waiting is not a backlog: vLLM holds new requests while a long prompt takes the step's
// token budget.) That holds once the pod's batch has turned over: a pod backlogged for less than one
// sequence's stay still runs the sequences it admitted before, and admits only as they finish, far below
// its saturation rate when outputs are long. So the window must span the pod's own stay, its running
// sequences over its admissions (Little's law, measured: a batch still young reads as a long stay). With a
// 30-s rate window that leaves out mixes whose sequences stay longer, from about 300 output tokens on an
// H100 and 600 on an A10G; for those the prior stands. The autoscaler compares that rate with the rate the
// model predicts for the mix
// (Capacity.Saturation) and keeps their ratio, κ, averaged in logarithm over the saturated windows of the
// last calibrationHalfLife. The capacity it sizes with is the prior κ times faster: prefill κ times
// the rate, each step term 1/κ the time (one factor: the cost model's shape stays the prior's, its speed is
// measured). κ stays within [1/calibrationMax, calibrationMax], and is 1 until a pod has been saturated.
//
// The model itself predicts the saturation rate of a pod whose costs it knows only within about a quarter
// (against the simulator's replicas across prompt and output mixes), so a ratio within calibrationBand of 1
// says nothing about the prior: only the excess beyond the band corrects it.
const (
	calibrationBand     = 1.25
	calibrationHalfLife = time.Hour
	calibrationMax      = 8.0
)

// calibration is the running log-average of κ.
type calibration struct {
	at        time.Time
	weight    float64 // seconds of saturated windows, decayed
	logFactor float64 // their weighted sum of log κ
}

// observe folds in the snapshot's saturated pods, those with more than backlog requests waiting at both ends
// of a window at least as long as their sequences stay, against the model's saturation rate for the mix.
func (k *calibration) observe(now time.Time, pods []Pod, predicted, backlog float64, window time.Duration) {
	if !(predicted > 0) {
		return
	}
	if !k.at.IsZero() && now.After(k.at) {
		f := math.Exp2(-now.Sub(k.at).Seconds() / calibrationHalfLife.Seconds())
		k.weight, k.logFactor = k.weight*f, k.logFactor*f
	}
	k.at = now
	for _, p := range pods {
		span := p.RateSpan.Seconds()
		if !p.HasTokenRates || p.RateSpan < window/2 || p.Waiting <= backlog ||
			p.Waiting-p.WaitingGrowth*span <= backlog || !(p.FirstTokensPS > 0) || p.Running/p.FirstTokensPS > span {
			continue
		}
		ratio := min(max(p.FirstTokensPS/predicted, 1/calibrationMax), calibrationMax)
		k.weight += span
		k.logFactor += span * math.Log(ratio)
	}
}

// factor is κ beyond the band, 1 without a saturated window.
func (k *calibration) factor() float64 {
	if k.weight <= 0 {
		return 1
	}
	f := math.Exp(k.logFactor / k.weight)
	switch {
	case f > calibrationBand:
		return f / calibrationBand
	case f < 1/calibrationBand:
		return f * calibrationBand
	}
	return 1
}

// Scaled is c with its speed multiplied by f (0 and 1 leave it as it is).
func (c Capacity) Scaled(f float64) Capacity {
	if f == 1 || f == 0 {
		return c
	}
	c.PrefillTPS *= f
	c.StepBase = time.Duration(float64(c.StepBase) / f)
	c.StepPerSeq = time.Duration(float64(c.StepPerSeq) / f)
	c.StepPerContextToken = time.Duration(float64(c.StepPerContextToken) / f)
	return c
}
