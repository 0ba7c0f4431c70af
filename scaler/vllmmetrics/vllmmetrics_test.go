package vllmmetrics

import (
	"errors"
	"fmt"
	"math"
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
		{"prompt lengths summed over engines", base + `vllm:request_prompt_tokens_bucket{model_name="m",engine="0",le="1.0"} 1
vllm:request_prompt_tokens_bucket{model_name="m",engine="0",le="10.0"} 3
vllm:request_prompt_tokens_bucket{model_name="m",engine="0",le="+Inf"} 4
vllm:request_prompt_tokens_count{model_name="m",engine="0"} 4
vllm:request_prompt_tokens_sum{model_name="m",engine="0"} 25.0
vllm:request_prompt_tokens_bucket{le="1",engine="1",model_name="m"} 0
vllm:request_prompt_tokens_bucket{le="1e1",engine="1",model_name="m"} 20
vllm:request_prompt_tokens_bucket{le="Inf",engine="1",model_name="m"} 40
`, Snapshot{Waiting: 2, Running: 5, GenerationTokens: 100, Engines: 1, Models: []string{"m"},
			PromptLengths: []Bucket{{1, 1}, {10, 23}, {math.Inf(1), 44}}}},
		{"prompt lengths in any order, over model names, V0", base + `vllm:request_prompt_tokens_bucket{model_name="b",le="+Inf"} 4
vllm:request_prompt_tokens_bucket{model_name="a",le="+Inf"} 1.5
vllm:request_prompt_tokens_bucket{model_name="b",le="-0"} 1
vllm:request_prompt_tokens_bucket{model_name="a",le="0"} 0
vllm:request_prompt_tokens_bucket{le="2048",model_name="b"} 2
vllm:request_prompt_tokens_bucket{model_name="a",le="2048.0"} 0.5
`, Snapshot{Waiting: 2, Running: 5, GenerationTokens: 100, Engines: 1, Models: []string{"a", "b", "m"},
			PromptLengths: []Bucket{{0, 1}, {2048, 2.5}, {math.Inf(1), 5.5}}}},
		{"prompt lengths: +Inf alone", base + `vllm:request_prompt_tokens_bucket{model_name="m",engine="0",le="+Inf"} 7
`, Snapshot{Waiting: 2, Running: 5, GenerationTokens: 100, Engines: 1, Models: []string{"m"},
			PromptLengths: []Bucket{{math.Inf(1), 7}}}},
		{"prompt lengths: _sum, _count and the histogram's other lines are not read", base + `vllm:request_prompt_tokens_sum{model_name="m",engine="0"} NaN
vllm:request_prompt_tokens_count{model_name="m",engine="0"} -1
vllm:request_prompt_tokens{model_name="m",engine="0",le="1"} -1
vllm:request_prompt_tokens_created{model_name="m",engine="0"} -1
vllm:request_prompt_tokens_bucket_total{model_name="m",engine="0",le="1"} -1
vllm:request_prompt_tokens_buckets{model_name="m",engine="0"} -1
`, Snapshot{Waiting: 2, Running: 5, GenerationTokens: 100, Engines: 1, Models: []string{"m"}}},
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
		{"bucket NaN", base + bucket("0", "+Inf", "NaN"), ErrInvalidValue, `line 4: vllm:request_prompt_tokens_bucket{engine="0",le="+Inf"} is NaN`},
		{"bucket +Inf", base + bucket("0", "+Inf", "+Inf"), ErrInvalidValue, `is +Inf; vLLM's gauges, counters and bucket counts are finite`},
		{"bucket negative", base + bucket("0", "1.0", "-1") + bucket("0", "+Inf", "1"), ErrInvalidValue, `line 4: vllm:request_prompt_tokens_bucket{engine="0",le="1.0"} is -1`},
		{"le not a number", base + bucket("0", "1.0", "1") + bucket("0", "one", "1"), ErrInvalidValue,
			`line 5: vllm:request_prompt_tokens_bucket{engine="0",le="one"}: le="one" is not a number; a bucket's upper bound is a float or +Inf`},
		{"le empty", base + bucket("0", "", "1"), ErrInvalidValue, `le="" is not a number`},
		{"le out of range", base + bucket("0", "1e999", "1"), ErrInvalidValue, `le="1e999" is not a number`},
		{"le NaN", base + bucket("0", "NaN", "1"), ErrInvalidValue, `line 4: vllm:request_prompt_tokens_bucket{engine="0",le="NaN"}: le is NaN`},
		{"no le", base + `vllm:request_prompt_tokens_bucket{engine="0"} 1` + "\n", ErrInvalidValue,
			`line 4: vllm:request_prompt_tokens_bucket{engine="0"} has no le label; a histogram bucket needs its upper bound`},
		{"no +Inf", base + bucket("0", "1.0", "1") + bucket("0", "2.0", "1") + bucket("1", "1.0", "1") + bucket("1", "2.0", "1"), ErrInvalidValue,
			`vllm:request_prompt_tokens_bucket has no le="+Inf" bucket (the largest is le="2")`},
		{"an engine without +Inf", base + bucket("0", "1.0", "1") + bucket("0", "+Inf", "1") + bucket("1", "1.0", "1"), ErrInvalidValue,
			`vllm:request_prompt_tokens_bucket{le="+Inf"} is in 1 of its 2 label sets`},
		{"engines with other bounds", base + bucket("0", "1.0", "1") + bucket("0", "+Inf", "1") + bucket("1", "2.0", "1") + bucket("1", "+Inf", "1"), ErrInvalidValue,
			`vllm:request_prompt_tokens_bucket{le="1"} is in 1 of its 2 label sets; the engines' buckets can be summed only if they all have the same bounds`},
		{"engines with other bounds, each bound in as many", base + bucket("0", "1", "1") + bucket("0", "+Inf", "1") + bucket("1", "1", "1") +
			bucket("1", "2", "1") + bucket("2", "2", "1") + bucket("2", "+Inf", "1"), ErrInvalidValue, `{le="1"} is in 2 of its 3 label sets`},
		{"not cumulative", base + bucket("0", "1.0", "5") + bucket("0", "+Inf", "4"), ErrInvalidValue,
			`vllm:request_prompt_tokens_bucket{le="+Inf"} counts 4 requests, fewer than the 5 at le="1" (summed over label sets): cumulative counts cannot decrease`},
		{"not cumulative once summed", base + bucket("0", "1.0", "5") + bucket("0", "2.0", "5") + bucket("0", "+Inf", "5") +
			bucket("1", "1.0", "0") + bucket("1", "2.0", "3") + bucket("1", "+Inf", "0"), ErrInvalidValue,
			`{le="+Inf"} counts 5 requests, fewer than the 8 at le="2"`},
		{"bucket sum overflows", base + bucket("0", "+Inf", "1.7e308") + bucket("1", "+Inf", "1.7e308"), ErrInvalidValue,
			`the sum of vllm:request_prompt_tokens_bucket{le="+Inf"} over its label sets overflows`},
		{"duplicate bucket", base + bucket("0", "1.0", "1") + bucket("0", "+Inf", "1") + bucket("0", "1.0", "1"), ErrDuplicate,
			`line 6: vllm:request_prompt_tokens_bucket{engine="0",le="1.0"} is already on line 4`},
		{"duplicate bucket, another spelling of its bound", base + bucket("0", "1.0", "1") + bucket("0", "+Inf", "1") + bucket("0", "1", "1"), ErrDuplicate,
			`line 6: vllm:request_prompt_tokens_bucket{engine="0",le="1"} is already on line 4`},
		{"duplicate +Inf bucket", base + bucket("0", "+Inf", "1") + bucket("1", "+Inf", "1") + bucket("0", "inf", "1"), ErrDuplicate,
			`line 6: vllm:request_prompt_tokens_bucket{engine="0",le="inf"} is already on line 4`},
		{"duplicate bucket among other label sets", base + bucket("0", "1", "1") + bucket("1", "1", "1") + bucket("0", "+Inf", "1") +
			"vllm:request_prompt_tokens_bucket{le=\"1.0\",engine=\"1\"} 1\n", ErrDuplicate, `line 7: vllm:request_prompt_tokens_bucket{le="1.0",engine="1"} is already on line 5`},
		{"too many buckets", base + manyBuckets(1025),
			ErrTooManySeries, "line 1028: more than 1024 label sets for vllm:request_prompt_tokens_bucket"},
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

// bucket is a line of vllm:request_prompt_tokens_bucket.
func bucket(engine, le, value string) string {
	return `vllm:request_prompt_tokens_bucket{engine="` + engine + `",le="` + le + `"} ` + value + "\n"
}

// manyBuckets is n buckets of distinct engines.
func manyBuckets(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(bucket(strconv.Itoa(i), "+Inf", "1"))
	}
	return b.String()
}

