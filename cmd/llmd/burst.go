package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/llm-d/llm-d/loadgen"
)

const burstUsage = `usage: llmd burst --url URL [--model ID] --rps N --duration D [--prompt-tokens 256] [--max-tokens 128]
                  [--concurrency 512] [--arrivals poisson|uniform] [--timeout 5m] [--seed 0] [--json]`

// burst sends streaming completions to an OpenAI-compatible server at a fixed rate and prints what they
// measured. Ctrl-C stops the arrivals early and still prints the summary.
func burst(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return burstContext(ctx, args, stdout, stderr)
}

func burstContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newCommand("burst", burstUsage, stdout, stderr)
	fs, fail := cmd.fs, cmd.fail
	var cfg loadgen.Config
	fs.StringVar(&cfg.URL, "url", "", "base URL of the server, e.g. http://127.0.0.1:8000 (a trailing /v1 is fine)")
	fs.StringVar(&cfg.Model, "model", "", "model name to request; empty asks the server's /v1/models and takes the first")
	fs.Float64Var(&cfg.RPS, "rps", 0, "mean arrival rate, requests per second")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long requests keep arriving, e.g. 30s")
	fs.IntVar(&cfg.PromptTokens, "prompt-tokens", 256, "approximate prompt length in tokens")
	fs.IntVar(&cfg.MaxTokens, "max-tokens", 128, "max_tokens of every request (ignore_eos is set, so each generates that many on vLLM)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 512, "most requests in flight; an arrival beyond it is refused and counted as an error (0: no cap)")
	arrivals := fs.String("arrivals", string(loadgen.Poisson), "arrival process: poisson (exponential gaps) or uniform (exactly 1/rps apart)")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "bound on each request, from sending to its last token")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed of the arrival times and prompts; 0 picks one")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	if code, done := cmd.parse(args); done {
		return code
	}
	cfg.Arrivals = loadgen.Arrivals(*arrivals)
	switch {
	case cfg.URL == "":
		return fail(2, "--url is required")
	case !(cfg.RPS > 0):
		return fail(2, "--rps must be a positive rate, got %v", cfg.RPS)
	case cfg.Duration <= 0:
		return fail(2, "--duration must be positive, e.g. 30s")
	case cfg.PromptTokens < 1 || cfg.MaxTokens < 1:
		return fail(2, "--prompt-tokens and --max-tokens must be at least 1")
	case cfg.Concurrency < 0:
		return fail(2, "--concurrency must not be negative")
	case cfg.Timeout <= 0:
		return fail(2, "--timeout must be positive")
	case cfg.Arrivals != loadgen.Poisson && cfg.Arrivals != loadgen.Uniform:
		return fail(2, "--arrivals must be poisson or uniform, got %q", *arrivals)
	}
	if _, err := loadgen.BaseURL(cfg.URL); err != nil {
		return fail(2, "--url: %v", err)
	}

	// One request before the load: an unreachable server is one clear error instead of thousands, and an
	// absent --model is filled in.
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	models, err := loadgen.Models(pctx, nil, cfg.URL)
	cancel()
	var unreachable *loadgen.UnreachableError
	switch {
	case errors.As(err, &unreachable):
		return fail(1, "%v", oneLine(err))
	case cfg.Model == "" && err != nil:
		return fail(1, "cannot list the models to pick one (pass --model): %v", oneLine(err))
	case cfg.Model == "" && len(models) == 0:
		return fail(1, "the server lists no models; pass --model")
	case cfg.Model == "":
		cfg.Model = models[0]
	}

	g, err := loadgen.New(cfg)
	if err != nil {
		return fail(2, "%v", oneLine(err))
	}
	done := make(chan struct{})
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		reportProgress(g, stderr, done, time.Second)
	}()
	s := g.Run(ctx)
	close(done)
	<-reported

	if *asJSON {
		if err := json.NewEncoder(stdout).Encode(summaryJSON(cfg, s)); err != nil {
			return 1
		}
	} else {
		printSummary(stdout, cfg, s)
	}
	if s.Successes == 0 {
		why := "no requests were sent"
		if kinds := sortedKinds(s.Errors); len(kinds) > 0 {
			why = fmt.Sprintf("first %s error: %s", kinds[0], oneLine(errors.New(s.FirstErrors[kinds[0]])))
		}
		return fail(1, "no request succeeded (%s)", why)
	}
	return 0
}

