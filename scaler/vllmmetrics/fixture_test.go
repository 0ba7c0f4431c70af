package vllmmetrics

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The fixtures in testdata are written by this generator, so that they stay realistic and consistent with
// the numbers the tests expect: `go test ./scaler/vllmmetrics -run TestFixtures -update` rewrites them.
// The layout follows what prometheus_client (the library vLLM uses) prints: process and GC collectors
// first, label order as declared (model_name, engine, then le), each series' _created moved into its own
// gauge family after the family, values in Python's float repr (1.0, 1.73641788e+09).
var update = flag.Bool("update", false, "rewrite the testdata fixtures from the generator")

// engineStats are the numbers one engine reports.
type engineStats struct {
	id                string // engine label; "" for vLLM V0, which has no such label
	running, waiting  float64
	kvUsage           float64
	prompt, gen       float64
	preemptions       float64
	requests          float64 // finished requests: the count of the per-request histograms
	iterations        float64 // engine steps: the count of vllm:iteration_tokens_total
	waitingByCapacity float64 // vllm:num_requests_waiting_by_reason, deliberately not summing to waiting
	cached            float64 // vllm:prompt_tokens_cached_total (newer vLLM), written only when above 0
}

type fixture struct {
	file    string
	legacy  bool // vLLM 0.8, V0 engine: gpu_cache_usage_perc, time_per_output_token_seconds, no engine label
	engines []engineStats
	want    Snapshot
}

const modelName = "meta-llama/Meta-Llama-3.1-8B-Instruct"

var fixtures = []fixture{
	{
		file:    "vllm-0.11.txt",
		engines: []engineStats{{"0", 17, 3, 0.4375, 1234567, 987654, 2, 4321, 98765, 100, 0}},
		want: Snapshot{Waiting: 3, Running: 17, KVCacheUsage: 0.4375, KVCacheMetric: "vllm:kv_cache_usage_perc",
			GenerationTokens: 987654, PromptTokens: 1234567, FirstTokens: 4321, HasTokenCounters: true, KVCacheTokens: 29127 * 16,
			Preemptions: 2, Engines: 1, Models: []string{modelName},
			PromptLengths: promptLengths(0, 0, 0, 0, 1, 8, 35, 138, 739, 1955, 3317, 4121, 4269, 4307, 4318, 4320, 4321)},
	},
	{
		file:    "vllm-0.8-legacy.txt",
		legacy:  true,
		engines: []engineStats{{"", 9, 1, 0.8125, 55555, 44444, 0, 321, 5000, 0, 0}},
		want: Snapshot{Waiting: 1, Running: 9, KVCacheUsage: 0.8125, KVCacheMetric: "vllm:gpu_cache_usage_perc",
			GenerationTokens: 44444, PromptTokens: 55555, FirstTokens: 321, HasTokenCounters: true, KVCacheTokens: 29127 * 16,
			Preemptions: 0, Engines: 1, Models: []string{modelName},
			PromptLengths: promptLengths(0, 0, 0, 0, 0, 0, 2, 10, 54, 145, 246, 306, 317, 320, 320, 320, 321)},
	},
	{
		file: "vllm-dp2.txt",
		engines: []engineStats{
			{"0", 17, 3, 0.4375, 1234567, 987654, 2, 4321, 98765, 100, 456789},
			{"1", 12, 5, 0.25, 765432, 456789, 1, 2222, 65432, 200, 123456},
		},
		want: Snapshot{Waiting: 8, Running: 29, KVCacheUsage: 0.34375, KVCacheMetric: "vllm:kv_cache_usage_perc",
			GenerationTokens: 987654 + 456789, PromptTokens: 1234567 + 765432, CachedPromptTokens: 456789 + 123456,
			FirstTokens: 4321 + 2222, HasTokenCounters: true, KVCacheTokens: 2 * 29127 * 16,
			Preemptions: 3, Engines: 2, Models: []string{modelName},
			// Engine 0's buckets are vllm-0.11.txt's, engine 1's are 0 0 0 0 0 4 18 71 380 1005 1705 2119 2195 2215 2220 2221 2222.
			PromptLengths: promptLengths(0, 0, 0, 0, 1, 12, 53, 209, 1119, 2960, 5022, 6240, 6464, 6522, 6538, 6541, 6543)},
	},
}

