package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/llm-d/llm-d/vllmsim"
)

// The token-aware recipe is the llm-d project's KEDA recipe that scales on tokens of outstanding work
// (guides/workload-autoscaling/keda-epp-token-aware, P+D co-located): one ScaledObject with two Prometheus
// triggers, AverageValue targets, and the HPA taking the larger count:
//
//	prefill: sum(llm_d_epp_inflight_tokens) / V_P   against threshold (seconds of prefill backlog per replica)
//	decode:  sum(vllm:kv_cache_usage_perc)          against 0.8 (pods' worth of full KV cache per replica)
//
// The endpoint picker counts a request's uncached prompt tokens from its dispatch to an endpoint until the
// first chunk of its (streaming) response: the prompt has been prefilled then. Requests the gateway holds
// while no pod is ready are not dispatched and not counted.
const (
	// tokenAwareKVTarget is the decode trigger's threshold as the recipe ships it: act at 80 % full.
	tokenAwareKVTarget = 0.8
	// tokenAwareTailShare is the guide's "tail, not mean" adjustment: with an AverageValue target about half
	// of the requests wait longer than the threshold, so for a p90/p99 objective it shaves the formula's
	// result to 60-70 %; the SLO here is 99 % of requests, and 0.65 is the middle of that range.
	tokenAwareTailShare = 0.65
	// tokenAwareMinBudget is the share of the TTFT objective used as the queue budget when the idle floor
	// (ISL / V_P) leaves less: the guide says no threshold meets such an objective and gives no number, and a
	// threshold must be positive.
	tokenAwareMinBudget = 0.1
	// calibrationRequests is how many requests the prefill calibration sends, one at a time.
	calibrationRequests = 5
)

// TokenAwareCalibration is what an SRE measures and sets for the token-aware recipe.
type TokenAwareCalibration struct {
	// PrefillVelocity is V_P (peakPrefillThroughput), the prompt tokens one replica prefills per second:
	// CHUNK_SIZE / median TTFT on an idle replica, CHUNK_SIZE being --max-num-batched-tokens.
	PrefillVelocity float64 `json:"prefill_velocity_tokens_per_s"`
	// ISL is the workload's uncached input sequence length: the trace's mean prompt (no prefix caching here).
	ISL float64 `json:"isl_tokens"`
	// Threshold is the prefill trigger's target in seconds of prefill backlog per replica:
	// 0.65 × (TTFT objective − ISL / V_P), the budget at least 0.1 × the objective.
	Threshold float64 `json:"prefill_threshold_s"`
	// KVTarget is the decode trigger's target (0.8).
	KVTarget float64 `json:"kv_target"`
}

// CalibrateTokenAware fills the zero fields of cal as the recipe's guide calibrates them: V_P measured on one
// idle replica of the model, the workload's ISL from the trace, the threshold from the TTFT objective.
func CalibrateTokenAware(cal TokenAwareCalibration, p vllmsim.Params, slo time.Duration, reqs []Request) (TokenAwareCalibration, error) {
	if cal.PrefillVelocity == 0 {
		v, err := MeasurePrefillVelocity(p)
		if err != nil {
			return cal, err
		}
		cal.PrefillVelocity = v
	}
	if cal.ISL == 0 && len(reqs) > 0 {
		sum := 0.0
		for _, r := range reqs {
			sum += float64(r.PromptTokens)
		}
		cal.ISL = sum / float64(len(reqs))
	}
	if cal.Threshold == 0 {
		budget := max(slo.Seconds()-cal.ISL/cal.PrefillVelocity, tokenAwareMinBudget*slo.Seconds())
		cal.Threshold = tokenAwareTailShare * budget
	}
	if cal.KVTarget == 0 {
		cal.KVTarget = tokenAwareKVTarget
	}
	if !(cal.PrefillVelocity > 0) || !(cal.Threshold > 0) || !(cal.KVTarget > 0) || cal.ISL < 0 {
		return cal, fmt.Errorf("token-aware calibration %+v: V_P, threshold and KV target must be positive", cal)
	}
	return cal, nil
}

