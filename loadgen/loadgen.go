// Package loadgen drives an OpenAI-compatible server (vLLM, or the simulator in vllmsim/server) with
// streaming completion requests at a fixed arrival rate and measures what a user would see: time to the
// first token, total latency and output tokens, and errors by kind.
//
// The load is open loop: requests arrive on schedule whether or not earlier ones have finished, as users
// do, so that a slow server shows up as growing latency and errors rather than as a quietly lower rate.
// The in-flight cap (Config.Concurrency) exists to protect the machine running the generator; an arrival
// that finds it full is refused and counted as an error of kind ErrConcurrencyLimit.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Arrivals is how request arrival times are spread.
type Arrivals string

const (
	// Poisson spaces arrivals by exponentially distributed gaps of mean 1/RPS: independent users.
	Poisson Arrivals = "poisson"
	// Uniform spaces arrivals exactly 1/RPS apart, the first at time 0: ceil(RPS*Duration) requests.
	Uniform Arrivals = "uniform"
)

// Config is one run.
type Config struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:8000; a trailing /v1 (as in the operator's
	// status.endpoint) is accepted.
	URL string
	// Model is the model name sent in every request.
	Model string
	// RPS is the mean arrival rate, requests per second.
	RPS float64
	// Duration is how long requests keep arriving; the run then waits for those in flight.
	Duration time.Duration
	// PromptTokens is the approximate prompt length.
	PromptTokens int
	// MaxTokens is every request's max_tokens.
	MaxTokens int
	// Concurrency caps requests in flight; 0 means no cap.
	Concurrency int
	// Arrivals is Poisson or Uniform; empty means Poisson.
	Arrivals Arrivals
	// Timeout bounds each request from sending to its last token; 0 means 5 minutes.
	Timeout time.Duration
	// Seed makes Poisson arrivals and prompts reproducible; 0 picks one at random.
	Seed uint64
	// Client sends the requests; nil means a client whose connection pool fits Concurrency.
	Client *http.Client
}

// ErrorKind classifies a failed request.
type ErrorKind string

const (
	// ErrConnection: no response arrived: the connection was refused, reset or closed first.
	ErrConnection ErrorKind = "connection"
	// ErrTimeout: the request did not finish within Config.Timeout.
	ErrTimeout ErrorKind = "timeout"
	// ErrStream: the response began with 200 but its event stream broke, was malformed, carried an
	// error event or ended without [DONE].
	ErrStream ErrorKind = "stream"
	// ErrConcurrencyLimit: the arrival found Config.Concurrency requests in flight and was not sent.
	ErrConcurrencyLimit ErrorKind = "concurrency_limit"
	// ErrCanceled: the run was stopped (its context ended) while the request was in flight.
	ErrCanceled ErrorKind = "canceled"
)

// HTTPStatus is the kind of a request answered with a status other than 200, e.g. "http_500".
func HTTPStatus(code int) ErrorKind { return ErrorKind(fmt.Sprintf("http_%d", code)) }

// Result is one request's outcome.
type Result struct {
	// Sent is when the request was sent (or refused).
	Sent time.Time
	// TTFT is the time from sending to the first chunk carrying text; 0 if none arrived.
	TTFT time.Duration
	// Latency is the time from sending to the end of the stream.
	Latency time.Duration
	// OutputTokens is the usage's completion_tokens if the server reported it, else the number of
	// chunks carrying text.
	OutputTokens int
	// Err is "" for a success.
	Err ErrorKind
	// Detail says what went wrong, for a failure.
	Detail string
}

// Percentiles of a set of durations, by the nearest-rank method; zero if the set is empty.
type Percentiles struct {
	P50, P95, P99 time.Duration
}

// Summary is what a run measured.
type Summary struct {
	// Requests counts arrivals: successes plus every error, refusals included.
	Requests  int
	Successes int
	Errors    map[ErrorKind]int
	// TTFT and Latency are over successful requests.
	TTFT    Percentiles
	Latency Percentiles
	// OutputTokens is the sum over successful requests.
	OutputTokens int
	// Elapsed runs from the first arrival until the last request ended.
	Elapsed time.Duration
	// OutputTokensPerSecond is OutputTokens over Elapsed.
	OutputTokensPerSecond float64
	// FirstErrors keeps the detail of the first failure of each kind, to tell the user why.
	FirstErrors map[ErrorKind]string
}