// promptLengths pairs the cumulative counts of the fixtures' vllm:request_prompt_tokens_bucket lines, read
// off the files, with vLLM's bounds for it (1-2-5 up to 100000, then +Inf).
func promptLengths(counts ...float64) []Bucket {
	bounds := []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, math.Inf(1)}
	if len(counts) != len(bounds) {
		panic("promptLengths: one count per bound")
	}
	out := make([]Bucket, len(bounds))
	for i, b := range bounds {
		out[i] = Bucket{UpperBound: b, Count: counts[i]}
	}
	return out
}

func TestFixtures(t *testing.T) {
	for _, f := range fixtures {
		path := filepath.Join("testdata", f.file)
		data := generate(f)
		if *update {
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		disk, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(disk, data) {
			t.Errorf("%s differs from what the generator writes: run go test -run TestFixtures -update", path)
		}
	}
}

// gen writes one payload.
type gen struct {
	bytes.Buffer
	f       fixture
	created float64
}

func generate(f fixture) []byte {
	g := &gen{f: f, created: 1736417883.7954564}
	g.process()
	if f.legacy {
		g.legacyVLLM()
	} else {
		g.v1VLLM()
	}
	return g.Bytes()
}

func (g *gen) process() {
	g.family("python_gc_objects_collected_total", "Objects collected during gc", "counter")
	for i, v := range []float64{18247, 4312, 1093} {
		g.sample("python_gc_objects_collected_total", fmt.Sprintf(`{generation="%d"}`, i), v)
	}
	g.family("python_gc_objects_uncollectable_total", "Uncollectable objects found during GC", "counter")
	for i := range 3 {
		g.sample("python_gc_objects_uncollectable_total", fmt.Sprintf(`{generation="%d"}`, i), 0)
	}
	g.family("python_gc_collections_total", "Number of times this generation was collected", "counter")
	for i, v := range []float64{2871, 261, 17} {
		g.sample("python_gc_collections_total", fmt.Sprintf(`{generation="%d"}`, i), v)
	}
	g.family("python_info", "Python platform information", "gauge")
	g.sample("python_info", `{implementation="CPython",major="3",minor="12",patchlevel="11",version="3.12.11"}`, 1)
	for _, p := range []struct {
		name, help, typ string
		v               float64
	}{
		{"process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", 84562911232},
		{"process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", 3221454848},
		{"process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge", 1736417861.54},
		{"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter", 1234.56},
		{"process_open_fds", "Number of open file descriptors.", "gauge", 123},
		{"process_max_fds", "Maximum number of open file descriptors.", "gauge", 1048576},
	} {
		g.family(p.name, p.help, p.typ)
		g.sample(p.name, "", p.v)
	}
}

func (g *gen) v1VLLM() {
	g.cacheConfigInfo()
	g.gauge("vllm:num_requests_running", "Number of requests in model execution batches.", func(e engineStats) float64 { return e.running })
	g.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", func(e engineStats) float64 { return e.waiting })
	g.family("vllm:num_requests_waiting_by_reason", "Number of requests waiting to be processed, by reason.", "gauge")
	for _, e := range g.f.engines {
		g.sample("vllm:num_requests_waiting_by_reason", g.labels(e, "reason", "capacity"), e.waitingByCapacity)
		g.sample("vllm:num_requests_waiting_by_reason", g.labels(e, "reason", "deferred"), 7)
	}
	g.gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", func(e engineStats) float64 { return e.kvUsage })
	g.counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.", func(e engineStats) float64 { return e.prompt })
	g.counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", func(e engineStats) float64 { return math.Floor(e.prompt * 0.37) })
	g.counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", func(e engineStats) float64 { return e.preemptions })
	g.counter("vllm:prompt_tokens", "Number of prefill tokens processed.", func(e engineStats) float64 { return e.prompt })
	if g.f.engines[0].cached > 0 {
		g.counter("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local prefix cache hits).", func(e engineStats) float64 { return e.cached })
	}
	g.counter("vllm:generation_tokens", "Number of generation tokens processed.", func(e engineStats) float64 { return e.gen })
	g.requestSuccess()
	g.tokenHistograms()
	g.histogram("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", cudagraphSizes(), 96, func(e engineStats) float64 { return e.iterations })
	g.latencyHistograms(true)
}

func (g *gen) legacyVLLM() {
	g.cacheConfigInfo()
	g.gauge("vllm:num_requests_running", "Number of requests currently running on GPU.", func(e engineStats) float64 { return e.running })
	g.gauge("vllm:num_requests_swapped", "Number of requests swapped to CPU.", func(engineStats) float64 { return 0 })
	g.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", func(e engineStats) float64 { return e.waiting })
	g.gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", func(e engineStats) float64 { return e.kvUsage })
	g.gauge("vllm:cpu_cache_usage_perc", "CPU KV-cache usage. 1 means 100 percent usage.", func(engineStats) float64 { return 0 })
	g.gauge("vllm:gpu_prefix_cache_hit_rate", "GPU prefix cache block hit rate.", func(engineStats) float64 { return 0.3712 })
	g.counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", func(e engineStats) float64 { return e.preemptions })
	g.counter("vllm:prompt_tokens", "Number of prefill tokens processed.", func(e engineStats) float64 { return e.prompt })
	g.counter("vllm:generation_tokens", "Number of generation tokens processed.", func(e engineStats) float64 { return e.gen })
	g.histogram("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
		[]float64{1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8096}, 64, func(e engineStats) float64 { return e.iterations })
	g.latencyHistograms(false)
	g.tokenHistograms()
	g.requestSuccess()
}

func (g *gen) cacheConfigInfo() {
	g.family("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", "gauge")
	for _, e := range g.f.engines {
		l := `{block_size="16",cache_dtype="auto",calculate_kv_scales="False",cpu_offload_gb="0",enable_prefix_caching="True",`
		if e.id != "" {
			l += `engine="` + e.id + `",`
		}
		l += `gpu_memory_utilization="0.9",is_attention_free="False",num_cpu_blocks="None",num_gpu_blocks="29127",prefix_caching_hash_algo="builtin",sliding_window="None",swap_space="4",swap_space_bytes="4294967296"}`
		g.sample("vllm:cache_config_info", l, 1)
	}
}

func (g *gen) requestSuccess() {
	g.family("vllm:request_success_total", "Count of successfully processed requests.", "counter")
	shares := map[string]float64{"stop": 0.91, "length": 0.08, "abort": 0.01}
	reasons := []string{"stop", "length", "abort"}
	for _, e := range g.f.engines {
		for _, r := range reasons {
			g.sample("vllm:request_success_total", g.labels(e, "finished_reason", r), math.Round(e.requests*shares[r]))
		}
	}
	g.createdFamily("vllm:request_success", "Count of successfully processed requests.", reasons, "finished_reason")
}

func (g *gen) tokenHistograms() {
	b := buckets125(131072)
	perRequest := func(e engineStats) float64 { return e.requests }
	g.histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", b, 1100, perRequest)
	g.histogram("vllm:request_generation_tokens", "Number of generation tokens processed.", b, 240, perRequest)
	g.histogram("vllm:request_max_num_generation_tokens", "Histogram of maximum number of requested generation tokens.", b, 512, perRequest)
	g.histogram("vllm:request_params_n", "Histogram of the n request parameter.", []float64{1, 2, 5, 10, 20}, 0.6, perRequest)
	g.histogram("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", b, 512, perRequest)
}

func (g *gen) latencyHistograms(v1 bool) {
	perRequest := func(e engineStats) float64 { return e.requests }
	tpot := []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0}
	latency := []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}
	g.histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
		[]float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}, 0.21, perRequest)
	g.histogram("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", tpot, 0.031, func(e engineStats) float64 { return e.gen })
	if v1 {
		g.histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", tpot, 0.031, func(e engineStats) float64 { return e.gen })
		g.histogram("vllm:request_time_per_output_token_seconds", "Histogram of time_per_output_token_seconds per request.", tpot, 0.033, perRequest)
	}
	g.histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", latency, 7.9, perRequest)
	g.histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", latency, 0.4, perRequest)
	g.histogram("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", latency, 7.5, perRequest)
	g.histogram("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", latency, 0.19, perRequest)
	g.histogram("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", latency, 7.3, perRequest)
}

