package vllmmetrics

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/llm-d/llm-d/scaler/promtext"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// FuzzParse: Parse never panics, every error it returns is classified by one of the sentinels, and a
// Snapshot it returns is usable as is: finite, not negative, at least one engine, prompt lengths a
// cumulative histogram.
func FuzzParse(f *testing.F) {
	for _, fx := range fixtures {
		data := readFixture(f, fx.file)
		// The whole fixture makes each execution slow; its vLLM part starts after the process metrics.
		start := bytes.Index(data, []byte("# HELP vllm:"))
		f.Add(data[start:min(len(data), start+6000)])
		f.Add(promptLengthLines(data))
	}
	f.Add([]byte(base))
	f.Add([]byte(base + bucket("0", "1.0", "1") + bucket("1", "1", "2") + bucket("0", "+Inf", "3") + bucket("1", "Inf", "4")))
	f.Add([]byte(base + bucket("0", "-0", "0.5") + bucket("0", "1e-3", "1.5") + bucket("0", "+Inf", "1.5")))
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
		if b := s.PromptLengths; b != nil && (len(b) == 0 || !math.IsInf(b[len(b)-1].UpperBound, 1)) {
			t.Fatalf("PromptLengths = %v: not nil and not ending with +Inf", b)
		}
		for i, b := range s.PromptLengths {
			if math.IsNaN(b.Count) || math.IsInf(b.Count, 0) || b.Count < 0 || i > 0 &&
				(b.UpperBound <= s.PromptLengths[i-1].UpperBound || b.Count < s.PromptLengths[i-1].Count) {
				t.Fatalf("PromptLengths = %v: not a cumulative histogram at %d", s.PromptLengths, i)
			}
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

// FuzzParseMatchesExpfmt compares Parse with the conventional reading through expfmt (expfmtSnapshot):
// whenever both accept a payload they return the same Snapshot, and whenever expfmt accepts it Parse reports
// a missing series exactly when the expfmt reading does. Parse refuses more than expfmt on purpose (NaN,
// infinite and negative values, duplicate series, label explosions, sums that overflow, prompt-length
// buckets that do not make a histogram, and promtext's two documented syntax departures, which FuzzScan
// checks line by line); those refusals are not compared. A wanted name that the payload types as a
// histogram or summary is a departure too: Parse reads samples by their exact name and ignores TYPE lines,
// expfmt folds them into the family's buckets or quantiles. (The prompt-length buckets are read from
// expfmt's histogram family vllm:request_prompt_tokens as well as from an untyped _bucket family: that
// folding is the conventional reading. But expfmt also folds a sample named vllm:request_prompt_tokens
// itself with an le label into the buckets, and Parse reads _bucket samples only: payloads with such a
// sample are not compared.) Prompt-length counts are compared up to rounding: expfmt groups a
// histogram's buckets by label set, so with three or more label sets the oracle may add a bound's counts in
// another order than the payload's, which Parse follows.
func FuzzParseMatchesExpfmt(f *testing.F) {
	for _, fx := range fixtures {
		data := readFixture(f, fx.file)
		start := bytes.Index(data, []byte("# HELP vllm:"))
		f.Add(data[start:min(len(data), start+6000)])
		f.Add(promptLengthLines(data))
	}
	f.Add([]byte(base + "vllm:cache_config_info{model_name=\"n\",num_gpu_blocks=\"2\",block_size=\"16\"} 1\n"))
	f.Add([]byte("# TYPE vllm:request_prompt_tokens histogram\n" + base + bucket("0", "1.0", "1") + bucket("1", "1", "2") +
		bucket("0", "+Inf", "3.5") + bucket("1", "+Inf", "4") + "vllm:request_prompt_tokens_count{engine=\"0\"} 3.5\n"))
	f.Add([]byte(base + bucket("0", "1.0", "1") + bucket("0", "+Inf", "3") + "# TYPE vllm:request_prompt_tokens histogram\n"))
	f.Add([]byte("# TYPE vllm:request_prompt_tokens histogram\n" + bucket("0", "+Inf", "1") + "# HELP vllm:request_prompt_tokens_bucket x\n" +
		base + bucket("1", "+Inf", "2")))
	f.Add([]byte(base))
	f.Add([]byte("# TYPE vllm:num_requests_waiting gauge\n" + base + "vllm:gpu_cache_usage_perc{engine=\"1\"} 0.75\n"))
	f.Add([]byte(base + "vllm:num_requests_running{model_name=\"\",engine=\"1\"} 3 1700000000000\n"))
	f.Add([]byte(base + "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\\\"x\\n\"} 0.5\n"))
	f.Add([]byte("vllm:num_requests_waiting 0\nvllm:num_requests_running 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fams, oerr := parseSafely(data)
		if oerr != nil {
			return
		}
		got, err := Parse(data)
		ref, rerr := expfmtSnapshot(data)
		switch {
		case errors.Is(err, ErrMissing):
			if rerr == nil {
				t.Fatalf("Parse says %v; expfmt reads %+v", err, ref)
			}
			return
		case err != nil:
			return // a deliberate refusal (see above)
		}
		for _, name := range metricNames {
			if mf := fams[name]; mf != nil && mf.GetType() != dto.MetricType_GAUGE && mf.GetType() != dto.MetricType_COUNTER && mf.GetType() != dto.MetricType_UNTYPED {
				return
			}
		}
		if hasSample(data, "vllm:request_prompt_tokens") {
			return // folded into the histogram's buckets by expfmt if it has an le label; not a _bucket sample
		}
		if rerr != nil {
			t.Fatalf("Parse reads %+v; expfmt says %v", got, rerr)
		}
		if !sameBuckets(got.PromptLengths, ref.PromptLengths) {
			t.Fatalf("Parse and expfmt disagree on PromptLengths:\n   Parse %v\n  expfmt %v", got.PromptLengths, ref.PromptLengths)
		}
		got.PromptLengths, ref.PromptLengths = nil, nil
		if !reflect.DeepEqual(got, ref) {
			t.Fatalf("Parse and expfmt disagree:\n   Parse %+v\n  expfmt %+v", got, ref)
		}
	})
}

// hasSample says whether the payload has a sample named name.
func hasSample(data []byte, name string) bool {
	found := false
	_ = promtext.Scan(data, func(n []byte) bool { return string(n) == name }, func(*promtext.Sample) error {
		found = true
		return nil
	})
	return found
}

// sameBuckets says whether a and b have the same bounds and counts within rounding of their sums.
func sameBuckets(a, b []Bucket) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].UpperBound != b[i].UpperBound || math.Abs(a[i].Count-b[i].Count) > 1e-9*math.Max(a[i].Count, b[i].Count) {
			return false
		}
	}
	return true
}

// promptLengthLines is the minimal payload of a fixture, plus its vllm:request_prompt_tokens histogram
// with its HELP and TYPE lines: a small seed that reaches the bucket code.
func promptLengthLines(data []byte) []byte {
	var out []byte
	for line := range bytes.Lines(data) {
		if bytes.Contains(line, []byte("vllm:request_prompt_tokens")) && !bytes.Contains(line, []byte("_created")) {
			out = append(out, line...)
		}
	}
	return append([]byte(base), out...)
}

// parseSafely runs expfmt's parser, a panic counting as a rejection.
func parseSafely(data []byte) (fams map[string]*dto.MetricFamily, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("expfmt panicked")
		}
	}()
	p := expfmt.NewTextParser(model.LegacyValidation)
	return p.TextToMetricFamilies(bytes.NewReader(data))
}
