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
	"github.com/llm-d/llm-d/sim/suite"
	"github.com/llm-d/llm-d/sim/trace"
)

const simulateUsage = `usage: llmd simulate --service FILE --trace FILE|suite:NAME
                     [--policy llmd|hpa-queue|token-aware[-shipped]|static-peak|lower-bound|ideal-learner|reactive-learner|static:N|all] [--frontier]
                     [--slo-ttft 2s] [--gpu a10g|h100] [--speedup 1] [--duration 0] [--warmup 10m] [--seed 1]
                     [--suite-seed 1] [--routing random|picker] [--json] [--plot out.png] [--csv out.csv]
       llmd simulate --pool POOL.yaml --service A.yaml --trace A.csv --service B.yaml --trace B.csv [...]
                     [same flags; llmd only: every member on the shared budget, then on fixed splits]`

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// simulateFlags is what llmd simulate takes from the command line.
type simulateFlags struct {
	services, traces stringList
	pool, policy     string
	policySet        bool
	slo              time.Duration
	gpu              string
	speedup          float64
	duration, warmup time.Duration
	seed, suiteSeed  uint64
	routing          string
	frontier, json   bool
	plot, csv        string
}

func (f *simulateFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.services, "service", "LLMInferenceService YAML whose autoscaling block drives llmd (repeat with --pool)")
	fs.Var(&f.traces, "trace", "request trace CSV in the Azure format (TIMESTAMP,ContextTokens,GeneratedTokens), or suite:NAME for a trace of the benchmark suite; with --pool, one per --service, in order")
	fs.StringVar(&f.pool, "pool", "", "LLMInferencePool YAML: run the --service/--trace pairs on its shared budget and on fixed splits of it")
	fs.StringVar(&f.policy, "policy", "all", "llmd, hpa-queue, token-aware, token-aware-shipped, static-peak, lower-bound, ideal-learner, reactive-learner, static:N (N fixed replicas) or all")
	fs.DurationVar(&f.slo, "slo-ttft", 2*time.Second, "time-to-first-token objective")
	fs.StringVar(&f.gpu, "gpu", "a10g", "replica model: a10g (Llama 3.1 8B on one A10G) or h100")
	fs.Float64Var(&f.speedup, "speedup", 1, "play the trace this many times faster")
	fs.DurationVar(&f.duration, "duration", 0, "keep only the first DURATION of the (sped-up) trace; 0 keeps all")
	fs.DurationVar(&f.warmup, "warmup", 10*time.Minute, "replay the trace's first WARMUP, unmeasured, before it, so reactive policies start in steady state")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the routing's random choices (the Service's pod, the picker's ties)")
	fs.Uint64Var(&f.suiteSeed, "suite-seed", 1, "seed of the benchmark suite's generated traces (--trace suite:NAME)")
	fs.StringVar(&f.routing, "routing", sim.RoutingRandom, "how requests reach pods: random (a Service) or picker (the Gateway API Inference Extension's endpoint picker)")
	fs.BoolVar(&f.frontier, "frontier", false, "also run every fixed count from minReplicas to maxReplicas and compare each other policy with them")
	fs.BoolVar(&f.json, "json", false, "print one JSON object")
	fs.StringVar(&f.plot, "plot", "", "write a PNG plot of the time series")
	fs.StringVar(&f.csv, "csv", "", "write the time series as CSV")
}

// check says what is wrong with the flags, as the message of a usage error.
func (f *simulateFlags) check() string {
	switch {
	case len(f.services) == 0:
		return "--service FILE is required"
	case len(f.traces) == 0:
		return "--trace FILE is required"
	case f.pool == "" && (len(f.services) > 1 || len(f.traces) > 1):
		return fmt.Sprintf("--service and --trace given %d and %d times: several services need --pool", len(f.services), len(f.traces))
	case len(f.services) != len(f.traces):
		return fmt.Sprintf("--pool needs one --trace per --service, paired in order: got %d and %d", len(f.services), len(f.traces))
	case f.slo <= 0:
		return "--slo-ttft must be positive"
	case !(f.speedup > 0):
		return "--speedup must be positive"
	case f.duration < 0:
		return "--duration must not be negative"
	case f.warmup < 0 || f.warmup%sim.Base != 0:
		return fmt.Sprintf("--warmup must be a non-negative multiple of %s", sim.Base)
	case !slices.Contains(sim.Routings, f.routing):
		return fmt.Sprintf("--routing %q: want random or picker", f.routing)
	case f.pool != "" && f.policySet && f.policy != sim.LLMD:
		// Pools are scaled by the llm-d scaler only: the other policies have no notion of a shared budget.
		return fmt.Sprintf("--pool runs --policy llmd only, not %q", f.policy)
	case f.pool != "" && f.frontier:
		return "--frontier compares policies on one service: not with --pool"
	case f.policy != "all" && sim.ValidPolicy(f.policy) != nil:
		return fmt.Sprintf("--policy %q: want llmd, hpa-queue, token-aware, token-aware-shipped, static-peak, lower-bound, ideal-learner, reactive-learner, static:N or all", f.policy)
	}
	return ""
}

// policies lists the policies to run: the one asked for or all of them, and with --frontier every fixed
// count between the policy's bounds (static-peak is one of them then).
func (f *simulateFlags) policies(p decision.Policy) []string {
	out := []string{f.policy}
	if f.policy == "all" {
		out = slices.Clone(sim.Policies)
		if f.frontier {
			out = slices.DeleteFunc(out, func(s string) bool { return s == sim.StaticPeak })
		}
	}
	if f.frontier {
		for n := p.MinReplicas; n <= p.MaxReplicas; n++ {
			if !slices.Contains(out, sim.Static(n)) {
				out = append(out, sim.Static(n))
			}
		}
	}
	return out
}