// Progress is a run's state so far.
type Progress struct {
	// Sent counts arrivals so far, refused ones included.
	Sent     int
	Done     int
	InFlight int
	Errors   int
	// TTFTP50 is the median TTFT of the successes that ended in the last ProgressWindow, or of the
	// last success if none did: what the server does now, not since the start.
	TTFTP50 time.Duration
}

// ProgressWindow is how far back Progress looks for its TTFT median.
const ProgressWindow = 5 * time.Second

// Generator runs one load test.
type Generator struct {
	cfg      Config
	endpoint string
	client   *http.Client
	rng      *rand.Rand // used by the arrival loop only

	mu       sync.Mutex
	results  []Result
	ttfts    []endedTTFT // of successes, in the order they ended, for the progress median
	sent     int
	inFlight int
	errors   int
}

type endedTTFT struct {
	end  time.Time
	ttft time.Duration
}

// New checks cfg and returns a Generator for it.
func New(cfg Config) (*Generator, error) {
	var errs []error
	if cfg.Model == "" {
		errs = append(errs, errors.New("the model is empty"))
	}
	if !(cfg.RPS > 0) || math.IsInf(cfg.RPS, 0) {
		errs = append(errs, fmt.Errorf("the rate must be a positive number of requests per second, got %v", cfg.RPS))
	}
	if cfg.Duration <= 0 {
		errs = append(errs, fmt.Errorf("the duration must be positive, got %v", cfg.Duration))
	}
	if cfg.PromptTokens < 1 || cfg.MaxTokens < 1 {
		errs = append(errs, fmt.Errorf("prompt tokens (%d) and max tokens (%d) must be at least 1", cfg.PromptTokens, cfg.MaxTokens))
	}
	if cfg.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("concurrency must not be negative, got %d", cfg.Concurrency))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("the timeout must not be negative, got %v", cfg.Timeout))
	}
	switch cfg.Arrivals {
	case "":
		cfg.Arrivals = Poisson
	case Poisson, Uniform:
	default:
		errs = append(errs, fmt.Errorf("arrivals must be %q or %q, got %q", Poisson, Uniform, cfg.Arrivals))
	}
	base, err := BaseURL(cfg.URL)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Minute
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	g := &Generator{
		cfg:      cfg,
		endpoint: base + "/v1/completions",
		client:   cfg.Client,
		rng:      rand.New(rand.NewPCG(cfg.Seed, 0x6c6c6d64)),
	}
	if g.client == nil {
		g.client = newClient(cfg.Concurrency)
	}
	return g, nil
}

// newClient keeps enough idle connections for the load, so that a steady run does not open and close one
// per request, and does not time out on its own: each request carries Config.Timeout.
func newClient(concurrency int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(concurrency, 100)
	t.MaxIdleConns = t.MaxIdleConnsPerHost
	return &http.Client{Transport: t}
}

// HTTPURL parses what people type for a server: a URL, or host:port meaning http. ok is false unless it
// is an http(s) URL with a host.
func HTTPURL(raw string) (u *url.URL, ok bool) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	return u, err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https")
}