// TestParsePromptLengthsManyBounds reads more bounds than a linear scan finds, in an order that changes
// from one label set to the next, as the largest histograms MaxSeriesPerMetric allows.
func TestParsePromptLengthsManyBounds(t *testing.T) {
	const bounds, engines = 256, MaxSeriesPerMetric / 256
	var b strings.Builder
	b.WriteString(base)
	for e := range engines {
		for i := range bounds {
			j := (i*(2*e+1) + e + 1) % bounds // each engine its own permutation of the bounds
			le := strconv.Itoa(j)
			if j == bounds-1 {
				le = "+Inf"
			}
			fmt.Fprintf(&b, "vllm:request_prompt_tokens_bucket{engine=\"%d\",le=\"%s\"} %d\n", e, le, j*(e+1))
		}
	}
	s, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.PromptLengths) != bounds {
		t.Fatalf("%d buckets, want %d", len(s.PromptLengths), bounds)
	}
	for j, got := range s.PromptLengths {
		want := Bucket{float64(j), float64(j * engines * (engines + 1) / 2)}
		if j == bounds-1 {
			want.UpperBound = math.Inf(1)
		}
		if got != want {
			t.Fatalf("bucket %d = %+v, want %+v", j, got, want)
		}
	}
	if _, err := Parse([]byte(b.String() + "vllm:request_prompt_tokens_bucket{engine=\"0\",le=\"0.5\"} 1\n")); !errors.Is(err, ErrTooManySeries) {
		t.Errorf("bucket 1025: err = %v, want ErrTooManySeries", err)
	}
	if _, err := Parse([]byte(strings.Replace(b.String(), `engine="2",le="17"`, `engine="2",le="17.5"`, 1))); !errors.Is(err, ErrInvalidValue) ||
		!strings.Contains(err.Error(), `{le="17"} is in 3 of its 4 label sets`) {
		t.Errorf("one bound changed: err = %v", err)
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

// TestParseDuplicateAmongMany checks duplicates among more series than the series set's first table holds.
func TestParseDuplicateAmongMany(t *testing.T) {
	const n = 300
	var b strings.Builder
	b.WriteString(base)
	for i := range n {
		b.WriteString(`vllm:num_requests_waiting{model_name="m",engine="` + strconv.Itoa(i+1) + `"} 1` + "\n")
	}
	for _, dup := range []int{1, 3, 20, 95, 96, 97, 200, n} {
		payload := b.String() + `vllm:num_requests_waiting{engine="` + strconv.Itoa(dup) + `",model_name="m"} 1` + "\n"
		_, err := Parse([]byte(payload))
		if !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), "line "+strconv.Itoa(3+n+1)+": ") ||
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
		// The scanner's Sample, the accumulator, Models and its string, PromptLengths.
		if limit := 5.0; allocs > limit {
			t.Errorf("%s: %v allocations per Parse, want at most %v", f.file, allocs, limit)
		}
	}
}