// labels renders model_name, engine (unless V0) and extra name/value pairs, in prometheus_client's order.
func (g *gen) labels(e engineStats, extra ...string) string {
	l := `{model_name="` + modelName + `"`
	if e.id != "" {
		l += `,engine="` + e.id + `"`
	}
	for i := 0; i < len(extra); i += 2 {
		l += `,` + extra[i] + `="` + extra[i+1] + `"`
	}
	return l + "}"
}

func (g *gen) family(name, help, typ string) {
	fmt.Fprintf(g, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (g *gen) sample(name, labels string, v float64) {
	fmt.Fprintf(g, "%s%s %s\n", name, labels, goString(v))
}

func (g *gen) gauge(name, help string, v func(engineStats) float64) {
	g.family(name, help, "gauge")
	for _, e := range g.f.engines {
		g.sample(name, g.labels(e), v(e))
	}
}

func (g *gen) counter(base, help string, v func(engineStats) float64) {
	g.family(base+"_total", help, "counter")
	for _, e := range g.f.engines {
		g.sample(base+"_total", g.labels(e), v(e))
	}
	g.createdFamily(base, help, []string{""}, "")
}

// createdFamily is prometheus_client's _created gauge family, one series per engine and extra label value.
func (g *gen) createdFamily(base, help string, values []string, label string) {
	g.family(base+"_created", help, "gauge")
	for _, e := range g.f.engines {
		for _, v := range values {
			var l string
			if label == "" {
				l = g.labels(e)
			} else {
				l = g.labels(e, label, v)
			}
			g.created += 0.0001373
			g.sample(base+"_created", l, g.created)
		}
	}
}

// histogram writes cumulative buckets of a log-logistic distribution with the given median, so counts grow
// along the bounds like real latencies and token counts do.
func (g *gen) histogram(name, help string, bounds []float64, median float64, count func(engineStats) float64) {
	g.family(name, help, "histogram")
	for _, e := range g.f.engines {
		n := count(e)
		for _, b := range bounds {
			g.sample(name+"_bucket", g.labels(e, "le", goString(b)), math.Floor(n/(1+(median/b)*(median/b))))
		}
		g.sample(name+"_bucket", g.labels(e, "le", "+Inf"), n)
		g.sample(name+"_count", g.labels(e), n)
		g.sample(name+"_sum", g.labels(e), math.Round(n*median*1.37*1e6)/1e6)
	}
	g.createdFamily(name, help, []string{""}, "")
}

// buckets125 is vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to max.
func buckets125(max float64) []float64 {
	var out []float64
	for exp := 1.0; ; exp *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if m*exp > max {
				return out
			}
			out = append(out, m*exp)
		}
	}
}

// cudagraphSizes are vLLM's default CUDA graph capture sizes, which V1 uses as iteration_tokens buckets.
func cudagraphSizes() []float64 {
	out := []float64{1, 2, 4}
	for s := 8; s < 256; s += 8 {
		out = append(out, float64(s))
	}
	for s := 256; s <= 512; s += 16 {
		out = append(out, float64(s))
	}
	return out
}

// goString is prometheus_client's floatToGoString: Python's repr, switching to an exponent above 1e6.
func goString(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	s := pyRepr(v)
	if dot := strings.IndexByte(s, '.'); v > 0 && dot > 6 {
		mantissa := strings.TrimRight(s[:1]+"."+s[1:dot]+s[dot+1:], "0.")
		return mantissa + "e+0" + strconv.Itoa(dot-1)
	}
	return s
}

func pyRepr(v float64) string {
	abs := math.Abs(v)
	switch {
	case abs >= 1e16 || (abs < 1e-4 && abs != 0):
		return strconv.FormatFloat(v, 'e', -1, 64)
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
