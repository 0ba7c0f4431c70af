package loadgen

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-d/llm-d/vllmsim"
	"github.com/llm-d/llm-d/vllmsim/server"
	"github.com/llm-d/llm-d/vllmsim/server/servertest"
)

// simulator serves a fast simulated vLLM until the test ends or stop is called.
func simulator(t *testing.T) (url string, stop func()) {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Model = "sim"
	cfg.Params = vllmsim.A10GLlama8B()
	cfg.Params.StartupDelay = 0
	cfg.Speed = 50
	return servertest.Listen(t, cfg, "127.0.0.1:0")
}

func generator(t *testing.T, cfg Config) *Generator {
	t.Helper()
	if cfg.Model == "" {
		cfg.Model = "sim"
	}
	if cfg.PromptTokens == 0 {
		cfg.PromptTokens = 100
	}
	if cfg.MaxTokens == 0 {
		cfg.MaxTokens = 16
	}
	if cfg.Arrivals == "" {
		cfg.Arrivals = Uniform
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestAgainstSimulator(t *testing.T) {
	url, _ := simulator(t)
	// Uniform arrivals at 0, 10ms, ..., 190ms: exactly 20.
	g := generator(t, Config{URL: url + "/v1", RPS: 100, Duration: 200 * time.Millisecond, MaxTokens: 12})
	s := g.Run(context.Background())
	if s.Requests != 20 || s.Successes != 20 || len(s.Errors) != 0 {
		t.Fatalf("requests %d, successes %d, errors %v (%v); want 20 successes", s.Requests, s.Successes, s.Errors, s.FirstErrors)
	}
	if s.OutputTokens != 20*12 {
		t.Errorf("output tokens %d, want %d", s.OutputTokens, 20*12)
	}
	for _, r := range g.Results() {
		if !(r.TTFT > 0 && r.TTFT < r.Latency) || r.OutputTokens != 12 {
			t.Errorf("result %+v: want 0 < TTFT < latency and 12 tokens", r)
		}
	}
	if !(s.TTFT.P50 <= s.TTFT.P95 && s.TTFT.P95 <= s.TTFT.P99 && s.TTFT.P99 < s.Latency.P99) || !(s.OutputTokensPerSecond > 0) {
		t.Errorf("summary %+v: percentiles out of order", s)
	}
	if p := g.Progress(); p.Sent != 20 || p.Done != 20 || p.InFlight != 0 || p.Errors != 0 {
		t.Errorf("final progress %+v", p)
	}
}

func TestPoissonIsReproducible(t *testing.T) {
	url, _ := simulator(t)
	count := func() int {
		g := generator(t, Config{URL: url, RPS: 200, Duration: 100 * time.Millisecond, Arrivals: Poisson, Seed: 7})
		s := g.Run(context.Background())
		if s.Successes != s.Requests {
			t.Errorf("errors %v: %v", s.Errors, s.FirstErrors)
		}
		return s.Requests
	}
	if a, b := count(), count(); a != b || a == 0 {
		t.Errorf("same seed gave %d and %d arrivals", a, b)
	}
}

func TestErrorsAreClassified(t *testing.T) {
	stream := func(w http.ResponseWriter, events ...string) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, e := range events {
			fmt.Fprintf(w, "data: %s\n\n", e)
		}
		w.(http.Flusher).Flush()
	}
	token := `{"choices":[{"index":0,"text":"hi"}]}`
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    ErrorKind
	}{
		{"500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }, "http_500"},
		{"429", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "slow down", http.StatusTooManyRequests) }, "http_429"},
		{"closed before answering", func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}, ErrConnection},
		{"closed mid-stream", func(w http.ResponseWriter, r *http.Request) {
			stream(w, token)
			panic(http.ErrAbortHandler) // drops the connection without ending the chunked body
		}, ErrStream},
		{"ended without DONE", func(w http.ResponseWriter, r *http.Request) { stream(w, token) }, ErrStream},
		{"malformed event", func(w http.ResponseWriter, r *http.Request) { stream(w, token, "{nope") }, ErrStream},
		{"error event", func(w http.ResponseWriter, r *http.Request) {
			stream(w, token, `{"error":{"message":"engine dead","code":500}}`)
		}, ErrStream},
		{"no text", func(w http.ResponseWriter, r *http.Request) { stream(w, "[DONE]") }, ErrStream},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewUnstartedServer(tc.handler)
			ts.Config.ErrorLog = quietLog()
			ts.Start()
			defer ts.Close()
			g := generator(t, Config{URL: ts.URL, RPS: 100, Duration: 30 * time.Millisecond})
			s := g.Run(context.Background())
			if s.Requests != 3 || s.Successes != 0 || s.Errors[tc.want] != 3 {
				t.Errorf("requests %d, successes %d, errors %v (%v); want 3 of kind %s", s.Requests, s.Successes, s.Errors, s.FirstErrors, tc.want)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(hang))
	defer ts.Close()
	g := generator(t, Config{URL: ts.URL, RPS: 100, Duration: 20 * time.Millisecond, Timeout: 50 * time.Millisecond})
	if s := g.Run(context.Background()); s.Errors[ErrTimeout] != 2 {
		t.Errorf("errors %v, want 2 timeouts", s.Errors)
	}
}

