package suite

import (
	"slices"
	"time"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/sim"
)

// The goals, checked on every case with the article's targets:
//
//   - not dominated: no fixed count within [minReplicas, maxReplicas], and neither hpa-queue nor token-aware
//     (with the HPA's default behavior or the one its ScaledObject ships), is at least as good as llmd on SLO
//     attainment and GPU-hours and better on one;
//   - learns from what it has seen: wherever a fixed count within maxReplicas meets the SLO for at least
//     LearnsFixed of the whole trace, llmd meets it for at least LearnsTarget of the requests outside the
//     first burst of each size (the burst and one startup delay after it, bursts found by
//     sim.DetectBursts);
//   - pays for itself, over the suite: llmd's GPU-hours, summed over the cases where some fixed count within
//     maxReplicas is at least as good (attainment at least llmd's), are at most PaysShare of the sum of the
//     cheapest such count's GPU-hours.
const (
	LearnsFixed  = 0.995
	LearnsTarget = 0.99
	PaysShare    = 0.85
)

// CaseReport is one case's runs, frontier, bursts and goals.
type CaseReport struct {
	Case   string `json:"case"`
	Trace  string `json:"trace"`
	GPU    string `json:"gpu"`
	Family string `json:"family"`
	Params string `json:"params"`
	Why    string `json:"why"`
	Source string `json:"source"`
	// Requests and DurationS describe the trace; StartupS is the preset's pod startup delay.
	Requests  int     `json:"requests"`
	DurationS float64 `json:"duration_s"`
	StartupS  float64 `json:"startup_s"`
	// Results are the fixed counts in order, then the Baselines.
	Results  []sim.Result     `json:"results"`
	Frontier sim.Frontier     `json:"frontier"`
	Bursts   []sim.BurstScore `json:"bursts"`
	// Labels are the generator's own bursts (generated traces), for comparison with Bursts.
	Labels []Label `json:"labels,omitempty"`
	Goals  Goals   `json:"goals"`
	// Ablation is llmd with one mechanism switched off, scored the same way; References the reference
	// learners (References), built from the fixed counts' runs and scored the same way.
	Ablation   []Variant `json:"ablation,omitempty"`
	References []Variant `json:"references,omitempty"`
	// Calibration is the capacity model's predicted late share against the fixed counts' realized one.
	Calibration Calibration `json:"calibration"`
	// Runs is the number of simulations and RunSeconds their wall time.
	Runs       int     `json:"runs"`
	RunSeconds float64 `json:"run_seconds"`
	// plot holds the results drawn in the case's plot, with their time series.
	plot []sim.Result
}

// Goals is one policy's goal checks on one case.
type Goals struct {
	// NotDominated is true when DominatedBy, the fixed counts and baselines that dominate it, is empty.
	NotDominated bool     `json:"not_dominated"`
	DominatedBy  []string `json:"dominated_by"`
	Learns       Learns   `json:"learns"`
	Pays         Pays     `json:"pays"`
}

// Learns is the learns-from-what-it-has-seen check.
type Learns struct {
	// Applies when a fixed count within maxReplicas meets the SLO for at least LearnsFixed of the trace;
	// FixedCount is the fewest such count.
	Applies    bool  `json:"applies"`
	FixedCount int32 `json:"fixed_count,omitempty"`
	// Attainment is over the Requests outside the first burst of each size and one startup delay after it.
	Attainment float64 `json:"attainment_outside_first_bursts"`
	Requests   int     `json:"requests_outside_first_bursts"`
	Met        bool    `json:"met"`
}

// Pays is one case's part of the pays-for-itself check: the cheapest fixed count at least as good as the
// policy (0 if none within maxReplicas) and the GPU-hours of both.
type Pays struct {
	CheapestFixed         int32   `json:"cheapest_fixed"`
	CheapestFixedGPUHours float64 `json:"cheapest_fixed_gpu_hours"`
	GPUHours              float64 `json:"gpu_hours"`
	// FrontierGPUHours is the frontier's GPU-hours at the policy's attainment (interpolated between counts);
	// 0 when no count reaches it.
	FrontierGPUHours float64 `json:"frontier_gpu_hours"`
}

// Variant is a run scored like llmd's: llmd with one mechanism switched off, or a reference learner.
type Variant struct {
	// Name is the mechanism switched off, or the reference's policy.
	Name   string     `json:"name"`
	Result sim.Result `json:"result"`
	Goals  Goals      `json:"goals"`
}