// BaseURL normalises a server address: http://host:port, host:port or http://host:port/v1 all give
// http://host:port.
func BaseURL(raw string) (string, error) {
	u, ok := HTTPURL(raw)
	if !ok {
		return "", fmt.Errorf("%q is not the http(s) URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000", raw)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/v1")
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimSuffix(u.String(), "/"), nil
}

// Run sends the requests and returns their summary once the last one has ended. If ctx ends first,
// arrivals stop, requests in flight are abandoned (ErrCanceled), and the summary covers what happened.
func (g *Generator) Run(ctx context.Context) Summary {
	start := time.Now()
	var wg sync.WaitGroup
	timer := time.NewTimer(time.Hour)
	timer.Stop()
arrivals:
	for i, at := 0, time.Duration(0); at < g.cfg.Duration; i, at = i+1, g.nextArrival(i+1, at) {
		// Behind schedule (a slow machine), the arrival goes out at once: open loop catches up.
		if wait := time.Until(start.Add(at)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				break arrivals
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			break
		}
		if !g.admit() {
			g.record(Result{Sent: time.Now(), Err: ErrConcurrencyLimit, Detail: fmt.Sprintf("%d requests already in flight", g.cfg.Concurrency)})
			continue
		}
		prompt := g.prompt(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.record(g.send(ctx, prompt))
		}()
	}
	wg.Wait()
	return g.Summary()
}

// nextArrival is the time of arrival i, after the previous one at prev.
func (g *Generator) nextArrival(i int, prev time.Duration) time.Duration {
	if g.cfg.Arrivals == Uniform {
		return time.Duration(float64(i) / g.cfg.RPS * float64(time.Second))
	}
	return prev + time.Duration(g.rng.ExpFloat64()/g.cfg.RPS*float64(time.Second))
}

// admit counts an arrival and reports whether it may be sent.
func (g *Generator) admit() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sent++
	if g.cfg.Concurrency > 0 && g.inFlight >= g.cfg.Concurrency {
		return false
	}
	g.inFlight++
	return true
}

func (g *Generator) record(r Result) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.results = append(g.results, r)
	if r.Err != ErrConcurrencyLimit {
		g.inFlight--
	}
	if r.Err != "" {
		g.errors++
	} else {
		g.ttfts = append(g.ttfts, endedTTFT{r.Sent.Add(r.Latency), r.TTFT})
	}
}

// Progress is the run's state now; it is safe to call while Run runs.
func (g *Generator) Progress() Progress {
	since := time.Now().Add(-ProgressWindow)
	g.mu.Lock()
	p := Progress{Sent: g.sent, Done: len(g.results), InFlight: g.inFlight, Errors: g.errors}
	var recent []time.Duration
	// Requests end roughly in order; the few a long stream delays past the window's edge do not move
	// a median.
	for i := len(g.ttfts) - 1; i >= 0 && (len(recent) == 0 || g.ttfts[i].end.After(since)); i-- {
		recent = append(recent, g.ttfts[i].ttft)
	}
	g.mu.Unlock()
	p.TTFTP50 = percentiles(recent).P50
	return p
}

// Results are the outcomes so far, in the order requests ended.
func (g *Generator) Results() []Result {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.results)
}

// Summary summarises the requests that have ended so far.
func (g *Generator) Summary() Summary {
	return Summarize(g.Results())
}

// Summarize computes a Summary from results.
func Summarize(results []Result) Summary {
	s := Summary{Requests: len(results), Errors: map[ErrorKind]int{}, FirstErrors: map[ErrorKind]string{}}
	var ttft, latency []time.Duration
	var first, last time.Time
	for _, r := range results {
		if first.IsZero() || r.Sent.Before(first) {
			first = r.Sent
		}
		if end := r.Sent.Add(r.Latency); end.After(last) {
			last = end
		}
		if r.Err != "" {
			s.Errors[r.Err]++
			if _, ok := s.FirstErrors[r.Err]; !ok {
				s.FirstErrors[r.Err] = r.Detail
			}
			continue
		}
		s.Successes++
		s.OutputTokens += r.OutputTokens
		ttft = append(ttft, r.TTFT)
		latency = append(latency, r.Latency)
	}
	s.TTFT, s.Latency = percentiles(ttft), percentiles(latency)
	s.Elapsed = last.Sub(first)
	if s.Elapsed > 0 {
		s.OutputTokensPerSecond = float64(s.OutputTokens) / s.Elapsed.Seconds()
	}
	return s
}

// percentiles sorts d in place.
func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	slices.Sort(d)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	return Percentiles{P50: rank(0.50), P95: rank(0.95), P99: rank(0.99)}
}

// promptWords are three letters and a space each: one token in the Llama 3 and GPT tokenizers, and one
// by the 4-characters-per-token estimate of the simulator, so that both see about PromptTokens.
var promptWords = strings.Fields("the cat sat and ran far but not one day all new old big red sun sea any way how who")

