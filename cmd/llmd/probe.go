package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/llm-d/llm-d/loadgen"
	"github.com/llm-d/llm-d/scaler/scrape"
	"github.com/llm-d/llm-d/scaler/signals"
	"github.com/llm-d/llm-d/scaler/vllmmetrics"
)

// probe scrapes URL twice, --interval apart, and prints what the scaler would compute from it: the gauges
// of the second scrape and decode tokens/s as the rate between the two.
func probe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	interval := fs.Duration("interval", 2*time.Second, "time between the two scrapes (the rate's window)")
	timeout := fs.Duration("timeout", 5*time.Second, "deadline of each scrape")
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: llmd probe [--interval 2s] [--timeout 5s] [--json] URL") }
	if err := parseInterspersed(fs, args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || *interval <= 0 || *timeout <= 0 {
		fs.Usage()
		return 2
	}
	target, err := metricsURL(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "llmd probe: %v\n", err)
		return 2
	}
	f := scrape.NewFetcher(*timeout, 64<<20)
	ctx := context.Background()
	var pod signals.Pod
	var snap vllmmetrics.Snapshot
	for i := 0; i < 2; i++ {
		if i == 1 {
			time.Sleep(*interval) // the rate's window, not synchronisation
		}
		payload, err := f.FetchURL(ctx, target, nil)
		if err != nil {
			fmt.Fprintf(stderr, "llmd probe: scraping %s: %v\n", target, err)
			return 1
		}
		at := time.Now()
		if snap, err = vllmmetrics.Parse(payload); err != nil {
			fmt.Fprintf(stderr, "llmd probe: %s: %v\n", target, err)
			return 1
		}
		pod.Observe(at, signals.FromVLLM(snap))
	}
	sig, err := pod.Signals(time.Now(), time.Minute)
	if err != nil {
		fmt.Fprintf(stderr, "llmd probe: %v\n", err)
		return 1
	}
	if !sig.HasDecodeTPS {
		fmt.Fprintf(stderr, "llmd probe: %s: vllm:generation_tokens_total went backwards between the scrapes (vLLM restarted); try again\n", target)
		return 1
	}
	if *asJSON {
		out := map[string]any{
			"waiting": sig.Waiting, "running": sig.Running, "kv_cache_usage": sig.KVCacheUsage,
			"decode_tokens_per_second": sig.DecodeTPS,
			"kv_cache_metric":          snap.KVCacheMetric, "engines": snap.Engines, "models": snap.Models,
		}
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(out); err != nil {
			return 1
		}
		return 0
	}
	kvName := snap.KVCacheMetric
	if kvName == "" {
		kvName = "absent"
	}
	fmt.Fprintf(stdout, "endpoint                  %s\n", target)
	fmt.Fprintf(stdout, "models                    %s (%d engine(s))\n", strings.Join(snap.Models, ", "), snap.Engines)
	fmt.Fprintf(stdout, "waiting                   %g\n", sig.Waiting)
	fmt.Fprintf(stdout, "running                   %g\n", sig.Running)
	fmt.Fprintf(stdout, "kv_cache_usage            %.3f (%s)\n", sig.KVCacheUsage, kvName)
	fmt.Fprintf(stdout, "decode_tokens_per_second  %.1f (rate of vllm:generation_tokens_total over %s)\n", sig.DecodeTPS, *interval)
	return 0
}

// metricsURL accepts http://host:port, host:port or a full .../metrics URL.
func metricsURL(raw string) (string, error) {
	u, ok := loadgen.HTTPURL(raw)
	if !ok {
		return "", fmt.Errorf("%q is not an http(s) URL of a vLLM server, e.g. http://127.0.0.1:8000/metrics", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/metrics"
	}
	return u.String(), nil
}

// parseInterspersed lets flags follow the positional argument, as people type them.
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}