// score builds a case's report from its runs; b is the objective the capacity model's calibration is
// measured against.
func score(c Case, reqs []sim.Request, labels []Label, results []sim.Result, ablated, refs []Variant, b decision.Budget) CaseReport {
	cr := CaseReport{Case: c.Name, Trace: c.Trace, GPU: c.Preset.Name, Source: c.Source, Requests: len(reqs),
		DurationS: reqs[len(reqs)-1].At.Seconds(), StartupS: c.Preset.startup().Seconds(), Labels: labels,
		Results: results, Frontier: sim.NewFrontier(results)}
	if c.Spec != nil {
		cr.Family, cr.Params, cr.Why = c.Spec.Family, c.Spec.Params, c.Spec.Why
	} else {
		cr.Family, cr.Params = "recorded", "the recorded trace at its own speed"
	}
	bursts := sim.DetectBursts(reqs)
	startup := c.Preset.startup()
	cr.Calibration = calibrate(reqs, results, bursts, startup, sim.Prior(c.Preset.Params), b)
	cr.Goals = goals(find(results, sim.LLMD), results, reqs, bursts, startup)
	scoreVariants := func(vs []Variant) []Variant {
		var out []Variant
		for _, v := range vs {
			v.Goals = goals(v.Result, results, reqs, bursts, startup)
			v.Result.Met, v.Result.Series = nil, nil
			out = append(out, v)
		}
		return out
	}
	cr.Ablation, cr.References = scoreVariants(ablated), scoreVariants(refs)
	var scored []sim.Result
	for _, p := range Baselines {
		scored = append(scored, find(results, p))
	}
	fixedShown := cr.Frontier.Fixed[len(cr.Frontier.Fixed)-1].Replicas
	if cr.Goals.Learns.Applies {
		fixedShown = cr.Goals.Learns.FixedCount
	}
	scored = append(scored, find(results, sim.Static(fixedShown)))
	cr.Bursts = sim.ScoreBursts(reqs, bursts, startup, scored)
	for i := range scored {
		scored[i].Met = nil
	}
	cr.plot = scored
	for i := range cr.Results {
		cr.Results[i].Met = nil // the time series stay in plot only
	}
	return cr
}

// goals checks one llmd run (or a variant's) against the case's fixed counts and baselines.
func goals(r sim.Result, results []sim.Result, reqs []sim.Request, bursts []sim.Burst, startup time.Duration) Goals {
	others := []sim.Result{r}
	for _, o := range results {
		if o.Policy != sim.LLMD {
			others = append(others, o)
		}
	}
	f := sim.NewFrontier(others)
	c, _ := f.Policy(r.Policy)
	g := Goals{DominatedBy: c.DominatedBy, NotDominated: len(c.DominatedBy) == 0,
		Pays: Pays{CheapestFixed: c.CheapestFixed, CheapestFixedGPUHours: c.CheapestFixedGPUHours, GPUHours: r.GPUHours}}
	if c.FrontierGPUHours != nil {
		g.Pays.FrontierGPUHours = *c.FrontierGPUHours
	}
	for _, p := range f.Fixed {
		if p.Attainment >= LearnsFixed {
			g.Learns.Applies, g.Learns.FixedCount = true, p.Replicas
			break
		}
	}
	g.Learns.Attainment, g.Learns.Requests = sim.OutsideFirstBursts(reqs, bursts, startup, r.Met)
	g.Learns.Met = g.Learns.Attainment >= LearnsTarget
	return g
}

// find returns the result of the named policy (a zero Result if absent).
func find(results []sim.Result, policy string) sim.Result {
	if i := slices.IndexFunc(results, func(r sim.Result) bool { return r.Policy == policy }); i >= 0 {
		return results[i]
	}
	return sim.Result{Policy: policy}
}

