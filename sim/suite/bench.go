package suite

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/sim"
)

// Case is one trace on one replica preset, under the service's autoscaling policy.
type Case struct {
	// Name is the trace's name and the preset's, "steps-4x-h100".
	Name   string
	Trace  string
	Preset Preset
	// Spec is the generated trace's description; nil for a recorded trace.
	Spec *Trace
	// Source says where the requests come from: the generator and its seed, or a file.
	Source string
	load   func() ([]sim.Request, []Label, error)
}

// Recorded is a trace read from a file.
type Recorded struct {
	Name, Path string
	Requests   []sim.Request
}

// Cases is every generated trace and every recorded trace on every preset, generated traces first.
func Cases(traces []Trace, recorded []Recorded, seed uint64) []Case {
	var out []Case
	for i := range traces {
		t := &traces[i]
		for _, p := range Presets {
			out = append(out, Case{Name: t.Name + "-" + p.Name, Trace: t.Name, Preset: p, Spec: t,
				Source: fmt.Sprintf("generated, seed %d", seed),
				load: func() ([]sim.Request, []Label, error) {
					reqs, labels := Generate(*t, p, seed)
					return reqs, labels, nil
				}})
		}
	}
	for _, r := range recorded {
		for _, p := range Presets {
			out = append(out, Case{Name: r.Name + "-" + p.Name, Trace: r.Name, Preset: p, Source: r.Path,
				load: func() ([]sim.Request, []Label, error) { return r.Requests, nil, nil }})
		}
	}
	return out
}

// Options is what every case of a run shares.
type Options struct {
	// Config is the simulator's configuration: the service's policy, the SLO, the warm-up, the routing seed.
	// Each case sets its own Replica.
	Config sim.Config
	// Mechanisms are switched off one at a time for the ablation (decision.Mechanisms()).
	Mechanisms []decision.Mechanism
	// Workers is how many simulations run at once (at least 1).
	Workers int
	// Progress, if set, gets one line per finished case.
	Progress io.Writer
}

// Baselines are the policies every case runs besides the fixed counts, in report order.
var Baselines = []string{sim.LLMD, sim.HPAQueue, sim.TokenAware, sim.TokenAwareShipped}

// References are the learners every case builds from its fixed counts' runs: what llmd could do knowing
// more than it can, judged by the same goals but never counted among what dominates llmd.
var References = sim.Learners

// Run runs every case and scores it. The simulations of a case run on Workers goroutines; cases run one
// after the other, so that one case's requests and per-request outcomes are in memory at a time.
func Run(cases []Case, opt Options) (Report, error) {
	start, cpu := time.Now(), cpuSeconds()
	rep := Report{Workers: max(opt.Workers, 1), SLOTTFT: opt.Config.SLOTTFT, Warmup: opt.Config.Warmup,
		MinReplicas: opt.Config.Policy.MinReplicas, MaxReplicas: opt.Config.Policy.MaxReplicas}
	for _, m := range opt.Mechanisms {
		rep.Mechanisms = append(rep.Mechanisms, string(m))
	}
	for _, c := range cases {
		cr, err := runCase(c, opt)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", c.Name, err)
		}
		rep.Cases = append(rep.Cases, cr)
		if opt.Progress != nil {
			fmt.Fprintf(opt.Progress, "%s: %d requests, %d runs in %.0f s\n", c.Name, cr.Requests, cr.Runs, cr.RunSeconds)
		}
	}
	rep.summarize()
	rep.Elapsed, rep.CPUSeconds = time.Since(start), cpuSeconds()-cpu
	return rep, nil
}

// job is one simulation of a case.
type job struct {
	policy  string // sim.Run's policy name
	without decision.Mechanism
	res     sim.Result
	err     error
}

// runCase runs every policy of one case, the longest first, on opt.Workers goroutines.
func runCase(c Case, opt Options) (CaseReport, error) {
	start := time.Now()
	reqs, labels, err := c.load()
	if err != nil {
		return CaseReport{}, err
	}
	if len(reqs) == 0 {
		return CaseReport{}, fmt.Errorf("no request")
	}
	cfg := opt.Config
	cfg.Replica = c.Preset.Params
	var jobs []*job
	for _, p := range Baselines {
		jobs = append(jobs, &job{policy: p})
	}
	for _, m := range opt.Mechanisms {
		jobs = append(jobs, &job{policy: sim.LLMD, without: m})
	}
	for n := cfg.Policy.MaxReplicas; n >= cfg.Policy.MinReplicas; n-- {
		jobs = append(jobs, &job{policy: sim.Static(n)})
	}
	work := make(chan *job)
	var wg sync.WaitGroup
	for range max(opt.Workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				jc := cfg
				if j.without != "" {
					jc.Off = []decision.Mechanism{j.without}
				}
				j.res, j.err = sim.Run(jc, j.policy, reqs)
			}
		}()
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
	var results []sim.Result
	var ablated, refs []Variant
	for _, j := range jobs {
		if j.err != nil {
			return CaseReport{}, fmt.Errorf("%s: %w", j.policy, j.err)
		}
		if j.without != "" {
			j.res.Policy = sim.LLMD + " without " + string(j.without)
			ablated = append(ablated, Variant{Name: string(j.without), Result: j.res})
			continue
		}
		results = append(results, j.res)
	}
	// Fixed counts in ascending order, then the baselines.
	slices.SortStableFunc(results, func(a, b sim.Result) int { return rank(a) - rank(b) })
	for _, p := range References {
		res, err := sim.LearnerOf(cfg, p, reqs, results)
		if err != nil {
			return CaseReport{}, fmt.Errorf("%s: %w", p, err)
		}
		refs = append(refs, Variant{Name: p, Result: res})
	}
	cr := score(c, reqs, labels, results, ablated, refs, decision.Budget{TTFT: cfg.WithDefaults().SLOTTFT,
		Attainment: decision.DefaultObjective.Attainment, QueueDepth: cfg.Policy.TargetQueue})
	cr.Runs = len(jobs) + len(refs)
	cr.RunSeconds = time.Since(start).Seconds()
	return cr, nil
}

// rank orders results: fixed counts by count, then the baselines in their order.
func rank(r sim.Result) int {
	if n, ok, _ := sim.ParseStatic(r.Policy); ok {
		return int(n)
	}
	return 1<<20 + slices.Index(Baselines, r.Policy)
}
