package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/discovery"
	"github.com/llm-d/llm-d/sim"
	"github.com/llm-d/llm-d/sim/plot"
	"github.com/llm-d/llm-d/sim/trace"
	"github.com/llm-d/llm-d/vllmsim"
)

const simulateUsage = `usage: llmd simulate --service FILE --trace FILE [--policy llmd|hpa-queue|static-peak|lower-bound|all]
                     [--slo-ttft 2s] [--gpu a10g|h100] [--speedup 1] [--duration 0] [--warmup 10m] [--seed 1]
                     [--json] [--plot out.png] [--csv out.csv]`

// simulate replays a trace through the simulator under one policy or all of them and prints the results.
func simulate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line below
	service := fs.String("service", "", "LLMInferenceService YAML whose autoscaling block drives llmd")
	tracePath := fs.String("trace", "", "request trace CSV in the Azure format (TIMESTAMP,ContextTokens,GeneratedTokens)")
	policy := fs.String("policy", "all", "llmd, hpa-queue, static-peak, lower-bound or all")
	slo := fs.Duration("slo-ttft", 2*time.Second, "time-to-first-token objective")
	gpu := fs.String("gpu", "a10g", "replica model: a10g (Llama 3.1 8B on one A10G) or h100")
	speedup := fs.Float64("speedup", 1, "play the trace this many times faster")
	duration := fs.Duration("duration", 0, "keep only the first DURATION of the (sped-up) trace; 0 keeps all")
	warmup := fs.Duration("warmup", 10*time.Minute, "replay the trace's first WARMUP, unmeasured, before it, so reactive policies start in steady state")
	seed := fs.Uint64("seed", 1, "seed of the Service's random choice of pod")
	leastLoaded := fs.Bool("least-loaded", false, "route to the pod with the fewest requests in flight instead of at random")
	asJSON := fs.Bool("json", false, "print one JSON object")
	plotPath := fs.String("plot", "", "write a PNG plot of the time series")
	csvPath := fs.String("csv", "", "write the time series as CSV")
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "llmd simulate: "+format+"\n", a...)
		return code
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, simulateUsage)
			return 0
		}
		return fail(2, "%v", err)
	}
	switch {
	case fs.NArg() > 0:
		return fail(2, "unexpected argument %q", fs.Arg(0))
	case *service == "":
		return fail(2, "--service FILE is required")
	case *tracePath == "":
		return fail(2, "--trace FILE is required")
	case *slo <= 0:
		return fail(2, "--slo-ttft must be positive")
	case !(*speedup > 0):
		return fail(2, "--speedup must be positive")
	case *duration < 0:
		return fail(2, "--duration must not be negative")
	case *warmup < 0 || *warmup%sim.Base != 0:
		return fail(2, "--warmup must be a non-negative multiple of %s", sim.Base)
	}
	policies := []string{*policy}
	if *policy == "all" {
		policies = sim.Policies
	} else if !slices.Contains(sim.Policies, *policy) {
		return fail(2, "--policy %q: want llmd, hpa-queue, static-peak, lower-bound or all", *policy)
	}
	var params vllmsim.Params
	switch strings.ToLower(*gpu) {
	case "a10g":
		params = vllmsim.A10GLlama8B()
	case "h100":
		params = vllmsim.H100Llama8B()
	default:
		return fail(2, "--gpu %q: want a10g or h100", *gpu)
	}

	cfg := sim.Config{Replica: params, SLOTTFT: *slo, Seed: *seed, Warmup: *warmup, LeastLoaded: *leastLoaded}
	var err error
	if cfg.Policy, err = readService(*service); err != nil {
		return fail(1, "%s: %v", *service, err)
	}
	reqs, err := readTrace(*tracePath)
	if err != nil {
		return fail(1, "%s: %v", *tracePath, err)
	}
	if reqs = sim.Reshape(reqs, *speedup, *duration); len(reqs) == 0 {
		return fail(1, "%s: no request within --duration %s", *tracePath, *duration)
	}

	var results []sim.Result
	for _, p := range policies {
		r, err := sim.Run(cfg, p, reqs)
		if err != nil {
			return fail(1, "%s: %v", p, err)
		}
		results = append(results, r)
	}
	if *csvPath != "" {
		if err := writeFile(*csvPath, func(w io.Writer) error { return sim.WriteSeriesCSV(w, results) }); err != nil {
			return fail(1, "%v", err)
		}
	}
	if *plotPath != "" {
		title := fmt.Sprintf("%s, %d requests, SLO TTFT %s", baseName(*tracePath), len(reqs), *slo)
		if err := writeFile(*plotPath, func(w io.Writer) error { return plot.PNG(w, title, results) }); err != nil {
			return fail(1, "%v", err)
		}
	}
	if *asJSON {
		out := struct {
			Trace    string       `json:"trace"`
			Service  string       `json:"service"`
			GPU      string       `json:"gpu"`
			SLOTTFTS float64      `json:"slo_ttft_s"`
			Results  []sim.Result `json:"results"`
		}{*tracePath, *service, strings.ToLower(*gpu), slo.Seconds(), results}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return 1
		}
		return 0
	}
	sim.WriteTable(stdout, results, *slo)
	return 0
}

// readService reads the autoscaling policy from an LLMInferenceService manifest, as the scaler does.
func readService(path string) (p decision.Policy, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return p, err
	}
	var svc v1alpha1.LLMInferenceService
	if err := yaml.UnmarshalStrict(b, &svc); err != nil {
		return p, fmt.Errorf("not an LLMInferenceService: %v", err)
	}
	if svc.Kind != "" && svc.Kind != "LLMInferenceService" {
		return p, fmt.Errorf("kind is %q, want LLMInferenceService", svc.Kind)
	}
	return discovery.PolicyFor(&svc)
}

func readTrace(path string) ([]sim.Request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return trace.ParseAzure(f)
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}
