// Package vllmmetrics turns one vLLM /metrics payload into the per-pod numbers the scaler decides on.
//
// A pod's payload is ~50 KB, mostly histogram buckets the scaler never reads; Parse hands promtext.Scan the
// exact names it needs, so the rest of the payload is skipped line by line without being parsed. Every
// series vLLM exports carries model_name and, since the V1 engine, engine (one value per data-parallel
// engine); Parse sums across them.
//
// Of the histograms, Parse reads one: the buckets of vllm:request_prompt_tokens (the samples named
// vllm:request_prompt_tokens_bucket; not its _sum or _count), because the capacity model's time-to-first-token
// budget depends on how long prompts are, not only on how many prompt tokens arrive. The other histograms'
// lines are skipped like any unwanted line.
package vllmmetrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/llm-d/llm-d/scaler/promtext"
)

// Snapshot is what one scrape of one vLLM pod says.
type Snapshot struct {
	Waiting float64 // sum over label sets of vllm:num_requests_waiting
	Running float64 // sum over label sets of vllm:num_requests_running
	// KVCacheUsage is the mean over label sets (engines) of vllm:kv_cache_usage_perc, a fraction in 0..1.
	// vLLM before 0.12 exports it as vllm:gpu_cache_usage_perc; the new name wins when both are present.
	// Parse does not reject values above 1.
	KVCacheUsage float64
	// KVCacheMetric is the name KVCacheUsage was read from, "" if the payload has neither.
	KVCacheMetric    string
	GenerationTokens float64 // sum of the counter vllm:generation_tokens_total
	PromptTokens     float64 // sum of the counter vllm:prompt_tokens_total; 0 if absent
	// CachedPromptTokens is the sum of vllm:prompt_tokens_cached_total, the prompt tokens served from the
	// prefix cache (vLLM 0.11 and later); 0 if absent.
	CachedPromptTokens float64
	// FirstTokens is the sum of vllm:time_to_first_token_seconds_count: requests whose first token was
	// sampled, each counted once with its prompt in PromptTokens.
	FirstTokens float64
	// HasTokenCounters says whether the payload has both vllm:prompt_tokens_total and the first-token
	// count, which the capacity model needs (every vLLM since 0.4 exports them).
	HasTokenCounters bool
	// KVCacheTokens is the KV cache's size in tokens, num_gpu_blocks × block_size from the labels of
	// vllm:cache_config_info, summed over engines; 0 if absent or unreadable.
	KVCacheTokens float64
	Preemptions   float64 // sum of the counter vllm:num_preemptions_total; 0 if absent
	// PromptLengths is the histogram vllm:request_prompt_tokens: the prompt lengths of finished and aborted
	// requests, as cumulative buckets in increasing order of upper bound, the last one +Inf, each count
	// summed over label sets (engines, model names), which must all have the same bounds; nil if the
	// payload has no vllm:request_prompt_tokens_bucket sample.
	PromptLengths []Bucket
	// Engines is the number of distinct values of the engine label on vllm:num_requests_running, a series
	// without the label (vLLM V0) counting as one engine.
	Engines int
	// Models are the distinct model_name label values of the series read, sorted.
	Models []string
}

// Bucket is one cumulative bucket of a histogram: Count observations were at most UpperBound.
type Bucket struct {
	UpperBound, Count float64
}

// Errors of Parse wrap one of these, to be told apart with errors.Is.
var (
	// ErrSyntax: the payload is not Prometheus text. The error also wraps a *promtext.SyntaxError.
	ErrSyntax = errors.New("malformed Prometheus text")
	// ErrMissing: a series the scaler requires is absent.
	ErrMissing = errors.New("required vLLM series missing")
	// ErrInvalidValue: a series read is NaN, infinite or negative, or the prompt-length histogram is not
	// one: a bucket without a number as its le label, no +Inf bucket, label sets (engines) with different
	// bounds, or counts that decrease as the bound grows.
	ErrInvalidValue = errors.New("invalid value")
	// ErrDuplicate: a series (name and full label set) appears twice. Bucket bounds compare as numbers:
	// le="1" and le="1.0" of one label set are one series.
	ErrDuplicate = errors.New("duplicate series")
	// ErrTooManySeries: a metric read has more than MaxSeriesPerMetric label sets.
	ErrTooManySeries = errors.New("too many series")
)

// MaxSeriesPerMetric bounds the label sets of one metric Parse accepts, so that a label explosion in a pod
// costs the scaler an error, not memory.
const MaxSeriesPerMetric = 1024

type metric uint8