// prompt is request i's prompt. Its unique head keeps a real vLLM's prefix cache from serving the prompts
// of later requests, which would make TTFT look better than real traffic would.
func (g *Generator) prompt(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%08x ", g.rng.Uint32()) // 9 characters: about two tokens
	for n := 2; n < g.cfg.PromptTokens; n++ {
		b.WriteString(promptWords[(i+n*7)%len(promptWords)])
		b.WriteByte(' ')
	}
	return b.String()
}

type request struct {
	Model         string         `json:"model"`
	Prompt        string         `json:"prompt"`
	MaxTokens     int            `json:"max_tokens"`
	Stream        bool           `json:"stream"`
	StreamOptions map[string]any `json:"stream_options"`
	// IgnoreEOS makes a real vLLM generate max_tokens every time, as the load asks.
	IgnoreEOS bool `json:"ignore_eos"`
}

// chunk is the part of a streamed completion (or chat) chunk, or of an error event, that is read.
type chunk struct {
	Choices []struct {
		Text  string `json:"text"`
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
	Usage *struct {
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// send runs one request to its end.
func (g *Generator) send(ctx context.Context, prompt string) Result {
	body, _ := json.Marshal(request{
		Model: g.cfg.Model, Prompt: prompt, MaxTokens: g.cfg.MaxTokens, Stream: true,
		StreamOptions: map[string]any{"include_usage": true}, IgnoreEOS: true,
	})
	rctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	r := Result{Sent: time.Now()}
	fail := func(kind ErrorKind, err error) Result {
		r.Latency = time.Since(r.Sent)
		r.Err, r.Detail = kind, err.Error()
		if ctx.Err() != nil {
			r.Err = ErrCanceled
		} else if rctx.Err() != nil {
			r.Err = ErrTimeout
		}
		return r
	}
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, g.endpoint, bytes.NewReader(body))
	if err != nil {
		return fail(ErrConnection, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := g.client.Do(req)
	if err != nil {
		return fail(connectionKind(err), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fail(HTTPStatus(resp.StatusCode), fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg)))
	}

	textChunks, usage := 0, -1
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	done := false
	for !done && sc.Scan() {
		line := sc.Bytes()
		data, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue // blank separators, comments, event: lines
		}
		data = bytes.TrimSpace(data)
		if string(data) == "[DONE]" {
			done = true
			break
		}
		var c chunk
		if err := json.Unmarshal(data, &c); err != nil {
			return fail(ErrStream, fmt.Errorf("malformed event %.200q: %v", data, err))
		}
		if len(c.Error) > 0 && string(c.Error) != "null" {
			return fail(ErrStream, fmt.Errorf("error event: %.300s", c.Error))
		}
		if c.Usage != nil {
			usage = c.Usage.CompletionTokens
		}
		for _, ch := range c.Choices {
			if ch.Text != "" || ch.Delta.Content != "" {
				if textChunks == 0 {
					r.TTFT = time.Since(r.Sent)
				}
				textChunks++
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fail(ErrStream, err)
	}
	if !done {
		return fail(ErrStream, errors.New("the stream ended without data: [DONE]"))
	}
	r.Latency = time.Since(r.Sent)
	r.OutputTokens = textChunks
	if usage >= 0 {
		r.OutputTokens = usage
	}
	if textChunks == 0 {
		return fail(ErrStream, errors.New("the stream carried no text"))
	}
	return r
}

// connectionKind classifies an error of http.Client.Do: timeouts of the transport apart, the request got
// no response.
func connectionKind(err error) ErrorKind {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	return ErrConnection
}

// Models lists the models a server serves (GET /v1/models), which also tells whether it is reachable.
func Models(ctx context.Context, client *http.Client, baseURL string) ([]string, error) {
	if client == nil {
		client = http.DefaultClient
	}
	base, err := BaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/models", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, &UnreachableError{URL: base, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/v1/models: %s", base, resp.Status)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&list); err != nil {
		return nil, fmt.Errorf("GET %s/v1/models: %v", base, err)
	}
	ids := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	return ids, nil
}

// UnreachableError: no HTTP response came from the server at all.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string { return fmt.Sprintf("cannot reach %s: %v", e.URL, e.Err) }
func (e *UnreachableError) Unwrap() error { return e.Err }
