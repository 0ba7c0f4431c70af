package suite

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/llm-d/llm-d/sim"
)

// digestCase builds a case from its runs, with llmd scored against the others as the suite scores it.
func digestCase(name string, runs ...sim.Result) CaseReport {
	c := CaseReport{Case: name, Results: runs, Frontier: sim.NewFrontier(runs)}
	llmd, _ := c.Frontier.Policy(sim.LLMD)
	c.Goals = Goals{DominatedBy: llmd.DominatedBy, NotDominated: len(llmd.DominatedBy) == 0}
	return c
}

func res(policy string, attainment, gpuHours float64) sim.Result {
	return sim.Result{Policy: policy, SLOAttainment: attainment, GPUHours: gpuHours}
}

func TestDigest(t *testing.T) {
	// a: llmd beats every fixed count and dominates hpa-queue; token-aware dominates it.
	a := digestCase("a", res("static:1", 0.90, 1), res("static:2", 1, 2), res(sim.LLMD, 0.99, 1.5),
		res(sim.HPAQueue, 0.98, 1.6), res(sim.TokenAware, 0.995, 1.4), res(sim.TokenAwareShipped, 0.99, 2))
	// b: static:2 and static:3 dominate llmd; hpa-queue neither dominates it nor is dominated.
	b := digestCase("b", res("static:1", 0.90, 1), res("static:2", 1, 2), res("static:3", 1, 3), res(sim.LLMD, 0.99, 3),
		res(sim.HPAQueue, 0.998, 3.5), res(sim.TokenAware, 0.5, 4), res(sim.TokenAwareShipped, 0.5, 4))
	d := newDigest([]CaseReport{a, b})
	if d.NotDominatedByFixed != 1 {
		t.Errorf("not dominated by a fixed count in %d cases, want 1", d.NotDominatedByFixed)
	}
	want := []baselineDigest{{Policy: sim.HPAQueue, LLMDDominates: 1, Neither: 1},
		{Policy: sim.TokenAware, LLMDDominates: 1, DominatesLLM: 1}, {Policy: sim.TokenAwareShipped, LLMDDominates: 2}}
	if !slices.Equal(d.Baselines, want) {
		t.Errorf("baselines %+v, want %+v", d.Baselines, want)
	}
	if len(d.Dominated) != 2 || !slices.Equal(d.Dominated[0].Others, []string{sim.TokenAware}) || len(d.Dominated[0].Fixed) != 0 ||
		!slices.Equal(d.Dominated[1].Fixed, []string{"static:2", "static:3"}) || d.Dominated[1].Cheapest.Policy != "static:2" {
		t.Errorf("dominated cases %+v", d.Dominated)
	}
	if d.Totals[0].Policy != sim.LLMD || d.Totals[0].GPUHours != 4.5 || d.Totals[0].MeanAttainment != 0.99 {
		t.Errorf("llmd's totals %+v, want 4.5 GPU-h and 99 %%", d.Totals[0])
	}

	var md bytes.Buffer
	p := &printer{w: &md}
	Report{Cases: []CaseReport{a, b}, MinReplicas: 1, MaxReplicas: 3, Suite: SuiteGoals{Cases: 2}}.digestSection(p)
	for _, s := range []string{"| 1 of 2 |", "| [b](#b) | 99.00 % / 3.00 | static:2 (100.00 % / 2.00) | static:2, static:3 | – |",
		"| hpa-queue | 5.10 | 98.90 % | 1 | 0 | 1 |"} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("summary lacks %q:\n%s", s, md.String())
		}
	}
}