func TestConcurrencyCapRefuses(t *testing.T) {
	release := make(chan struct{})
	var arrived atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"text\":\"x\"}],\"usage\":{\"completion_tokens\":1}}\n\ndata: [DONE]\n\n")
	}))
	defer ts.Close()
	g := generator(t, Config{URL: ts.URL, RPS: 1000, Duration: 5 * time.Millisecond, Concurrency: 1})
	ran := make(chan Summary)
	go func() { ran <- g.Run(context.Background()) }()
	// The first request holds the only slot until every arrival has come and gone.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for g.Progress().Sent < 5 {
		<-tick.C
	}
	close(release)
	s := <-ran
	if s.Requests != 5 || s.Successes != 1 || s.Errors[ErrConcurrencyLimit] != 4 || arrived.Load() != 1 {
		t.Errorf("requests %d, successes %d, errors %v, server saw %d; want 1 sent and 4 refused",
			s.Requests, s.Successes, s.Errors, arrived.Load())
	}
}

func TestCancelStopsTheRun(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(hang))
	defer ts.Close()
	g := generator(t, Config{URL: ts.URL, RPS: 1000, Duration: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan Summary)
	go func() { ran <- g.Run(ctx) }()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for g.Progress().InFlight < 3 {
		<-tick.C
	}
	cancel()
	s := <-ran
	if s.Requests == 0 || s.Errors[ErrCanceled] != s.Requests {
		t.Errorf("requests %d, errors %v; want every one canceled", s.Requests, s.Errors)
	}
}

func TestModels(t *testing.T) {
	url, stop := simulator(t)
	ids, err := Models(context.Background(), nil, url+"/v1/")
	if err != nil || len(ids) != 1 || ids[0] != "sim" {
		t.Errorf("Models = %v, %v; want [sim]", ids, err)
	}
	stop()
	_, err = Models(context.Background(), nil, url)
	if _, ok := err.(*UnreachableError); !ok {
		t.Errorf("Models of a closed server: %v, want an UnreachableError", err)
	}
}

func TestBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8000":         "http://127.0.0.1:8000",
		"http://127.0.0.1:8000/":        "http://127.0.0.1:8000",
		"http://svc.ns.svc.cluster/v1":  "http://svc.ns.svc.cluster",
		"127.0.0.1:8000/v1/":            "http://127.0.0.1:8000",
		"https://gw.example/llm/v1?x=1": "https://gw.example/llm",
	} {
		if got, err := BaseURL(in); got != want || err != nil {
			t.Errorf("BaseURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := BaseURL("ftp://x"); err == nil {
		t.Error("BaseURL accepted ftp")
	}
}

func TestNewRejects(t *testing.T) {
	good := Config{URL: "http://127.0.0.1:1", Model: "m", RPS: 1, Duration: time.Second, PromptTokens: 1, MaxTokens: 1}
	for name, mutate := range map[string]func(*Config){
		"rps":         func(c *Config) { c.RPS = 0 },
		"duration":    func(c *Config) { c.Duration = 0 },
		"model":       func(c *Config) { c.Model = "" },
		"tokens":      func(c *Config) { c.MaxTokens = 0 },
		"arrivals":    func(c *Config) { c.Arrivals = "bursty" },
		"url":         func(c *Config) { c.URL = "ftp://x" },
		"concurrency": func(c *Config) { c.Concurrency = -1 },
	} {
		c := good
		mutate(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
	if _, err := New(good); err != nil {
		t.Error(err)
	}
}

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i))
	}
	if p := percentiles(d); p != (Percentiles{P50: 50, P95: 95, P99: 99}) {
		t.Errorf("percentiles of 1..100 = %+v", p)
	}
	if p := percentiles(nil); p != (Percentiles{}) {
		t.Errorf("percentiles of nothing = %+v", p)
	}
}

func TestPromptLength(t *testing.T) {
	g := generator(t, Config{URL: "http://127.0.0.1:1", RPS: 1, Duration: time.Second, PromptTokens: 500})
	p := g.prompt(3)
	// The simulator's estimate: 4 characters per token.
	if n := (len(p) + 3) / 4; n < 480 || n > 520 {
		t.Errorf("prompt of %d characters is about %d tokens, want about 500", len(p), n)
	}
	if strings.HasPrefix(p, g.prompt(3)[:9]) {
		t.Error("two prompts share their head; a prefix cache would serve the second")
	}
}

// quietLog keeps net/http's complaints about the handlers that break connections on purpose out of the
// test output.
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// hang answers nothing until the client gives up. Reading the body first is what lets net/http notice
// that the client went away and cancel the request's context.
func hang(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}
