package sim

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
)

func fixed(n int32, a, g float64) Result {
	return Result{Policy: Static(n), SLOAttainment: a, GPUHours: g}
}

func ptr(v float64) *float64 { return &v }

// The frontier against hand-computed cases: five fixed counts, the fifth dominated by the fourth (the same
// 100 % for more GPU-hours), and policies inside, on, below and beyond it.
func TestFrontierByHand(t *testing.T) {
	results := []Result{
		fixed(3, 0.99, 3), fixed(1, 0.80, 1), fixed(2, 0.95, 2), fixed(5, 1, 5), fixed(4, 1, 4), // any order
		{Policy: "a", SLOAttainment: 0.98, GPUHours: 2.5},
		{Policy: "b", SLOAttainment: 0.90, GPUHours: 3.5},
		{Policy: "c", SLOAttainment: 1, GPUHours: 6},
		{Policy: "d", SLOAttainment: 0.70, GPUHours: 1},
		{Policy: "e", SLOAttainment: 1, GPUHours: 3.6},
	}
	f := NewFrontier(results)
	var on []int32
	for i, p := range f.Fixed {
		if p.Replicas != int32(i+1) {
			t.Fatalf("fixed counts out of order: %+v", f.Fixed)
		}
		if p.OnFrontier {
			on = append(on, p.Replicas)
		}
	}
	if !reflect.DeepEqual(on, []int32{1, 2, 3, 4}) {
		t.Errorf("on the frontier: %v, want 1-4 (5 gives the same 100 %% as 4 for more)", on)
	}
	want := []Comparison{
		// At 2.5 GPU-h the frontier is halfway from 2 (95 %) to 3 (99 %): 97 %, so +1 point; 98 % needs
		// 2 + (98-95)/(99-95) = 2.75 GPU-h, so 1 - 2.5/2.75 = 9.09 % saved.
		{Policy: "a", Attainment: 0.98, GPUHours: 2.5, DominatedBy: []string{},
			FrontierAttainment: ptr(0.97), AttainmentGain: ptr(0.01), FrontierGPUHours: ptr(2.75), GPUHourSaving: ptr(1 - 2.5/2.75),
			CheapestFixed: 3, CheapestFixedGPUHours: 3},
		// At 3.5 GPU-h: halfway from 99 % to 100 %, 99.5 %; 90 % needs 1 + (90-80)/(95-80) = 5/3 GPU-h.
		{Policy: "b", Attainment: 0.90, GPUHours: 3.5, DominatedBy: []string{"static:2", "static:3", "a"},
			FrontierAttainment: ptr(0.995), AttainmentGain: ptr(0.90 - 0.995), FrontierGPUHours: ptr(5.0 / 3), GPUHourSaving: ptr(1 - 3.5/(5.0/3)),
			CheapestFixed: 2, CheapestFixedGPUHours: 2},
		// Beyond the most expensive frontier count the frontier is flat at 100 %; 100 % needs 4 GPU-h.
		{Policy: "c", Attainment: 1, GPUHours: 6, DominatedBy: []string{"static:4", "static:5", "e"},
			FrontierAttainment: ptr(1), AttainmentGain: ptr(0), FrontierGPUHours: ptr(4), GPUHourSaving: ptr(1 - 6.0/4),
			CheapestFixed: 4, CheapestFixedGPUHours: 4},
		// Same GPU-hours as static:1 and less attainment: dominated. Below the cheapest count's attainment the
		// frontier's GPU-hours are the cheapest count's.
		{Policy: "d", Attainment: 0.70, GPUHours: 1, DominatedBy: []string{"static:1"},
			FrontierAttainment: ptr(0.80), AttainmentGain: ptr(-0.10), FrontierGPUHours: ptr(1), GPUHourSaving: ptr(0),
			CheapestFixed: 1, CheapestFixedGPUHours: 1},
		{Policy: "e", Attainment: 1, GPUHours: 3.6, DominatedBy: []string{},
			FrontierAttainment: ptr(0.996), AttainmentGain: ptr(0.004), FrontierGPUHours: ptr(4), GPUHourSaving: ptr(0.1),
			CheapestFixed: 4, CheapestFixedGPUHours: 4},
	}
	if len(f.Policies) != len(want) {
		t.Fatalf("%d comparisons, want %d", len(f.Policies), len(want))
	}
	for i, w := range want {
		g := f.Policies[i]
		if g.Policy != w.Policy || g.Attainment != w.Attainment || g.GPUHours != w.GPUHours ||
			!reflect.DeepEqual(g.DominatedBy, w.DominatedBy) || g.CheapestFixed != w.CheapestFixed ||
			g.CheapestFixedGPUHours != w.CheapestFixedGPUHours {
			t.Errorf("%s: got %+v, want %+v", w.Policy, g, w)
		}
		for name, p := range map[string][2]*float64{"frontier attainment": {g.FrontierAttainment, w.FrontierAttainment},
			"gain": {g.AttainmentGain, w.AttainmentGain}, "frontier GPU-h": {g.FrontierGPUHours, w.FrontierGPUHours},
			"saving": {g.GPUHourSaving, w.GPUHourSaving}} {
			if p[0] == nil || math.Abs(*p[0]-*p[1]) > 1e-12 {
				t.Errorf("%s: %s %v, want %v", w.Policy, name, deref(p[0]), *p[1])
			}
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// Beyond the frontier's ends: a policy better than every fixed count has no saving at equal attainment (no
// count reaches it), and a count whose attainment falls as replicas grow (noise) leaves the frontier.
func TestFrontierEnds(t *testing.T) {
	f := NewFrontier([]Result{fixed(1, 0.5, 1), fixed(2, 0.9, 2), fixed(3, 0.85, 3),
		{Policy: "best", SLOAttainment: 0.95, GPUHours: 1.5}})
	if f.Fixed[2].OnFrontier {
		t.Error("static:3 is below static:2 on both: not on the frontier")
	}
	c, ok := f.Policy("best")
	if !ok {
		t.Fatal("no comparison for best")
	}
	if c.GPUHourSaving != nil || c.FrontierGPUHours != nil || c.CheapestFixed != 0 || len(c.DominatedBy) != 0 {
		t.Errorf("above every count: %+v", c)
	}
	if c.AttainmentGain == nil || math.Abs(*c.AttainmentGain-(0.95-0.7)) > 1e-12 {
		t.Errorf("gain at 1.5 GPU-h: %v, want +25 points over 70 %%", deref(c.AttainmentGain))
	}
	// Below the cheapest count's GPU-hours there is nothing to compare with.
	f = NewFrontier([]Result{fixed(2, 0.9, 2), {Policy: "cheap", SLOAttainment: 0.8, GPUHours: 1}})
	if c, _ := f.Policy("cheap"); c.AttainmentGain != nil || c.GPUHourSaving == nil || *c.GPUHourSaving != 0.5 {
		t.Errorf("below the cheapest count: %+v", c)
	}
	var b bytes.Buffer
	WriteFrontier(&b, f)
	if s := b.String(); !strings.Contains(s, "static:2") || !strings.Contains(s, "cheap") || !strings.Contains(s, "–") {
		t.Errorf("table:\n%s", s)
	}
}

// Two runs whose GPU-hours differ in the last bits of a float sum are equal: a policy with the same
// attainment is not dominated by such noise.
func TestDominatesTolerance(t *testing.T) {
	if dominates(0.99, 2*(1-1e-12), 0.99, 2) {
		t.Error("GPU-hours equal to 1e-12 dominate")
	}
	if !dominates(0.99, 2*(1-1e-12), 0.98, 2) || !dominates(0.99, 1.9, 0.99, 2) || dominates(0.99, 2, 0.99, 2) {
		t.Error("dominance")
	}
}
