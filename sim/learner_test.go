package sim

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// The ideal learner meets a first burst with the count before it for one startup delay, then holds each
// later burst's need of that size from the end of the one before until it starts; a burst of another size
// learns nothing for it, and nothing is held after the last of a size.
func TestLearnerPlan(t *testing.T) {
	m := time.Minute
	plan := []int32{1, 1, 4, 4, 1, 1, 1, 5, 1, 1, 2, 1, 3, 1, 1}
	bursts := []Burst{
		{Start: 2 * m, End: 4 * m, Size: 4, First: true},
		{Start: 7 * m, End: 8 * m, Size: 4},
		{Start: 10 * m, End: 11 * m, Size: 2, First: true},
		{Start: 12 * m, End: 13 * m, Size: 4},
	}
	got := learnerPlan(plan, bursts, m, 90*time.Second)
	want := []int32{1, 1, 1, 4, 5, 5, 5, 5, 3, 3, 3, 3, 3, 1, 1}
	// minute 2: the first 4x burst meets the 1 pod before it (the minutes that start within the 90 s, in
	// the learner's favour);
	// minutes 4-6: held for the second 4x burst's 5; minutes 8-11: for the third's 3, the 2x burst's 2
	// included; after the last burst, the plan alone.
	if !slices.Equal(got, want) {
		t.Errorf("learnerPlan = %v, want %v", got, want)
	}
	if !slices.Equal(plan, []int32{1, 1, 4, 4, 1, 1, 1, 5, 1, 1, 2, 1, 3, 1, 1}) {
		t.Errorf("learnerPlan changed its input: %v", plan)
	}
}

// A plan over no request charges nothing and does not fail.
func TestPlansOfAnEmptyTrace(t *testing.T) {
	for _, p := range []string{LowerBound, IdealLearner} {
		res, err := Run(article(), p, nil)
		if err != nil || res.GPUHours != 0 || res.Requests != 0 {
			t.Errorf("%s on no request: %d requests, %g GPU-h, %v; want 0, 0, nil", p, res.Requests, res.GPUHours, err)
		}
	}
}

// IdealLearnerOf from the fixed counts' runs is ideal-learner, and without one of them it says which it needs.
func TestIdealLearnerOfFixedRuns(t *testing.T) {
	cfg := article()
	cfg.Policy.MaxReplicas = 3
	reqs := synthetic(5 * time.Minute)
	var fixed []Result
	for n := int32(1); n <= 3; n++ {
		r, err := Run(cfg, Static(n), reqs)
		if err != nil {
			t.Fatal(err)
		}
		fixed = append(fixed, r)
	}
	own, err := Run(cfg, IdealLearner, reqs)
	if err != nil {
		t.Fatal(err)
	}
	of, err := IdealLearnerOf(cfg, reqs, fixed)
	if err != nil {
		t.Fatal(err)
	}
	if of.SLOAttainment != own.SLOAttainment || of.GPUHours != own.GPUHours || !slices.Equal(of.Plan, own.Plan) {
		t.Errorf("from the fixed runs: %.4f, %.3f GPU-h, plan %v; run itself: %.4f, %.3f GPU-h, plan %v",
			of.SLOAttainment, of.GPUHours, of.Plan, own.SLOAttainment, own.GPUHours, own.Plan)
	}
	_, err = IdealLearnerOf(cfg, reqs, fixed[:2])
	if err == nil || !strings.Contains(err.Error(), "static:3") {
		t.Errorf("without static:3's run: %v, want an error naming static:3", err)
	}
}
