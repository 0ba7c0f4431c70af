package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llm-d/llm-d/internal/poll"
	"github.com/llm-d/llm-d/loadgen"
	"github.com/llm-d/llm-d/test/testenv"
	"github.com/llm-d/llm-d/vllmsim"
	"github.com/llm-d/llm-d/vllmsim/server"
	"github.com/llm-d/llm-d/vllmsim/server/servertest"
)

// simulatedVLLM serves a fast simulated vLLM on 127.0.0.1 until the test ends.
func simulatedVLLM(t *testing.T) string {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Model = "sim-model"
	cfg.Params = vllmsim.H100Llama8B()
	cfg.Params.StartupDelay = 0
	cfg.Speed = 50
	return servertest.Start(t, cfg)
}

func TestBurstJSON(t *testing.T) {
	url := simulatedVLLM(t)
	var out, errb bytes.Buffer
	// No --model: it is read from /v1/models.
	code := run([]string{"burst", "--url", url + "/v1", "--rps", "100", "--duration", "100ms", "--arrivals", "uniform",
		"--prompt-tokens", "50", "--max-tokens", "8", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got struct {
		Model          string             `json:"model"`
		Requests       int                `json:"requests"`
		Successes      int                `json:"successes"`
		Errors         map[string]int     `json:"errors"`
		TTFT           map[string]float64 `json:"ttft_seconds"`
		Latency        map[string]float64 `json:"latency_seconds"`
		OutputTokens   int                `json:"output_tokens"`
		TokensPerSecon float64            `json:"output_tokens_per_second"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if got.Model != "sim-model" || got.Requests != 10 || got.Successes != 10 || len(got.Errors) != 0 || got.OutputTokens != 80 {
		t.Errorf("summary %+v; want 10 successes of 8 tokens from sim-model", got)
	}
	if !(got.TTFT["p50"] > 0 && got.TTFT["p99"] < got.Latency["p99"]) || !(got.TokensPerSecon > 0) {
		t.Errorf("ttft %v, latency %v, tokens/s %v", got.TTFT, got.Latency, got.TokensPerSecon)
	}
}

func TestBurstText(t *testing.T) {
	url := simulatedVLLM(t)
	var out, errb bytes.Buffer
	code := run([]string{"burst", "--url", url, "--model", "sim-model", "--rps", "200", "--duration", "50ms", "--max-tokens", "4"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"requests", "ttft            p50", "latency         p50", "tokens/s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBurstFailures(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "engine dead", http.StatusInternalServerError)
	}))
	defer failing.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	var out, errb bytes.Buffer
	code := run([]string{"burst", "--url", failing.URL, "--model", "m", "--rps", "100", "--duration", "30ms", "--arrivals", "uniform", "--json"}, &out, &errb)
	var got struct {
		Requests int            `json:"requests"`
		Errors   map[string]int `json:"errors"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if code != 1 || got.Requests != 3 || got.Errors["http_500"] != 3 || !strings.Contains(errb.String(), "no request succeeded") {
		t.Errorf("exit %d, summary %+v, stderr %q; want exit 1 after 3 http_500 errors", code, got, errb.String())
	}

	out.Reset()
	errb.Reset()
	code = run([]string{"burst", "--url", closed.URL, "--model", "m", "--rps", "10", "--duration", "1s"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "cannot reach") || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("unreachable: exit %d, stderr %q; want exit 1 and one line", code, errb.String())
	}
}

func TestBurstBadFlags(t *testing.T) {
	cases := []struct {
		args []string
		say  string
	}{
		{[]string{}, "--url"},
		{[]string{"--url", "http://127.0.0.1:1", "--duration", "1s"}, "--rps"},
		{[]string{"--url", "http://127.0.0.1:1", "--rps", "1"}, "--duration"},
		{[]string{"--url", "http://127.0.0.1:1", "--rps", "fast", "--duration", "1s"}, "rps"},
		{[]string{"--url", "ftp://x", "--rps", "1", "--duration", "1s"}, "not the http(s) URL"},
		{[]string{"--url", "http://127.0.0.1:1", "--rps", "1", "--duration", "1s", "--arrivals", "bursty"}, "--arrivals"},
		{[]string{"--url", "http://127.0.0.1:1", "--rps", "1", "--duration", "1s", "--max-tokens", "0"}, "--max-tokens"},
		{[]string{"--url", "http://127.0.0.1:1", "--rps", "1", "--duration", "1s", "--concurrency", "-1"}, "--concurrency"},
		{[]string{"--url", "http://127.0.0.1:1", "--rps", "1", "--duration", "1s", "extra"}, "unexpected argument"},
		{[]string{"--bogus"}, "bogus"},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		code := run(append([]string{"burst"}, tc.args...), &out, &errb)
		msg := errb.String()
		if code != 2 || !strings.Contains(msg, tc.say) || strings.Count(msg, "\n") != 1 || out.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line naming %q", tc.args, code, msg, tc.say)
		}
	}
}

func TestBurstProgress(t *testing.T) {
	url := simulatedVLLM(t)
	g, err := loadgen.New(loadgen.Config{URL: url, Model: "sim-model", RPS: 100, Duration: 100 * time.Millisecond,
		PromptTokens: 10, MaxTokens: 4, Arrivals: loadgen.Uniform})
	if err != nil {
		t.Fatal(err)
	}
	var errb testenv.SyncBuffer
	done, reported := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(reported)
		reportProgress(g, &errb, done, time.Millisecond)
	}()
	sum := g.Run(context.Background())
	// Let one line be printed after the last request, whenever the ticker comes.
	err = poll.Eventually(context.Background(), 30*time.Second, func() error {
		if sum.Requests != 10 || sum.Successes != 10 {
			return poll.Permanent(fmt.Errorf("burst: %d requests, %d successes, errors %v; want 10 and 10", sum.Requests, sum.Successes, sum.Errors))
		}
		if !strings.Contains(errb.String(), "sent 10  done 10  in flight 0  errors 0") {
			return fmt.Errorf("no final progress line in %q", errb.String())
		}
		return nil
	})
	close(done)
	<-reported
	if err != nil {
		t.Fatal(err)
	}
	out := errb.String()
	if strings.Contains(out, "\r") || !strings.HasSuffix(out, "\n") || !strings.Contains(out, "ttft p50 ") {
		t.Errorf("progress on a non-terminal: %q; want whole lines", out)
	}
}