// simulate replays a trace through the simulator under one policy or all of them and prints the results.
func simulate(args []string, stdout, stderr io.Writer) int {
	cmd := newCommand("simulate", simulateUsage, stdout, stderr)
	fail := cmd.fail
	f := &simulateFlags{}
	f.register(cmd.fs)
	if code, done := cmd.parse(args); done {
		return code
	}
	cmd.fs.Visit(func(fl *flag.Flag) { f.policySet = f.policySet || fl.Name == "policy" })
	if msg := f.check(); msg != "" {
		return fail(2, "%s", msg)
	}
	preset, err := suite.PresetNamed(strings.ToLower(f.gpu))
	if err != nil {
		return fail(2, "--gpu %q: want a10g or h100", f.gpu)
	}
	cfg := sim.Config{Replica: preset.Params, SLOTTFT: f.slo, Seed: f.seed, Warmup: f.warmup, Routing: f.routing}
	if f.pool != "" {
		o := poolOpts{pool: f.pool, services: f.services, traces: f.traces, gpu: preset.Name, speedup: f.speedup,
			duration: f.duration, json: f.json, plot: f.plot, csv: f.csv}
		return simulatePool(cfg, o, stdout, fail)
	}
	service, tracePath := f.services[0], f.traces[0]
	if cfg.Policy, err = readService(service); err != nil {
		return fail(1, "%s: %v", service, err)
	}
	reqs, err := loadTrace(tracePath, preset, f.suiteSeed)
	if err != nil {
		return fail(1, "%s: %v", tracePath, err)
	}
	if reqs = sim.Reshape(reqs, f.speedup, f.duration); len(reqs) == 0 {
		return fail(1, "%s: no request within --duration %s", tracePath, f.duration)
	}
	policies := f.policies(cfg.Policy)
	results := make([]sim.Result, len(policies))
	var learners []int // with --frontier, the learners take the fixed counts' runs instead of running them again
	for i, p := range policies {
		if slices.Contains(sim.Learners, p) && f.frontier {
			learners = append(learners, i)
			continue
		}
		if results[i], err = sim.Run(cfg, p, reqs); err != nil {
			return fail(1, "%s: %v", p, err)
		}
	}
	for _, i := range learners {
		if results[i], err = sim.LearnerOf(cfg, policies[i], reqs, results); err != nil {
			return fail(1, "%s: %v", policies[i], err)
		}
	}
	if err := f.writeSeries(results, tracePath, len(reqs)); err != nil {
		return fail(1, "%v", err)
	}
	return f.print(stdout, results, service, tracePath, preset.Name)
}

// loadTrace reads a trace file, or generates the benchmark suite's trace suite:NAME for the preset.
func loadTrace(path string, preset suite.Preset, seed uint64) ([]sim.Request, error) {
	name, generated := strings.CutPrefix(path, "suite:")
	if !generated {
		return readTrace(path)
	}
	var names []string
	for _, t := range suite.Traces(seed) {
		if t.Name == name {
			reqs, _ := suite.Generate(t, preset, seed)
			return reqs, nil
		}
		names = append(names, t.Name)
	}
	return nil, fmt.Errorf("no trace %q in the suite: want one of %s", name, strings.Join(names, ", "))
}

// writeSeries writes the --csv and --plot files.
func (f *simulateFlags) writeSeries(results []sim.Result, tracePath string, n int) error {
	if f.csv != "" {
		if err := suite.WriteFile(f.csv, func(w io.Writer) error { return sim.WriteSeriesCSV(w, results) }); err != nil {
			return err
		}
	}
	if f.plot != "" {
		title := fmt.Sprintf("%s, %d requests, SLO TTFT %s", baseName(tracePath), n, f.slo)
		return suite.WriteFile(f.plot, func(w io.Writer) error { return plot.PNG(w, title, results) })
	}
	return nil
}

// print writes the results, and with --frontier the frontier, as JSON or tables.
func (f *simulateFlags) print(stdout io.Writer, results []sim.Result, service, tracePath, gpu string) int {
	var front *sim.Frontier
	if f.frontier {
		fr := sim.NewFrontier(results)
		front = &fr
	}
	if f.json {
		out := struct {
			Trace    string        `json:"trace"`
			Service  string        `json:"service"`
			GPU      string        `json:"gpu"`
			SLOTTFTS float64       `json:"slo_ttft_s"`
			Results  []sim.Result  `json:"results"`
			Frontier *sim.Frontier `json:"frontier,omitempty"`
		}{tracePath, service, gpu, f.slo.Seconds(), results, front}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return 1
		}
		return 0
	}
	sim.WriteTable(stdout, results, f.slo)
	if front != nil {
		fmt.Fprintln(stdout)
		sim.WriteFrontier(stdout, *front)
	}
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
		if err := suite.WriteFile(o.csv, func(w io.Writer) error { return sim.WriteSeriesCSV(w, series) }); err != nil {
			return fail(1, "%v", err)
		}
	}
	if o.plot != "" {
		title := fmt.Sprintf("pool %s, budget %d GPUs, SLO TTFT %s", lp.Name, p.BudgetGPUs, cfg.SLOTTFT)
		if err := suite.WriteFile(o.plot, func(w io.Writer) error { return plot.PNG(w, title, series) }); err != nil {
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
