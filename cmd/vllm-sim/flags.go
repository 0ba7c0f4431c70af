package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/llm-d/llm-d/vllmsim"
	"github.com/llm-d/llm-d/vllmsim/server"
)

// options is everything the command line sets.
type options struct {
	host            string
	port            int
	preset          string
	printVersion    bool
	shutdownTimeout time.Duration
	server          server.Config
	// aliases are the served model names after the first: vLLM answers to them too, vllm-sim only to the first.
	aliases []string
	// ignored are the vLLM flags of the command line that vllm-sim does not model.
	ignored []string
}

var presets = map[string]func() vllmsim.Params{
	"a10g": vllmsim.A10GLlama8B,
	"h100": vllmsim.H100Llama8B,
}

// parseFlags reads the command line, vLLM's included (see splitVLLMArgs). The model flags default to the
// preset's values; only those given override it.
func parseFlags(args []string) (options, *flag.FlagSet, error) {
	o := options{server: server.DefaultConfig()}
	fs := flag.NewFlagSet("vllm-sim", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported on one line by the caller
	fs.StringVar(&o.host, "host", "127.0.0.1", "address to bind; 0.0.0.0 to serve other hosts (in a pod)")
	fs.IntVar(&o.port, "port", 8000, "port to listen on, vLLM's default; 0 picks a free one")
	fs.StringVar(&o.server.Model, "model", o.server.Model, "vLLM's --model: the model, also its served name unless --served-model-name is given; or as vLLM's positional argument")
	fs.String("served-model-name", "", "vLLM's --served-model-name: the name requests and metrics use (vLLM's further names are not modelled)")
	fs.StringVar(&o.preset, "preset", "a10g", "GPU and model to simulate: "+strings.Join(presetNames(), " or "))
	fs.Float64Var(&o.server.Speed, "speed", 1, "simulated seconds per wall-clock second; >1 runs iterations and the startup delay faster for demos")
	fs.BoolVar(&o.printVersion, "version", false, "print vllm-sim's version and exit")
	fs.BoolVar(&o.server.LegacyMetrics, "legacy-metrics", false, "export vLLM's pre-0.12 names vllm:gpu_cache_usage_perc and vllm:time_per_output_token_seconds")
	fs.IntVar(&o.server.DefaultMaxTokens, "default-max-tokens", o.server.DefaultMaxTokens, "output tokens of a request that sets no max_tokens")
	fs.IntVar(&o.server.MaxTokensLimit, "max-tokens-limit", o.server.MaxTokensLimit, "cap on a request's max_tokens")
	fs.IntVar(&o.server.PromptTokens, "prompt-tokens", 0, "prompt length of every request; 0 estimates it as 1 token per 4 characters (+4 per chat message)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", time.Minute, "on SIGTERM, how long to let in-flight requests finish before closing their connections")

	// Overrides of the preset: parsed into p, copied only if given.
	var p vllmsim.Params
	fromPreset := " (default: the preset's)"
	fs.IntVar(&p.MaxNumSeqs, "max-num-seqs", 0, "vLLM's --max-num-seqs: requests in the batch at once"+fromPreset)
	fs.IntVar(&p.MaxNumBatchedTokens, "max-num-batched-tokens", 0, "vLLM's --max-num-batched-tokens: tokens per iteration"+fromPreset)
	fs.IntVar(&p.KVCacheTokens, "kv-cache-tokens", 0, "KV-cache capacity in tokens"+fromPreset)
	fs.IntVar(&p.BlockSize, "block-size", 0, "vLLM's --block-size: tokens per KV block"+fromPreset)
	fs.DurationVar(&p.IterationBase, "iteration-base", 0, "fixed cost of one forward pass"+fromPreset)
	fs.DurationVar(&p.DecodePerSeq, "decode-per-seq", 0, "cost of each decoding sequence in an iteration"+fromPreset)
	fs.DurationVar(&p.DecodePerContextToken, "decode-per-context-token", 0, "attention cost per context token of a decoding sequence"+fromPreset)
	fs.IntVar(&p.PrefillTokensPerSec, "prefill-tokens-per-sec", 0, "prompt processing rate"+fromPreset)
	fs.DurationVar(&p.StartupDelay, "startup-delay", 0, "simulated time until /health is 200 and requests are served"+fromPreset)

	cl, err := splitVLLMArgs(args, fs)
	if err != nil {
		return o, fs, err
	}
	if err := fs.Parse(cl.flags); err != nil {
		return o, fs, err
	}
	switch {
	case fs.NArg() > 1:
		return o, fs, fmt.Errorf("unexpected argument %q: only one positional argument, the model, is allowed", fs.Arg(1))
	case fs.NArg() == 1:
		o.server.Model = fs.Arg(0) // vLLM's `serve MODEL`, which takes precedence over --model
	}
	if len(cl.servedNames) > 0 {
		o.server.Model, o.aliases = cl.servedNames[0], cl.servedNames[1:]
	}
	o.ignored = cl.ignored
	preset, ok := presets[o.preset]
	if !ok {
		return o, fs, fmt.Errorf("unknown --preset %q: want %s", o.preset, strings.Join(presetNames(), " or "))
	}
	o.server.Params = preset()
	fs.Visit(func(f *flag.Flag) {
		q := &o.server.Params
		switch f.Name {
		case "max-num-seqs":
			q.MaxNumSeqs = p.MaxNumSeqs
		case "max-num-batched-tokens":
			q.MaxNumBatchedTokens = p.MaxNumBatchedTokens
		case "kv-cache-tokens":
			q.KVCacheTokens = p.KVCacheTokens
		case "block-size":
			q.BlockSize = p.BlockSize
		case "iteration-base":
			q.IterationBase = p.IterationBase
		case "decode-per-seq":
			q.DecodePerSeq = p.DecodePerSeq
		case "decode-per-context-token":
			q.DecodePerContextToken = p.DecodePerContextToken
		case "prefill-tokens-per-sec":
			q.PrefillTokensPerSec = p.PrefillTokensPerSec
		case "startup-delay":
			q.StartupDelay = p.StartupDelay
		}
	})
	var errs []error
	if o.port < 0 || o.port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d is not a port", o.port))
	}
	if o.shutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("--shutdown-timeout must not be negative, got %v", o.shutdownTimeout))
	}
	return o, fs, errors.Join(append(errs, o.server.Validate())...)
}

func presetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// oneLine joins a multi-line error (errors.Join) into one line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
