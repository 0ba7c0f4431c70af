package vllmmetrics

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/llm-d/llm-d/scaler/promtext"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.file, func(t *testing.T) {
			data := readFixture(t, f.file)
			got, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, f.want) {
				t.Errorf("Parse:\n got %+v\nwant %+v", got, f.want)
			}
			ref, err := expfmtSnapshot(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, ref) {
				t.Errorf("Parse and expfmt disagree:\n   Parse %+v\n  expfmt %+v", got, ref)
			}
		})
	}
}

// base is a minimal valid payload; cases append to it or replace it.
const base = `vllm:num_requests_waiting{model_name="m",engine="0"} 2
vllm:num_requests_running{model_name="m",engine="0"} 5
vllm:generation_tokens_total{model_name="m",engine="0"} 100
`

func TestParse(t *testing.T) {
	cases := []struct {
		name    string
		payload string
		want    Snapshot
	}{
		{"minimal", base, Snapshot{Waiting: 2, Running: 5, GenerationTokens: 100, Engines: 1, Models: []string{"m"}}},
		{"exact names only", base + `vllm:num_requests_waiting_by_reason{model_name="m",engine="0",reason="capacity"} 50
vllm:num_requests_waitin 50
vllm:num_requests_waiting_total 50
vllm:generation_tokens_created{model_name="m",engine="0"} 1.7e9
vllm:generation_tokens_total_foo 50
vllm:request_generation_tokens_bucket{model_name="m",engine="0",le="+Inf"} 50
vllm:request_generation_tokens_sum{model_name="m",engine="0"} 50
vllm:num_preemptions 50
vllm:num_preemptions_created 50
vllm:kv_cache_usage 50
vllm:gpu_cache_usage_perc_created 50
vllm:prompt_tokens_total_created 50
vllm_num_requests_waiting 50
num_requests_waiting 50
vllm:num_requests_running:avg 50
`, Snapshot{Waiting: 2, Running: 5, GenerationTokens: 100, Engines: 1, Models: []string{"m"}}},
		{"optional counters", base + `vllm:prompt_tokens_total{model_name="m",engine="0"} 1.5e+06
vllm:num_preemptions_total{model_name="m",engine="0"} 3
`, Snapshot{Waiting: 2, Running: 5, GenerationTokens: 100, PromptTokens: 1.5e6, Preemptions: 3, Engines: 1, Models: []string{"m"}}},
		{"new KV name preferred", base + `vllm:gpu_cache_usage_perc{model_name="m",engine="0"} 0.9
vllm:kv_cache_usage_perc{model_name="m",engine="0"} 0.25
`, Snapshot{Waiting: 2, Running: 5, GenerationTokens: 100, KVCacheUsage: 0.25, KVCacheMetric: "vllm:kv_cache_usage_perc", Engines: 1, Models: []string{"m"}}},
		{"old KV name alone", base + `vllm:gpu_cache_usage_perc{model_name="m",engine="0"} 0.9
`, Snapshot{Waiting: 2, Running: 5, GenerationTokens: 100, KVCacheUsage: 0.9, KVCacheMetric: "vllm:gpu_cache_usage_perc", Engines: 1, Models: []string{"m"}}},
		{"engines and models", `vllm:num_requests_waiting{model_name="b",engine="0"} 1
vllm:num_requests_waiting{model_name="b",engine="1"} 2
vllm:num_requests_waiting{model_name="a",engine="2"} 4
vllm:num_requests_running{engine="0",model_name="b"} 8
vllm:num_requests_running{engine="1",model_name="b"} 16
vllm:num_requests_running{engine="2",model_name="a"} 32
vllm:num_requests_running{engine="2",model_name="c"} 64
vllm:kv_cache_usage_perc{engine="0",model_name="b"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="b"} 0
vllm:kv_cache_usage_perc{engine="2",model_name="a"} 1
vllm:generation_tokens_total{model_name="b"} 7
`, Snapshot{Waiting: 7, Running: 120, GenerationTokens: 7, KVCacheUsage: 0.5, KVCacheMetric: "vllm:kv_cache_usage_perc", Engines: 3, Models: []string{"a", "b", "c"}}},
		{"no labels at all", "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\nvllm:generation_tokens_total 0\n",
			Snapshot{Engines: 1}},
		{"running with and without engine label", base + `vllm:num_requests_running{model_name="m"} 1
`, Snapshot{Waiting: 2, Running: 6, GenerationTokens: 100, Engines: 2, Models: []string{"m"}}},
		{"CRLF, no final newline, comments", "# HELP vllm:num_requests_waiting x\r\n# TYPE vllm:num_requests_waiting gauge\r\n" +
			strings.ReplaceAll(strings.TrimSuffix(base, "\n"), "\n", "\r\n"),
			Snapshot{Waiting: 2, Running: 5, GenerationTokens: 100, Engines: 1, Models: []string{"m"}}},
		{"garbage in unwanted lines is not read", base + "process_cpu_seconds_total {{{ not even text\n",
			Snapshot{Waiting: 2, Running: 5, GenerationTokens: 100, Engines: 1, Models: []string{"m"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse([]byte(c.payload))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	many := func(name string, n int) string {
		var b strings.Builder
		b.WriteString(base)
		for i := range n {
			b.WriteString(name + `{model_name="m",engine="` + strconv.Itoa(i+1) + `"} 1` + "\n")
		}
		return b.String()
	}
	cases := []struct {
		name    string
		payload string
		is      error
		msg     string
	}{
		{"empty", "", ErrMissing, "no vllm:num_requests_waiting, no vllm:num_requests_running, no vllm:generation_tokens_total (is this a vLLM /metrics endpoint?)"},
		{"not vLLM", "# TYPE up gauge\nup 1\n", ErrMissing, "is this a vLLM /metrics endpoint?"},
		{"only by_reason", strings.Replace(base, "vllm:num_requests_waiting{", "vllm:num_requests_waiting_by_reason{", 1), ErrMissing, "no vllm:num_requests_waiting ("},
		{"only _created", strings.Replace(base, "vllm:generation_tokens_total", "vllm:generation_tokens_created", 1), ErrMissing, "no vllm:generation_tokens_total ("},
		{"HTML", "<html><body>502 Bad Gateway</body></html>\n", ErrSyntax, `line 1: expected a metric name`},
		{"JSON", `{"detail":"Not Found"}`, ErrSyntax, `line 1: line starts with '{'`},
		{"bad value", base + "vllm:num_requests_running{engine=\"1\"} twelve\n", ErrSyntax, `line 4: metric "vllm:num_requests_running": value "twelve" is not a float`},
		{"bad label", base + "vllm:kv_cache_usage_perc{engine=1} 0.5\n", ErrSyntax, `line 4: expected '"' to open the value of label "engine"`},
		{"NaN", base + "vllm:kv_cache_usage_perc{engine=\"0\"} NaN\n", ErrInvalidValue, `line 4: vllm:kv_cache_usage_perc{engine="0"} is NaN`},
		{"+Inf", strings.Replace(base, "} 2", "} +Inf", 1), ErrInvalidValue, `line 1: vllm:num_requests_waiting{model_name="m",engine="0"} is +Inf`},
		{"-Inf", base + "vllm:num_preemptions_total -Inf\n", ErrInvalidValue, `vllm:num_preemptions_total{} is -Inf`},
		{"negative", base + "vllm:prompt_tokens_total{engine=\"0\"} -1\n", ErrInvalidValue, `line 4: vllm:prompt_tokens_total{engine="0"} is -1`},
		{"negative legacy KV", base + "vllm:gpu_cache_usage_perc -0.5\n", ErrInvalidValue, `is -0.5`},
		{"duplicate", base + "vllm:num_requests_running{model_name=\"m\",engine=\"0\"} 5\n", ErrDuplicate,
			`line 4: vllm:num_requests_running{model_name="m",engine="0"} is already on line 2`},
		{"duplicate written differently", base + "vllm:num_requests_running { engine = \"0\", model_name=\"m\" , }\t5\n", ErrDuplicate, `line 4: vllm:num_requests_running{engine="0",model_name="m"} is already on line 2`},
		{"duplicate in another order", base + "vllm:num_requests_running{engine=\"0\",model_name=\"m\",} 6 1700000000000\n", ErrDuplicate, `is already on line 2`},
		{"duplicate without labels", base + "vllm:generation_tokens_total 1\nvllm:generation_tokens_total 2\n", ErrDuplicate, `line 5: vllm:generation_tokens_total{} is already on line 4`},
		{"label explosion", many("vllm:num_requests_running", 1024), ErrTooManySeries,
			"line 1027: more than 1024 label sets for vllm:num_requests_running"},
		{"sum overflows", base + "vllm:prompt_tokens_total{a=\"1\"} 1.7e308\nvllm:prompt_tokens_total{a=\"2\"} 1.7e308\n", ErrInvalidValue,
			"the sum of vllm:prompt_tokens_total over its label sets overflows"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse([]byte(c.payload))
			if !errors.Is(err, c.is) {
				t.Fatalf("err = %v, want one wrapping %v", err, c.is)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("err = %q, want it to contain %q", err, c.msg)
			}
			if !reflect.DeepEqual(got, Snapshot{}) {
				t.Errorf("Snapshot = %+v on error, want zero", got)
			}
			if c.is == ErrSyntax {
				if _, ok := errors.AsType[*promtext.SyntaxError](err); !ok {
					t.Errorf("a syntax error must also wrap the *promtext.SyntaxError")
				}
			}
		})
	}
}

func TestParseAtTheSeriesLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(base)
	for i := range MaxSeriesPerMetric - 1 {
		b.WriteString(`vllm:num_requests_running{model_name="m",engine="` + strconv.Itoa(i+1) + `"} 1` + "\n")
	}
	s, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if s.Engines != MaxSeriesPerMetric || s.Running != 5+MaxSeriesPerMetric-1 {
		t.Errorf("Engines = %d, Running = %v", s.Engines, s.Running)
	}
}

// TestParseDuplicateAmongMany checks duplicates past the linearly compared first series.
func TestParseDuplicateAmongMany(t *testing.T) {
	var b strings.Builder
	b.WriteString(base)
	for i := range 40 {
		b.WriteString(`vllm:num_requests_waiting{model_name="m",engine="` + strconv.Itoa(i+1) + `"} 1` + "\n")
	}
	for _, dup := range []int{1, 3, 20, 40} {
		payload := b.String() + `vllm:num_requests_waiting{engine="` + strconv.Itoa(dup) + `",model_name="m"} 1` + "\n"
		_, err := Parse([]byte(payload))
		if !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), "line 44: ") ||
			!strings.Contains(err.Error(), "already on line "+strconv.Itoa(3+dup)) {
			t.Errorf("duplicate of engine %d: err = %v", dup, err)
		}
	}
	if _, err := Parse([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
}

// TestParseAllocs keeps Parse's allocations a small constant, whatever the size of the payload.
func TestParseAllocs(t *testing.T) {
	for _, f := range fixtures {
		data := readFixture(t, f.file)
		allocs := testing.AllocsPerRun(20, func() {
			if _, err := Parse(data); err != nil {
				t.Fatal(err)
			}
		})
		// The scanner's Sample, the accumulator, Models and its string.
		if limit := 4.0; allocs > limit {
			t.Errorf("%s: %v allocations per Parse, want at most %v", f.file, allocs, limit)
		}
	}
}
