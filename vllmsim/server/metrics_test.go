package server

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func TestHealthAfterStartupDelay(t *testing.T) {
	cfg := testConfig()
	// Long enough that the two 503 checks below finish inside it on a loaded machine.
	cfg.Params.StartupDelay = 3 * time.Second
	before := time.Now()
	_, ts := start(t, cfg)
	status := func(path string) int {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("/health"); got != http.StatusServiceUnavailable {
		t.Fatalf("/health right after start: %d, want 503", got)
	}
	var e map[string]any
	if code := postJSON(t, ts.URL+"/v1/completions", `{"prompt":"hi"}`, &e); code != http.StatusServiceUnavailable {
		t.Fatalf("a completion while starting: %d %v, want 503", code, e)
	}
	eventually(t, 5*time.Second, "/health turns 200", func() bool { return status("/health") == http.StatusOK })
	if waited := time.Since(before); waited < cfg.Params.StartupDelay {
		t.Fatalf("/health was 200 after %v, before the %v startup delay", waited, cfg.Params.StartupDelay)
	}
	var a map[string]any
	if code := postJSON(t, ts.URL+"/v1/completions", `{"prompt":"hi","max_tokens":2}`, &a); code != http.StatusOK {
		t.Fatalf("a completion once ready: %d %v", code, a)
	}
}

func TestMetricsHaveVLLMNamesTypesAndLabels(t *testing.T) {
	_, ts := start(t, testConfig())
	for range 3 {
		var a map[string]any
		if code := postJSON(t, ts.URL+"/v1/completions", `{"prompt":"abcdefgh","max_tokens":4}`, &a); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	families := scrape(t, ts.URL)
	want := map[string]dto.MetricType{
		"vllm:num_requests_running":        dto.MetricType_GAUGE,
		"vllm:num_requests_waiting":        dto.MetricType_GAUGE,
		"vllm:kv_cache_usage_perc":         dto.MetricType_GAUGE,
		"vllm:generation_tokens_total":     dto.MetricType_COUNTER,
		"vllm:prompt_tokens_total":         dto.MetricType_COUNTER,
		"vllm:num_preemptions_total":       dto.MetricType_COUNTER,
		"vllm:request_success_total":       dto.MetricType_COUNTER,
		"vllm:time_to_first_token_seconds": dto.MetricType_HISTOGRAM,
		"vllm:inter_token_latency_seconds": dto.MetricType_HISTOGRAM,
		"vllm:e2e_request_latency_seconds": dto.MetricType_HISTOGRAM,
		"vllm:request_queue_time_seconds":  dto.MetricType_HISTOGRAM,
		"vllm:request_prompt_tokens":       dto.MetricType_HISTOGRAM,
	}
	for name, typ := range want {
		f, ok := families[name]
		if !ok {
			t.Errorf("no %s", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, f.GetType(), typ)
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, "model_name", "test-model", "engine", "0") {
				t.Errorf("%s series without model_name=test-model, engine=0: %v", name, m.GetLabel())
			}
		}
	}
	// vLLM's info gauge has the cache configuration as labels and no model_name; an endpoint picker sizes
	// its prefix-cache index from block_size and num_gpu_blocks.
	p := testConfig().Params
	if info := families["vllm:cache_config_info"].GetMetric(); len(info) != 1 || info[0].GetGauge().GetValue() != 1 ||
		!hasLabels(info[0], "block_size", fmt.Sprint(p.BlockSize), "num_gpu_blocks", fmt.Sprint(p.KVCacheTokens/p.BlockSize), "engine", "0") {
		t.Errorf("vllm:cache_config_info = %v, want one gauge of 1 with block_size=%d, num_gpu_blocks=%d, engine=0",
			info, p.BlockSize, p.KVCacheTokens/p.BlockSize)
	}
	if len(families) != len(want)+1 {
		t.Errorf("%d metric families, want %d: a scraper should see only vLLM's", len(families), len(want))
	}

	if got := value(t, families, "vllm:request_success_total", "finished_reason", "length"); got != 3 {
		t.Errorf("request_success_total{finished_reason=length} = %v, want 3", got)
	}
	for _, reason := range []string{"stop", "abort", "error"} {
		if got := value(t, families, "vllm:request_success_total", "finished_reason", reason); got != 0 {
			t.Errorf("request_success_total{finished_reason=%s} = %v, want 0", reason, got)
		}
	}
	if got := value(t, families, "vllm:generation_tokens_total"); got != 12 {
		t.Errorf("generation_tokens_total = %v, want 12", got)
	}
	if got := value(t, families, "vllm:prompt_tokens_total"); got != 6 {
		t.Errorf("prompt_tokens_total = %v, want 6", got)
	}
	// Three finished requests of 2 prompt tokens each, in the bucket le=2 of vLLM's 1-2-5 bounds, which stop
	// at the largest within the KV cache.
	ph := families["vllm:request_prompt_tokens"].GetMetric()[0].GetHistogram()
	var le2 uint64
	var bounds []float64
	for _, b := range ph.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
		if b.GetUpperBound() == 2 {
			le2 = b.GetCumulativeCount()
		}
	}
	if ph.GetSampleCount() != 3 || ph.GetSampleSum() != 6 || le2 != 3 || bounds[0] != 1 || bounds[len(bounds)-2] > float64(p.KVCacheTokens) {
		t.Errorf("request_prompt_tokens: count %d, sum %v, le=2 %d, bounds %v; want 3 requests of 2 tokens under 1-2-5 bounds within the cache",
			ph.GetSampleCount(), ph.GetSampleSum(), le2, bounds)
	}
	h := families["vllm:inter_token_latency_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 9 {
		t.Errorf("inter-token latency has %d samples, want 3 requests × 3", h.GetSampleCount())
	}
	// vLLM's boundaries (vllm/v1/metrics/loggers.py), written out again so that an edit to the server's
	// copy shows up here; the parser adds +Inf.
	inf := math.Inf(1)
	request := []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
		120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0, inf}
	for name, buckets := range map[string][]float64{
		"vllm:time_to_first_token_seconds": {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
			1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0, inf},
		"vllm:inter_token_latency_seconds": {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
			2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, inf},
		"vllm:e2e_request_latency_seconds": request,
		"vllm:request_queue_time_seconds":  request,
	} {
		var got []float64
		for _, b := range families[name].GetMetric()[0].GetHistogram().GetBucket() {
			got = append(got, b.GetUpperBound())
		}
		if !reflect.DeepEqual(got, buckets) {
			t.Errorf("%s buckets %v, want vLLM's %v", name, got, buckets)
		}
	}
}

