package vllmmetrics

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"
)

// FuzzParse: Parse never panics, every error it returns is classified by one of the sentinels, and a
// Snapshot it returns is usable as is: finite, not negative, at least one engine.
func FuzzParse(f *testing.F) {
	for _, fx := range fixtures {
		data := readFixture(f, fx.file)
		// The whole fixture makes each execution slow; its vLLM part starts after the process metrics.
		start := bytes.Index(data, []byte("# HELP vllm:"))
		f.Add(data[start:min(len(data), start+6000)])
	}
	f.Add([]byte(base))
	f.Add([]byte(base + "vllm:kv_cache_usage_perc{engine=\"0\"} 0.5\nvllm:gpu_cache_usage_perc 0.25\n"))
	f.Add([]byte(base + "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 1\n"))
	f.Add([]byte(base + "vllm:prompt_tokens_total 1e308\nvllm:prompt_tokens_total{a=\"\"} 1e308\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			for _, e := range []error{ErrSyntax, ErrMissing, ErrInvalidValue, ErrDuplicate, ErrTooManySeries} {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("unclassified error: %v", err)
		}
		for name, v := range map[string]float64{"Waiting": s.Waiting, "Running": s.Running, "KVCacheUsage": s.KVCacheUsage,
			"GenerationTokens": s.GenerationTokens, "PromptTokens": s.PromptTokens, "Preemptions": s.Preemptions} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("%s = %v", name, v)
			}
		}
		if s.Engines < 1 || s.Engines > MaxSeriesPerMetric {
			t.Fatalf("Engines = %d", s.Engines)
		}
		switch s.KVCacheMetric {
		case metricNames[kvCacheUsage], metricNames[gpuCacheUsage]:
		case "":
			if s.KVCacheUsage != 0 {
				t.Fatalf("KVCacheUsage = %v read from no metric", s.KVCacheUsage)
			}
		default:
			t.Fatalf("KVCacheMetric = %q", s.KVCacheMetric)
		}
		if !slices.IsSorted(s.Models) || len(slices.Compact(slices.Clone(s.Models))) != len(s.Models) {
			t.Fatalf("Models not sorted and distinct: %q", s.Models)
		}
	})
}
