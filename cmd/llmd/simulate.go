package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/discovery"
	"github.com/llm-d/llm-d/scaler/pool"
	"github.com/llm-d/llm-d/sim"
	"github.com/llm-d/llm-d/sim/plot"
	"github.com/llm-d/llm-d/sim/trace"
	"github.com/llm-d/llm-d/vllmsim"
)

const simulateUsage = `usage: llmd simulate --service FILE --trace FILE [--policy llmd|hpa-queue|static-peak|lower-bound|all]
                     [--slo-ttft 2s] [--gpu a10g|h100] [--speedup 1] [--duration 0] [--warmup 10m] [--seed 1]
                     [--json] [--plot out.png] [--csv out.csv]
       llmd simulate --pool POOL.yaml --service A.yaml --trace A.csv --service B.yaml --trace B.csv [...]
                     [same flags; llmd only: every member on the shared budget, then on fixed splits]`

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// simulate replays a trace through the simulator under one policy or all of them and prints the results.
func simulate(args []string, stdout, stderr io.Writer) int {
	cmd := newCommand("simulate", simulateUsage, stdout, stderr)
	fs, fail := cmd.fs, cmd.fail
	var services, traces stringList
	fs.Var(&services, "service", "LLMInferenceService YAML whose autoscaling block drives llmd (repeat with --pool)")
	fs.Var(&traces, "trace", "request trace CSV in the Azure format (TIMESTAMP,ContextTokens,GeneratedTokens); with --pool, one per --service, in order")
	poolPath := fs.String("pool", "", "LLMInferencePool YAML: run the --service/--trace pairs on its shared budget and on fixed splits of it")
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
	if code, done := cmd.parse(args); done {
		return code
	}
	switch {
	case len(services) == 0:
		return fail(2, "--service FILE is required")
	case len(traces) == 0:
		return fail(2, "--trace FILE is required")
	case *poolPath == "" && (len(services) > 1 || len(traces) > 1):
		return fail(2, "--service and --trace given %d and %d times: several services need --pool", len(services), len(traces))
	case len(services) != len(traces):
		return fail(2, "--pool needs one --trace per --service, paired in order: got %d and %d", len(services), len(traces))
	case *slo <= 0:
		return fail(2, "--slo-ttft must be positive")
	case !(*speedup > 0):
		return fail(2, "--speedup must be positive")
	case *duration < 0:
		return fail(2, "--duration must not be negative")
	case *warmup < 0 || *warmup%sim.Base != 0:
		return fail(2, "--warmup must be a non-negative multiple of %s", sim.Base)
	}
	policySet := false
	fs.Visit(func(f *flag.Flag) { policySet = policySet || f.Name == "policy" })
	policies := []string{*policy}
	if *poolPath != "" {
		// Pools are scaled by the llm-d scaler only: the other policies have no notion of a shared budget.
		if policySet && *policy != sim.LLMD {
			return fail(2, "--pool runs --policy llmd only, not %q", *policy)
		}
	} else if *policy == "all" {
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
	if *poolPath != "" {
		o := poolOpts{pool: *poolPath, services: services, traces: traces, gpu: strings.ToLower(*gpu), speedup: *speedup,
			duration: *duration, json: *asJSON, plot: *plotPath, csv: *csvPath}
		return simulatePool(cfg, o, stdout, fail)
	}
	service, tracePath := services[0], traces[0]
	var err error
	if cfg.Policy, err = readService(service); err != nil {
		return fail(1, "%s: %v", service, err)
	}
	reqs, err := readTrace(tracePath)
	if err != nil {
		return fail(1, "%s: %v", tracePath, err)
	}
	if reqs = sim.Reshape(reqs, *speedup, *duration); len(reqs) == 0 {
		return fail(1, "%s: no request within --duration %s", tracePath, *duration)
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
		title := fmt.Sprintf("%s, %d requests, SLO TTFT %s", baseName(tracePath), len(reqs), *slo)
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
		}{tracePath, service, strings.ToLower(*gpu), slo.Seconds(), results}
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
func readService(path string) (decision.Policy, error) {
	_, p, err := readServiceFile(path)
	return p, err
}

// readServiceFile reads an LLMInferenceService manifest and its autoscaling policy.
func readServiceFile(path string) (*v1alpha1.LLMInferenceService, decision.Policy, error) {
	var p decision.Policy
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, p, err
	}
	var svc v1alpha1.LLMInferenceService
	if err := yaml.UnmarshalStrict(b, &svc); err != nil {
		return nil, p, fmt.Errorf("not an LLMInferenceService: %v", err)
	}
	if svc.Kind != "" && svc.Kind != "LLMInferenceService" {
		return nil, p, fmt.Errorf("kind is %q, want LLMInferenceService", svc.Kind)
	}
	p, err = discovery.PolicyFor(&svc)
	return &svc, p, err
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

// poolOpts is what simulatePool takes from the command line.
type poolOpts struct {
	pool             string
	services, traces []string
	gpu              string
	speedup          float64
	duration         time.Duration
	json             bool
	plot, csv        string
}

// simulatePool runs the --service/--trace pairs as members of the --pool: first on its shared budget
// (sim.RunPool), then each on its fixed split of it (sim.RunSplit), and prints both.
func simulatePool(cfg sim.Config, o poolOpts, stdout io.Writer, fail func(int, string, ...any) int) int {
	b, err := os.ReadFile(o.pool)
	if err != nil {
		return fail(1, "%v", err)
	}
	var lp v1alpha1.LLMInferencePool
	if err := yaml.UnmarshalStrict(b, &lp); err != nil {
		return fail(1, "%s: not an LLMInferencePool: %v", o.pool, err)
	}
	if lp.Kind != "" && lp.Kind != "LLMInferencePool" {
		return fail(1, "%s: kind is %q, want LLMInferencePool", o.pool, lp.Kind)
	}
	p := sim.Pool{BudgetGPUs: lp.Spec.ResourcePolicy.GPUBudget.Value(), Eviction: pool.EvictionPolicy(lp.Spec.ResourcePolicy.EvictionPolicy)}
	given := map[string]bool{}
	for i, path := range o.services {
		svc, pol, err := readServiceFile(path)
		if err != nil {
			return fail(1, "%s: %v", path, err)
		}
		k := slices.IndexFunc(lp.Spec.Services, func(m v1alpha1.PoolMember) bool { return m.Name == svc.Name })
		if k < 0 {
			return fail(1, "%s: service %q is not a member of pool %q", path, svc.Name, lp.Name)
		}
		if given[svc.Name] {
			return fail(1, "%s: service %q given twice", path, svc.Name)
		}
		given[svc.Name] = true
		reqs, err := readTrace(o.traces[i])
		if err != nil {
			return fail(1, "%s: %v", o.traces[i], err)
		}
		if reqs = sim.Reshape(reqs, o.speedup, o.duration); len(reqs) == 0 {
			return fail(1, "%s: no request within --duration %s", o.traces[i], o.duration)
		}
		c := cfg
		c.Policy = pol
		m := lp.Spec.Services[k]
		p.Services = append(p.Services, sim.PoolService{Name: svc.Name, Config: c, Trace: reqs,
			Priority: discovery.PoolPriority(m.Priority), Weight: m.Weight, GPUsPerReplica: contract.GPUsPerReplica(svc.Spec.Resources)})
	}
	for _, m := range lp.Spec.Services {
		if !given[m.Name] {
			return fail(1, "%s: pool member %q has no --service", o.pool, m.Name)
		}
	}
	shared, err := sim.RunPool(p)
	if err != nil {
		return fail(1, "%s: %v", o.pool, err)
	}
	split, err := sim.RunSplit(p)
	if err != nil {
		return fail(1, "%s: %v", o.pool, err)
	}
	setups := []sim.PoolResult{shared, split}
	var series []sim.Result // one line per setup and member in the plot and the CSV
	for _, s := range setups {
		for _, r := range s.Services {
			r.Policy = s.Setup + "/" + r.Policy
			series = append(series, r)
		}
	}
	if o.csv != "" {
		if err := writeFile(o.csv, func(w io.Writer) error { return sim.WriteSeriesCSV(w, series) }); err != nil {
			return fail(1, "%v", err)
		}
	}
	if o.plot != "" {
		title := fmt.Sprintf("pool %s, budget %d GPUs, SLO TTFT %s", lp.Name, p.BudgetGPUs, cfg.SLOTTFT)
		if err := writeFile(o.plot, func(w io.Writer) error { return plot.PNG(w, title, series) }); err != nil {
			return fail(1, "%v", err)
		}
	}
	if o.json {
		out := struct {
			Pool       string           `json:"pool"`
			BudgetGPUs int64            `json:"budget_gpus"`
			Eviction   string           `json:"eviction_policy"`
			GPU        string           `json:"gpu"`
			SLOTTFTS   float64          `json:"slo_ttft_s"`
			Setups     []sim.PoolResult `json:"setups"`
		}{lp.Name, p.BudgetGPUs, string(p.Eviction), o.gpu, cfg.SLOTTFT.Seconds(), setups}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return 1
		}
		return 0
	}
	sim.WritePoolTable(stdout, p.BudgetGPUs, setups, cfg.SLOTTFT)
	return 0
}
