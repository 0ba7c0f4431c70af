package server

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llm-d/llm-d/vllmsim"
)

// vLLM's histogram buckets (vllm/v1/metrics/loggers.py), so that quantiles computed from the simulator
// have the same resolution as from a real server.
var (
	ttftBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
		7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}
	itlBuckets = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
		10.0, 20.0, 40.0, 80.0}
	requestLatencyBuckets = []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
		50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}
)

// finishReasons are the finished_reason values vLLM creates request_success series for up front, so that
// rate() over them works from the first scrape.
var finishReasons = []string{"stop", "length", "abort", "error"}

// metrics exports a replica's state under vLLM's metric names, types and labels (model_name and
// engine="0", as a single-engine vLLM server has).
type metrics struct {
	registry *prometheus.Registry

	running, waiting, kvUsage                 prometheus.Gauge
	promptTokens, generationTokens, preempted prometheus.Counter
	success                                   [vllmsim.NumFinishReasons]prometheus.Counter
	latency                                   [4]prometheus.Observer // by vllmsim.Latency

	last vllmsim.Metrics // counters already exported

	prompts *promptTokens
}

// promptTokens exports vllm:request_prompt_tokens from the replica's own counts, exactly: a histogram whose
// counts and sum are set, not observed, with the buckets vllmsim.Metrics.PromptTokensCumulative gives.
type promptTokens struct {
	desc   *prometheus.Desc
	params vllmsim.Params

	mu  sync.Mutex // update writes on the server's loop, Collect reads on a scrape's goroutine
	now vllmsim.Metrics
}

func (p *promptTokens) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

func (p *promptTokens) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	cumulative, sum := p.now.PromptTokensCumulative(p.params), p.now.RequestPromptTokensSum
	p.mu.Unlock()
	buckets := make(map[float64]uint64, len(cumulative)-1)
	for i, c := range cumulative[:len(cumulative)-1] {
		buckets[vllmsim.PromptTokenBounds[i]] = c
	}
	ch <- prometheus.MustNewConstHistogram(p.desc, cumulative[len(cumulative)-1], float64(sum), buckets)
}

// newMetrics registers vLLM's metrics for model, served by a replica with params, in a private registry.
// With legacy it uses the names of vLLM before 0.12: vllm:gpu_cache_usage_perc and
// vllm:time_per_output_token_seconds.
func newMetrics(model string, legacy bool, params vllmsim.Params) *metrics {
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"model_name": model, "engine": "0"}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
		reg.MustRegister(g)
		return g
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
		reg.MustRegister(c)
		return c
	}
	histogram := func(name, help string, buckets []float64) prometheus.Observer {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets, ConstLabels: labels})
		reg.MustRegister(h)
		return h
	}

	kvName, itlName := "vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"
	if legacy {
		kvName, itlName = "vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds"
	}
	m := &metrics{registry: reg}
	m.running = gauge("vllm:num_requests_running", "Number of requests in model execution batches.")
	m.waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
	m.kvUsage = gauge(kvName, "KV-cache usage. 1 means 100 percent usage.")
	m.promptTokens = counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.")
	m.generationTokens = counter("vllm:generation_tokens_total", "Number of generation tokens processed.")
	m.preempted = counter("vllm:num_preemptions_total", "Cumulative number of preemption from the engine.")

	success := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vllm:request_success_total", Help: "Count of successfully processed requests.", ConstLabels: labels,
	}, []string{"finished_reason"})
	reg.MustRegister(success)
	for _, r := range finishReasons {
		success.WithLabelValues(r)
	}
	for r := range vllmsim.NumFinishReasons {
		m.success[r] = success.WithLabelValues(r.String())
	}

	m.latency[vllmsim.TimeToFirstToken] = histogram("vllm:time_to_first_token_seconds",
		"Histogram of time to first token in seconds.", ttftBuckets)
	m.latency[vllmsim.InterToken] = histogram(itlName, "Histogram of inter-token latency in seconds.", itlBuckets)
	m.latency[vllmsim.EndToEnd] = histogram("vllm:e2e_request_latency_seconds",
		"Histogram of e2e request latency in seconds.", requestLatencyBuckets)
	m.latency[vllmsim.QueueTime] = histogram("vllm:request_queue_time_seconds",
		"Histogram of time spent in WAITING phase for request.", requestLatencyBuckets)
	reg.MustRegister(cacheConfigInfo(params))

	m.prompts = &promptTokens{desc: prometheus.NewDesc("vllm:request_prompt_tokens", "Number of prefill tokens processed.", nil, labels),
		params: params}
	reg.MustRegister(m.prompts)
	return m
}

// cacheConfigInfo is vLLM's vllm:cache_config_info: a gauge of 1 whose labels are the engine's cache
// configuration (CacheConfig.metrics_info(), without model_name). An endpoint picker reads block_size and
// num_gpu_blocks from it to size its prefix-cache index; the labels here are those the simulator models.
func cacheConfigInfo(p vllmsim.Params) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vllm:cache_config_info",
		Help: "Information of the LLMEngine CacheConfig",
		ConstLabels: prometheus.Labels{
			"block_size":     strconv.Itoa(p.BlockSize),
			"num_gpu_blocks": strconv.Itoa(p.GPUBlocks()),
			"cache_dtype":    "auto",
			"engine":         "0",
		},
	})
	g.Set(1)
	return g
}

// Observe records a latency from the model, in simulated seconds: what a real server would measure.
func (m *metrics) Observe(l vllmsim.Latency, d time.Duration) {
	m.latency[l].Observe(d.Seconds())
}

// update exports a snapshot of the replica's gauges and counters.
func (m *metrics) update(now vllmsim.Metrics) {
	m.running.Set(float64(now.Running))
	m.waiting.Set(float64(now.Waiting))
	m.kvUsage.Set(now.KVCacheUsage)
	m.promptTokens.Add(float64(now.PromptTokensTotal - m.last.PromptTokensTotal))
	m.generationTokens.Add(float64(now.GenerationTokensTotal - m.last.GenerationTokensTotal))
	m.preempted.Add(float64(now.PreemptionsTotal - m.last.PreemptionsTotal))
	for r := range m.success {
		m.success[r].Add(float64(now.RequestSuccessTotal[r] - m.last.RequestSuccessTotal[r]))
	}
	m.prompts.mu.Lock()
	m.prompts.now = now
	m.prompts.mu.Unlock()
	m.last = now
}