func TestLegacyMetricNames(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprint("legacy=", legacy), func(t *testing.T) {
			cfg := testConfig()
			cfg.LegacyMetrics = legacy
			_, ts := start(t, cfg)
			families := scrape(t, ts.URL)
			old := []string{"vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds"}
			current := []string{"vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"}
			present, absent := current, old
			if legacy {
				present, absent = old, current
			}
			for _, name := range present {
				if _, ok := families[name]; !ok {
					t.Errorf("no %s", name)
				}
			}
			for _, name := range absent {
				if _, ok := families[name]; ok {
					t.Errorf("%s should not be exported", name)
				}
			}
		})
	}
}

func TestGaugesRiseUnderLoad(t *testing.T) {
	cfg := testConfig()
	cfg.Params.MaxNumSeqs = 2
	// 4 batches of 20 tokens at 50 ms: a queue for about 3 s, which a poll on a loaded machine still sees.
	cfg.Params.IterationBase = 50 * time.Millisecond
	_, ts := start(t, cfg)

	const clients = 8
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			resp, err := http.Post(ts.URL+"/v1/completions", "application/json",
				stringsReader(`{"prompt":"hello","max_tokens":20}`))
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	var peakWaiting float64
	eventually(t, 5*time.Second, "2 running and the rest waiting", func() bool {
		f := scrape(t, ts.URL)
		running, waiting := value(t, f, "vllm:num_requests_running"), value(t, f, "vllm:num_requests_waiting")
		peakWaiting = max(peakWaiting, waiting)
		return running == 2 && waiting >= 1
	})
	wg.Wait()
	f := scrape(t, ts.URL)
	if r, w := value(t, f, "vllm:num_requests_running"), value(t, f, "vllm:num_requests_waiting"); r != 0 || w != 0 {
		t.Fatalf("after all requests: running %v, waiting %v", r, w)
	}
	if got := value(t, f, "vllm:request_success_total", "finished_reason", "length"); got != clients {
		t.Fatalf("%v requests finished, want %d", got, clients)
	}
	queue := f["vllm:request_queue_time_seconds"].GetMetric()[0].GetHistogram()
	if queue.GetSampleSum() <= 0 {
		t.Fatalf("queued requests but the queue-time histogram sums to %v", queue.GetSampleSum())
	}
}

func TestClientDisconnectAborts(t *testing.T) {
	cfg := testConfig()
	cfg.Params.IterationBase = 20 * time.Millisecond // 50 tokens take a second
	_, ts := start(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/completions",
		stringsReader(`{"prompt":"hello","max_tokens":50,"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	var aborted, length, running float64
	eventually(t, 5*time.Second, "the request is aborted", func() bool {
		f := scrape(t, ts.URL)
		aborted = value(t, f, "vllm:request_success_total", "finished_reason", "abort")
		length = value(t, f, "vllm:request_success_total", "finished_reason", "length")
		running = value(t, f, "vllm:num_requests_running")
		t.Log(aborted, length, running)
		return aborted == 1 && running == 0
	})
}

func TestSpeedRunsFasterThanRealTime(t *testing.T) {
	cfg := testConfig()
	cfg.Params.IterationBase = 100 * time.Millisecond
	cfg.Speed = 20
	_, ts := start(t, cfg)
	began := time.Now()
	var a map[string]any
	if code := postJSON(t, ts.URL+"/v1/completions", `{"prompt":"hi","max_tokens":10}`, &a); code != 200 {
		t.Fatalf("status %d", code)
	}
	wall := time.Since(began)
	e2e := scrape(t, ts.URL)["vllm:e2e_request_latency_seconds"].GetMetric()[0].GetHistogram()
	// Ten 100 ms iterations of simulated time.
	if sim := e2e.GetSampleSum(); sim < 1.0 || wall >= time.Duration(sim*float64(time.Second)) {
		t.Fatalf("simulated e2e %.3fs took %v of wall time; want ≥ 1 s simulated in less wall time", sim, wall)
	}
}