const (
	waiting metric = iota
	running
	kvCacheUsage
	gpuCacheUsage
	generationTokens
	promptTokens
	cachedPromptTokens
	firstTokens
	cacheConfig
	preemptions
	promptLengthBuckets
	numMetrics
)

const prefix = "vllm:"

var metricNames = [numMetrics]string{
	waiting:             prefix + "num_requests_waiting",
	running:             prefix + "num_requests_running",
	kvCacheUsage:        prefix + "kv_cache_usage_perc",
	gpuCacheUsage:       prefix + "gpu_cache_usage_perc",
	generationTokens:    prefix + "generation_tokens_total",
	promptTokens:        prefix + "prompt_tokens_total",
	cachedPromptTokens:  prefix + "prompt_tokens_cached_total",
	firstTokens:         prefix + "time_to_first_token_seconds_count",
	cacheConfig:         prefix + "cache_config_info",
	preemptions:         prefix + "num_preemptions_total",
	promptLengthBuckets: prefix + "request_prompt_tokens_bucket",
}

var required = [...]metric{waiting, running, generationTokens}

// lookup matches exact names only: vllm:num_requests_waiting_by_reason or
// vllm:generation_tokens_created must not count.
func lookup(name []byte) (metric, bool) {
	if len(name) <= len(prefix) || string(name[:len(prefix)]) != prefix {
		return 0, false
	}
	switch string(name[len(prefix):]) {
	case "num_requests_waiting":
		return waiting, true
	case "num_requests_running":
		return running, true
	case "kv_cache_usage_perc":
		return kvCacheUsage, true
	case "gpu_cache_usage_perc":
		return gpuCacheUsage, true
	case "generation_tokens_total":
		return generationTokens, true
	case "prompt_tokens_total":
		return promptTokens, true
	case "num_preemptions_total":
		return preemptions, true
	case "prompt_tokens_cached_total":
		return cachedPromptTokens, true
	case "time_to_first_token_seconds_count":
		return firstTokens, true
	case "cache_config_info":
		return cacheConfig, true
	case "request_prompt_tokens_bucket":
		return promptLengthBuckets, true
	}
	return 0, false
}

func wanted(name []byte) bool {
	_, ok := lookup(name)
	return ok
}

// Parse reads a vLLM /metrics payload (Prometheus text format 0.0.4). On error the Snapshot is zero.
func Parse(data []byte) (Snapshot, error) {
	a := newAccumulator()
	if err := promtext.Scan(data, wanted, a.add); err != nil {
		if _, ok := errors.AsType[*promtext.SyntaxError](err); ok {
			return Snapshot{}, fmt.Errorf("%w: %w", ErrSyntax, err)
		}
		return Snapshot{}, err
	}
	return a.snapshot()
}

func (a *accumulator) snapshot() (Snapshot, error) {
	var missing []string
	for _, m := range required {
		if a.count[m] == 0 {
			missing = append(missing, metricNames[m])
		}
	}
	if len(missing) > 0 {
		return Snapshot{}, fmt.Errorf("%w: no %s (is this a vLLM /metrics endpoint?)", ErrMissing, strings.Join(missing, ", no "))
	}
	s := Snapshot{
		Waiting:            a.sum[waiting],
		Running:            a.sum[running],
		GenerationTokens:   a.sum[generationTokens],
		PromptTokens:       a.sum[promptTokens],
		CachedPromptTokens: a.sum[cachedPromptTokens],
		FirstTokens:        a.sum[firstTokens],
		HasTokenCounters:   a.count[promptTokens] > 0 && a.count[firstTokens] > 0,
		KVCacheTokens:      a.kvTokens,
		Preemptions:        a.sum[preemptions],
		Engines:            len(a.engines.list),
		Models:             a.models.list,
	}
	var err error
	if s.PromptLengths, err = a.promptLengths.buckets(metricNames[promptLengthBuckets]); err != nil {
		return Snapshot{}, err
	}
	for _, m := range [...]metric{kvCacheUsage, gpuCacheUsage} {
		if a.count[m] > 0 {
			s.KVCacheUsage = a.sum[m] / float64(a.count[m])
			s.KVCacheMetric = metricNames[m]
			break
		}
	}
	slices.Sort(s.Models)
	for m, sum := range a.sum {
		if metric(m) == cacheConfig {
			continue // an info metric: its value is 1, its labels are the data
		}
		if math.IsInf(sum, 0) {
			// Each value is finite, but a thousand of them near MaxFloat64 do not sum to a number.
			return Snapshot{}, fmt.Errorf("%w: the sum of %s over its label sets overflows", ErrInvalidValue, metricNames[m])
		}
	}
	return s, nil
}
