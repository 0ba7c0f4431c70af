package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func vllmPayload(tokens int) string {
	return fmt.Sprintf(`# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 3
vllm:num_requests_waiting{engine="1",model_name="m"} 2
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 7
vllm:num_requests_running{engine="1",model_name="m"} 9
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.7
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="m"} %d
vllm:generation_tokens_total{engine="1",model_name="m"} %d
`, tokens, tokens)
}

func TestProbeJSON(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		n := calls.Add(1)
		fmt.Fprint(w, vllmPayload(1000*int(n)))
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"probe", srv.URL, "--json", "--interval", "50ms"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if got["waiting"] != 5.0 || got["running"] != 16.0 || got["kv_cache_usage"] != 0.6 || got["kv_cache_metric"] != "vllm:kv_cache_usage_perc" {
		t.Errorf("signals %v", got)
	}
	if tps, _ := got["decode_tokens_per_second"].(float64); !(tps > 0) {
		t.Errorf("decode tokens/s %v, want the positive rate of 2000 tokens between scrapes", got["decode_tokens_per_second"])
	}
	if calls.Load() != 2 {
		t.Errorf("scraped %d times, want 2", calls.Load())
	}
}

func TestProbeErrors(t *testing.T) {
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>not metrics</html>\n") }))
	defer garbage.Close()
	notVLLM := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "up 1\n") }))
	defer notVLLM.Close()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"probe"}, 2, "usage: llmd probe"},
		{[]string{"probe", "ftp://x"}, 2, "not an http(s) URL"},
		{[]string{"nope"}, 2, "unknown command"},
		{[]string{"probe", "--interval", "1ms", garbage.URL}, 1, "malformed"},
		{[]string{"probe", "--interval", "1ms", notVLLM.URL}, 1, "vllm:num_requests_waiting"},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
		if code == 1 && strings.Count(strings.TrimSpace(errb.String()), "\n") != 0 {
			t.Errorf("%v: error is not one line: %q", tc.args, errb.String())
		}
	}
}