// reportProgress prints the progress line every interval until done: overwritten in place on a terminal,
// one line each time otherwise (a log file, CI).
func reportProgress(g *loadgen.Generator, w io.Writer, done <-chan struct{}, interval time.Duration) {
	tty := isTerminal(w)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	printed := false
	for {
		select {
		case <-done:
			if printed && tty {
				fmt.Fprintln(w)
			}
			return
		case <-tick.C:
		}
		p := g.Progress()
		line := fmt.Sprintf("sent %d  done %d  in flight %d  errors %d  ttft p50 %s",
			p.Sent, p.Done, p.InFlight, p.Errors, roundDuration(p.TTFTP50))
		if tty {
			fmt.Fprintf(w, "\r%s\x1b[K", line)
		} else {
			fmt.Fprintln(w, line)
		}
		printed = true
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func printSummary(w io.Writer, cfg loadgen.Config, s loadgen.Summary) {
	fmt.Fprintf(w, "target          %s  model %s\n", cfg.URL, cfg.Model)
	fmt.Fprintf(w, "load            %g req/s (%s) for %s, prompt ~%d tokens, max_tokens %d\n",
		cfg.RPS, cfg.Arrivals, cfg.Duration, cfg.PromptTokens, cfg.MaxTokens)
	fmt.Fprintf(w, "requests        %d (%d succeeded, %d failed)\n", s.Requests, s.Successes, s.Requests-s.Successes)
	for _, k := range sortedKinds(s.Errors) {
		fmt.Fprintf(w, "  %-13s %d  (first: %s)\n", k, s.Errors[k], oneLine(errors.New(s.FirstErrors[k])))
	}
	pct := func(p loadgen.Percentiles) string {
		return fmt.Sprintf("p50 %s  p95 %s  p99 %s", roundDuration(p.P50), roundDuration(p.P95), roundDuration(p.P99))
	}
	fmt.Fprintf(w, "ttft            %s\n", pct(s.TTFT))
	fmt.Fprintf(w, "latency         %s\n", pct(s.Latency))
	fmt.Fprintf(w, "output tokens   %d in %s: %.1f tokens/s\n", s.OutputTokens, roundDuration(s.Elapsed), s.OutputTokensPerSecond)
}

func summaryJSON(cfg loadgen.Config, s loadgen.Summary) map[string]any {
	pct := func(p loadgen.Percentiles) map[string]float64 {
		return map[string]float64{"p50": p.P50.Seconds(), "p95": p.P95.Seconds(), "p99": p.P99.Seconds()}
	}
	return map[string]any{
		"url": cfg.URL, "model": cfg.Model, "rps": cfg.RPS, "duration_seconds": cfg.Duration.Seconds(),
		"arrivals": cfg.Arrivals, "prompt_tokens": cfg.PromptTokens, "max_tokens": cfg.MaxTokens,
		"requests": s.Requests, "successes": s.Successes, "errors": s.Errors, "first_errors": s.FirstErrors,
		"ttft_seconds": pct(s.TTFT), "latency_seconds": pct(s.Latency),
		"output_tokens": s.OutputTokens, "elapsed_seconds": s.Elapsed.Seconds(),
		"output_tokens_per_second": s.OutputTokensPerSecond,
	}
}

func sortedKinds(m map[loadgen.ErrorKind]int) []loadgen.ErrorKind {
	kinds := make([]loadgen.ErrorKind, 0, len(m))
	for k := range m {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return kinds
}

// roundDuration keeps three significant figures or so: 85ms, 1.23s.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// oneLine keeps a message on the single line the command promises.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
