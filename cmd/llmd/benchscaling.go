package main

import (
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/sim"
	"github.com/llm-d/llm-d/sim/suite"
)

const benchScalingUsage = `usage: llmd bench-scaling --service FILE [--traces DIR] [--out DIR] [--case REGEXP] [--workers N]
                          [--suite-seed 1] [--seed 1] [--slo-ttft 2s] [--warmup 10m] [--short]`

// recordedTraces are the recorded traces the suite reads from --traces, by name.
var recordedTraces = []struct{ name, file string }{
	{"azure-conv", "AzureLLMInferenceTrace_conv.csv"},
	{"azure-code", "AzureLLMInferenceTrace_code.csv"},
}

// benchScaling runs the scaling benchmark: every case of the trace suite under llmd, hpa-queue, token-aware,
// every fixed count and llmd without each of its mechanisms, and writes the report.
func benchScaling(args []string, stdout, stderr io.Writer) int {
	cmd := newCommand("bench-scaling", benchScalingUsage, stdout, stderr)
	fs, fail := cmd.fs, cmd.fail
	service := fs.String("service", "", "LLMInferenceService YAML whose autoscaling block every case runs under")
	traces := fs.String("traces", "", "directory holding the Azure LLM inference traces (AzureLLMInferenceTrace_conv.csv and _code.csv); empty leaves them out")
	out := fs.String("out", "", "directory to write RESULTS.md, suite.json and per-case JSON and PNG into; empty prints RESULTS.md")
	only := fs.String("case", "", "run only the cases whose name matches this regular expression (e.g. 'steps-4x-h100$')")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "simulations run at once")
	suiteSeed := fs.Uint64("suite-seed", 1, "seed of the generated traces")
	seed := fs.Uint64("seed", 1, "seed of the Service's random choice of pod")
	slo := fs.Duration("slo-ttft", 2*time.Second, "time-to-first-token objective")
	warmup := fs.Duration("warmup", 10*time.Minute, "replay each trace's first WARMUP, unmeasured, before it")
	short := fs.Bool("short", false, "the short suite (two 40-minute traces), for a quick look")
	if code, done := cmd.parse(args); done {
		return code
	}
	switch {
	case *service == "":
		return fail(2, "--service FILE is required")
	case *workers < 1:
		return fail(2, "--workers must be at least 1")
	case *slo <= 0:
		return fail(2, "--slo-ttft must be positive")
	case *warmup < 0 || *warmup%sim.Base != 0:
		return fail(2, "--warmup must be a non-negative multiple of %s", sim.Base)
	}
	match, err := regexp.Compile(*only)
	if err != nil {
		return fail(2, "--case: %v", err)
	}
	policy, err := readService(*service)
	if err != nil {
		return fail(1, "%s: %v", *service, err)
	}
	generated := suite.Traces(*suiteSeed)
	if *short {
		generated = suite.Short(*suiteSeed)
	}
	var recorded []suite.Recorded
	for _, r := range recordedTraces {
		if *traces == "" || *short {
			break
		}
		path := filepath.Join(*traces, r.file)
		reqs, err := readTrace(path)
		if err != nil {
			return fail(1, "%s: %v", path, err)
		}
		recorded = append(recorded, suite.Recorded{Name: r.name, Path: path, Requests: reqs})
	}
	var cases []suite.Case
	for _, c := range suite.Cases(generated, recorded, *suiteSeed) {
		if match.MatchString(c.Name) {
			cases = append(cases, c)
		}
	}
	if len(cases) == 0 {
		return fail(1, "no case matches --case %q", *only)
	}
	opt := suite.Options{Config: sim.Config{Policy: policy, SLOTTFT: *slo, Warmup: *warmup, Seed: *seed},
		Mechanisms: decision.Mechanisms(), Workers: *workers, Progress: stderr}
	rep, err := suite.Run(cases, opt)
	if err != nil {
		return fail(1, "%v", err)
	}
	about := suite.About{Service: *service, Seed: *suiteSeed, RoutingSeed: *seed,
		Command: "llmd bench-scaling " + strings.Join(args, " "),
		Machine: fmt.Sprintf("%d CPUs, %s %s/%s", runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)}
	if *out == "" {
		if err := rep.Markdown(stdout, about); err != nil {
			return fail(1, "%v", err)
		}
		return 0
	}
	if err := rep.Write(*out, about); err != nil {
		return fail(1, "%v", err)
	}
	fmt.Fprintf(stderr, "%d cases in %s: %s\n", len(rep.Cases), rep.Elapsed.Round(time.Second), filepath.Join(*out, "RESULTS.md"))
	return 0
}