// Report is a whole run of the suite.
type Report struct {
	Cases []CaseReport `json:"cases"`
	// Suite is llmd's goals over the suite; Ablations the same for each mechanism switched off, References
	// for each reference learner.
	Suite       SuiteGoals    `json:"suite"`
	Ablations   []SuiteGoals  `json:"ablations"`
	References  []SuiteGoals  `json:"references"`
	Mechanisms  []string      `json:"mechanisms"`
	Workers     int           `json:"workers"`
	SLOTTFT     time.Duration `json:"slo_ttft_ns"`
	Warmup      time.Duration `json:"warmup_ns"`
	MinReplicas int32         `json:"min_replicas"`
	MaxReplicas int32         `json:"max_replicas"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	// CPUSeconds is the CPU time the simulations used.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Calibration is the cases' calibration summed per GPU preset, in the cases' order of presets.
	Calibration []PresetCalibration `json:"calibration"`
}

// PresetCalibration is the calibration of every case on one GPU preset.
type PresetCalibration struct {
	GPU  string      `json:"gpu"`
	Bins Calibration `json:"bins"`
}

// SuiteGoals is one policy's goals over the whole suite.
type SuiteGoals struct {
	// Policy is "llmd", "llmd without MECHANISM" or a reference learner.
	Policy string `json:"policy"`
	Cases  int    `json:"cases"`
	// NotDominated counts the cases where no fixed count or baseline dominates the policy.
	NotDominated int `json:"not_dominated"`
	// LearnsApplies counts the cases where a fixed count meets the SLO for LearnsFixed of the trace,
	// LearnsMet those of them where the policy meets LearnsTarget outside the first bursts.
	LearnsApplies int `json:"learns_applies"`
	LearnsMet     int `json:"learns_met"`
	// PaysCases counts the cases where some fixed count is at least as good as the policy; GPUHours and
	// FixedGPUHours sum the policy's and the cheapest such count's GPU-hours over them, Share is their
	// ratio and Met says Share <= PaysShare. FrontierGPUHours sums the frontier's interpolated GPU-hours at
	// the policy's attainment over the same cases (the interpolated version of the same comparison).
	PaysCases        int     `json:"pays_cases"`
	GPUHours         float64 `json:"gpu_hours"`
	FixedGPUHours    float64 `json:"fixed_gpu_hours"`
	FrontierGPUHours float64 `json:"frontier_gpu_hours"`
	Share            float64 `json:"share"`
	Met              bool    `json:"met"`
	// AboveEveryCount counts the cases where the policy's attainment is above every fixed count's.
	AboveEveryCount int `json:"above_every_count"`
	// TotalGPUHours and MeanAttainment are over every case.
	TotalGPUHours  float64 `json:"total_gpu_hours"`
	MeanAttainment float64 `json:"mean_attainment"`
}

// summarize fills the suite's goals and the ablations' from the cases.
func (r *Report) summarize() {
	r.Suite = SuiteGoals{Policy: sim.LLMD}
	for _, c := range r.Cases {
		r.Suite.add(c.Goals, find(c.Results, sim.LLMD))
	}
	r.Suite.finish()
	r.Calibration = nil
	for _, c := range r.Cases {
		i := slices.IndexFunc(r.Calibration, func(p PresetCalibration) bool { return p.GPU == c.GPU })
		if i < 0 {
			r.Calibration = append(r.Calibration, PresetCalibration{GPU: c.GPU, Bins: newCalibration()})
			i = len(r.Calibration) - 1
		}
		r.Calibration[i].Bins.merge(c.Calibration)
	}
	r.Ablations, r.References = nil, nil
	for _, m := range r.Mechanisms {
		r.Ablations = append(r.Ablations, r.variantGoals(sim.LLMD+" without "+m, m, func(c CaseReport) []Variant { return c.Ablation }))
	}
	for _, ref := range References {
		r.References = append(r.References, r.variantGoals(ref, ref, func(c CaseReport) []Variant { return c.References }))
	}
}

// variantGoals sums, as policy, the goals of the variants named name over the cases.
func (r *Report) variantGoals(policy, name string, of func(CaseReport) []Variant) SuiteGoals {
	s := SuiteGoals{Policy: policy}
	for _, c := range r.Cases {
		for _, v := range of(c) {
			if v.Name == name {
				s.add(v.Goals, v.Result)
			}
		}
	}
	s.finish()
	return s
}

func (s *SuiteGoals) add(g Goals, r sim.Result) {
	s.Cases++
	s.TotalGPUHours += r.GPUHours
	s.MeanAttainment += r.SLOAttainment
	if g.NotDominated {
		s.NotDominated++
	}
	if g.Learns.Applies {
		s.LearnsApplies++
		if g.Learns.Met {
			s.LearnsMet++
		}
	}
	if g.Pays.CheapestFixed == 0 {
		s.AboveEveryCount++
		return
	}
	s.PaysCases++
	s.GPUHours += g.Pays.GPUHours
	s.FixedGPUHours += g.Pays.CheapestFixedGPUHours
	s.FrontierGPUHours += g.Pays.FrontierGPUHours
}

func (s *SuiteGoals) finish() {
	if s.Cases > 0 {
		s.MeanAttainment /= float64(s.Cases)
	}
	if s.FixedGPUHours > 0 {
		s.Share = s.GPUHours / s.FixedGPUHours
		s.Met = s.Share <= PaysShare
	}
}
