package vllmmetrics

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// expfmtSnapshot computes a Snapshot the conventional way: expfmt parses the whole payload into metric
// families, then the fields are read from them. It is the reference for Parse in the tests and the
// baseline of BenchmarkExpfmt. It checks no more than Parse's happy path needs.
func expfmtSnapshot(data []byte) (Snapshot, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		return Snapshot{}, err
	}
	var s Snapshot
	models := map[string]bool{}
	addModel := func(m *dto.Metric) {
		for _, lp := range m.Label {
			if lp.GetName() == "model_name" {
				models[lp.GetValue()] = true
			}
		}
	}
	value := func(name string) (sum float64, n int, engines map[string]bool) {
		engines = map[string]bool{}
		mf := fams[name]
		if mf == nil {
			return 0, 0, engines
		}
		for _, m := range mf.Metric {
			engine := ""
			for _, lp := range m.Label {
				switch lp.GetName() {
				case "model_name":
					models[lp.GetValue()] = true
				case "engine":
					engine = lp.GetValue()
				}
			}
			engines[engine] = true
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				sum += m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				sum += m.GetCounter().GetValue()
			default:
				sum += m.GetUntyped().GetValue()
			}
			n++
		}
		return sum, n, engines
	}
	var n int
	var engines map[string]bool
	if s.Waiting, n, _ = value(metricNames[waiting]); n == 0 {
		return Snapshot{}, fmt.Errorf("no %s", metricNames[waiting])
	}
	if s.Running, n, engines = value(metricNames[running]); n == 0 {
		return Snapshot{}, fmt.Errorf("no %s", metricNames[running])
	}
	if s.GenerationTokens, n, _ = value(metricNames[generationTokens]); n == 0 {
		return Snapshot{}, fmt.Errorf("no %s", metricNames[generationTokens])
	}
	s.Engines = len(engines)
	var nPrompt int
	s.PromptTokens, nPrompt, _ = value(metricNames[promptTokens])
	s.CachedPromptTokens, _, _ = value(metricNames[cachedPromptTokens])
	if mf := fams["vllm:time_to_first_token_seconds"]; mf != nil {
		// A series counts only with its _count sample: bucket lines alone leave expfmt's SampleCount unset.
		var nCount int
		for _, m := range mf.Metric {
			if h := m.GetHistogram(); h != nil && h.SampleCount != nil {
				s.FirstTokens += float64(h.GetSampleCount())
				nCount++
				addModel(m)
			}
		}
		s.HasTokenCounters = nPrompt > 0 && nCount > 0
	}
	if mf := fams[metricNames[cacheConfig]]; mf != nil {
		for _, m := range mf.Metric {
			addModel(m)
			var blocks, size float64
			for _, lp := range m.Label {
				v, err := strconv.ParseUint(lp.GetValue(), 10, 53)
				switch {
				case err != nil:
				case lp.GetName() == "num_gpu_blocks":
					blocks = float64(v)
				case lp.GetName() == "block_size":
					size = float64(v)
				}
			}
			s.KVCacheTokens += blocks * size
		}
	}
	s.Preemptions, _, _ = value(metricNames[preemptions])
	s.PromptLengths = expfmtBuckets(fams, addModel)
	for _, m := range []metric{kvCacheUsage, gpuCacheUsage} {
		if sum, n, _ := value(metricNames[m]); n > 0 {
			s.KVCacheUsage, s.KVCacheMetric = sum/float64(n), metricNames[m]
			break
		}
	}
	for m := range models {
		s.Models = append(s.Models, m)
	}
	slices.Sort(s.Models)
	return s, nil
}

// expfmtBuckets sums the buckets of vllm:request_prompt_tokens over its label sets, bound by bound, and
// reports the series it read to addModel. expfmt puts the _bucket samples in the histogram family
// vllm:request_prompt_tokens when the payload types it so (before any line names the _bucket family
// itself), and otherwise in a family of their own, vllm:request_prompt_tokens_bucket, whose le is a plain
// label; both are read.
func expfmtBuckets(fams map[string]*dto.MetricFamily, addModel func(*dto.Metric)) []Bucket {
	sums := map[float64]float64{}
	if mf := fams["vllm:request_prompt_tokens"]; mf != nil &&
		(mf.GetType() == dto.MetricType_HISTOGRAM || mf.GetType() == dto.MetricType_GAUGE_HISTOGRAM) {
		for _, m := range mf.Metric {
			buckets := m.GetHistogram().GetBucket()
			if len(buckets) > 0 {
				addModel(m) // a label set with only _count or _sum samples is not read
			}
			for _, b := range buckets {
				if b.CumulativeCountFloat != nil {
					sums[b.GetUpperBound()] += b.GetCumulativeCountFloat()
				} else {
					sums[b.GetUpperBound()] += float64(b.GetCumulativeCount())
				}
			}
		}
	}
	if mf := fams[metricNames[promptLengthBuckets]]; mf != nil {
		for _, m := range mf.Metric {
			var v float64
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_UNTYPED:
				v = m.GetUntyped().GetValue()
			default:
				continue // typed as a histogram or summary itself: a departure FuzzParseMatchesExpfmt skips
			}
			for _, lp := range m.Label {
				if lp.GetName() != "le" {
					continue
				}
				le, err := strconv.ParseFloat(lp.GetValue(), 64)
				if err != nil {
					continue // Parse refuses it
				}
				sums[le] += v
				addModel(m)
			}
		}
	}
	if len(sums) == 0 {
		return nil
	}
	out := make([]Bucket, 0, len(sums))
	for le, count := range sums {
		out = append(out, Bucket{UpperBound: le, Count: count})
	}
	slices.SortFunc(out, func(a, b Bucket) int { return cmp.Compare(a.UpperBound, b.UpperBound) })
	return out
}