// MeasurePrefillVelocity is the guide's calibration run on one idle replica: requests whose prompt is one
// full chunk (--max-num-batched-tokens), sent one at a time, and V_P = chunk / median TTFT.
func MeasurePrefillVelocity(p vllmsim.Params) (float64, error) {
	p.StartupDelay = 0
	r, err := vllmsim.NewReplica(p)
	if err != nil {
		return 0, err
	}
	chunk := min(p.MaxNumBatchedTokens, p.KVCacheTokens-p.BlockSize)
	var ttfts []time.Duration
	now := time.Duration(0)
	for i := range calibrationRequests {
		if err := r.Submit(vllmsim.Request{ID: uint64(i), Arrival: now, PromptTokens: chunk, MaxTokens: 1}); err != nil {
			return 0, fmt.Errorf("calibration request: %w", err)
		}
		for done := false; !done; {
			t, ok := r.NextEventTime()
			if !ok {
				return 0, fmt.Errorf("calibration request %d never finished", i)
			}
			for _, ev := range r.Advance(t) {
				switch ev.Kind {
				case vllmsim.FirstToken:
					ttfts = append(ttfts, ev.At-now)
				case vllmsim.Finished:
					done, now = true, ev.At
				}
			}
		}
	}
	slices.Sort(ttfts)
	return float64(chunk) / ttfts[len(ttfts)/2].Seconds(), nil
}

// ShippedTokenAwareBehavior is the behavior the recipe's own ScaledObject sets (its optimized-baseline
// overlay): at most one pod added per 3 minutes, and one removed per 5 minutes after a 5-minute
// stabilization window, "a replica bought on a burst that drains in seconds is pure cost". The tolerance
// stays the HPA's default.
func ShippedTokenAwareBehavior() Behavior {
	return Behavior{
		Tolerance: 0.1,
		Up:        Rules{Window: 0, Pods: 1, Period: 180 * time.Second},
		Down:      Rules{Window: 300 * time.Second, Pods: 1, Period: 300 * time.Second},
	}
}

// tokenAwareControl is the recipe in the loop: Prometheus scrapes the endpoint picker's in-flight tokens
// and the pods' KV-cache usage, KEDA's Prometheus scaler reads the two sums with the same lags as
// hpa-queue's, and the HPA takes the larger of the two counts: with its default behavior (token-aware) or
// with the one the recipe's ScaledObject ships (token-aware-shipped).
type tokenAwareControl struct {
	cfg        *Config
	cal        TokenAwareCalibration
	hpa        HPA
	tokens, kv promSum
}

func newTokenAware(cfg *Config, reqs []Request, b Behavior) (*tokenAwareControl, error) {
	cal, err := CalibrateTokenAware(cfg.TokenAware, cfg.Replica, cfg.SLOTTFT, reqs)
	if err != nil {
		return nil, err
	}
	return &tokenAwareControl{cfg: cfg, cal: cal,
		hpa:    HPA{Behavior: b, Min: cfg.Policy.MinReplicas, Max: cfg.Policy.MaxReplicas},
		tokens: newPromSum(cfg, func(p *pod) float64 { return float64(p.inflightPrompt) }),
		kv:     newPromSum(cfg, func(p *pod) float64 { return p.r.Metrics().KVCacheUsage }),
	}, nil
}

func (t *tokenAwareControl) tick(now time.Duration, c *cluster) (int32, bool) {
	backlog := t.tokens.read(now, c) / t.cal.PrefillVelocity // seconds: the division the recipe's PromQL does
	kv := t.kv.read(now, c)
	if now%t.cfg.HPASync != 0 {
		return 0, false
	}
	return t.hpa.SyncMetrics(now, c.replicas, Metric{backlog, t.cal.Threshold}, Metric{kv, t.cal.KVTarget}), true
}

// calibration reports the calibration the run used (Result.TokenAware).
func (t *tokenAwareControl) calibration() TokenAwareCalibration { return t.cal }
