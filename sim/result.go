package sim

import (
	"math"
	"slices"
	"time"
)

// Result is what one policy did with the trace. Times are in seconds.
type Result struct {
	Policy   string `json:"policy"`
	Requests int    `json:"requests"`
	// SLOAttainment is the share of requests whose TTFT (arrival to first token, gateway wait included) is
	// at most the SLO; a request the replica rejects (prompt larger than the KV cache) misses it.
	SLOAttainment float64 `json:"slo_attainment"`
	// GPUHours integrates pods holding a GPU (starting, ready or draining) from the trace's first to its last
	// arrival.
	GPUHours         float64 `json:"gpu_hours"`
	TTFTP50          float64 `json:"ttft_p50_s"`
	TTFTP95          float64 `json:"ttft_p95_s"`
	TTFTP99          float64 `json:"ttft_p99_s"`
	QueueWaitP95     float64 `json:"queue_wait_p95_s"`
	ScaleUps         int     `json:"scale_ups"`
	ScaleDowns       int     `json:"scale_downs"`
	DirectionChanges int     `json:"direction_changes"`
	MaxReplicas      int32   `json:"max_replicas"`
	Rejected         int     `json:"rejected"`
	// Replicas is the fixed size static-peak chose; Plan the count per BoundStep of lower-bound and the learners.
	Replicas int32   `json:"replicas,omitempty"`
	Plan     []int32 `json:"plan,omitempty"`
	// Rules counts the llm-d scaler's decisions by rule.
	Rules map[string]int `json:"rules,omitempty"`
	// TokenAware is the token-aware recipe's calibration.
	TokenAware *TokenAwareCalibration `json:"token_aware,omitempty"`
	// Series is the time series, one Point per SeriesStep.
	Series []Point `json:"-"`
	// Met says, for each request of the trace in order, whether it met the SLO.
	Met []bool `json:"-"`
}

// Point is the state at the end of one SeriesStep.
type Point struct {
	T time.Duration
	// ArrivalsPerSec is the step's arrival rate.
	ArrivalsPerSec float64
	// Replicas is spec.replicas; Ready and Starting count pods that are not terminating.
	Replicas        int32
	Ready, Starting int
	// Waiting is the requests queued in pods and at the gateway.
	Waiting int
	// DecodeTPSPerPod is the step's output tokens per second divided by the ready pods.
	DecodeTPSPerPod float64
	// Misses counts the requests arriving in the step that missed the SLO.
	Misses int
}

// reqStat is one request's outcome.
type reqStat struct {
	arrival   time.Duration
	dispatch  time.Duration // when the gateway handed it to a pod
	ttft      time.Duration
	wait      time.Duration
	firstSeen bool
	rejected  bool
}

// summarize fills the request statistics of r.
func summarize(r *Result, stats []reqStat, slo time.Duration) {
	r.Requests = len(stats)
	r.Met = make([]bool, len(stats))
	var ttft, wait []float64
	met := 0
	for i, s := range stats {
		if s.rejected || !s.firstSeen {
			r.Rejected++
			continue
		}
		if s.ttft <= slo {
			met++
			r.Met[i] = true
		}
		ttft = append(ttft, s.ttft.Seconds())
		wait = append(wait, s.wait.Seconds())
	}
	if r.Requests > 0 {
		r.SLOAttainment = float64(met) / float64(r.Requests)
	}
	slices.Sort(ttft)
	slices.Sort(wait)
	r.TTFTP50, r.TTFTP95, r.TTFTP99 = quantile(ttft, 0.50), quantile(ttft, 0.95), quantile(ttft, 0.99)
	r.QueueWaitP95 = quantile(wait, 0.95)
}

// quantile is the nearest-rank quantile of sorted xs (0 if empty).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}
