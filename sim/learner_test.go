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
	got := learnerPlan(plan, bursts, m, 90*time.Second, 0)
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

	// Seen two minutes late, the demand between bursts comes two minutes late; the later bursts' needs are
	// still the plan's own, held until the learner sees them start.
	got = learnerPlan(plan, bursts, m, 90*time.Second, 2)
	want = []int32{1, 1, 1, 1, 5, 5, 5, 5, 5, 5, 5, 3, 3, 3, 3}
	// minutes 0-3: the plan two minutes late (the first 4x burst's 4 would come at minute 4); minutes 4-8:
	// the second 4x burst's 5, held until minute 9, two after it started; minutes 9-10: that burst's 5 seen
	// late (minute 10 starts the first 2x burst, which meets the count seen before it); minutes 11-13: the
	// third 4x burst's 3, held until two minutes after it started; minute 14: minute 12's 3, seen late.
	if !slices.Equal(got, want) {
		t.Errorf("learnerPlan two minutes late = %v, want %v", got, want)
	}
}

// A plan over no request charges nothing and does not fail.
func TestPlansOfAnEmptyTrace(t *testing.T) {
	for _, p := range []string{LowerBound, IdealLearner, ReactiveLearner} {
		res, err := Run(article(), p, nil)
		if err != nil || res.GPUHours != 0 || res.Requests != 0 {
			t.Errorf("%s on no request: %d requests, %g GPU-h, %v; want 0, 0, nil", p, res.Requests, res.GPUHours, err)
		}
	}
}

// LearnerOf from the fixed counts' runs is the learner Run gives, and without one of them it says which it
// needs.
func TestLearnerOfFixedRuns(t *testing.T) {
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
	for _, p := range []string{IdealLearner, ReactiveLearner} {
		own, err := Run(cfg, p, reqs)
		if err != nil {
			t.Fatal(err)
		}
		of, err := LearnerOf(cfg, p, reqs, fixed)
		if err != nil {
			t.Fatal(err)
		}
		if of.Policy != p || of.SLOAttainment != own.SLOAttainment || of.GPUHours != own.GPUHours || !slices.Equal(of.Plan, own.Plan) {
			t.Errorf("%s from the fixed runs: %.4f, %.3f GPU-h, plan %v; run itself: %.4f, %.3f GPU-h, plan %v",
				p, of.SLOAttainment, of.GPUHours, of.Plan, own.SLOAttainment, own.GPUHours, own.Plan)
		}
		_, err = LearnerOf(cfg, p, reqs, fixed[:2])
		if err == nil || !strings.Contains(err.Error(), "static:3") {
			t.Errorf("%s without static:3's run: %v, want an error naming static:3", p, err)
		}
	}
	if _, err := LearnerOf(cfg, LLMD, reqs, fixed); err == nil || !strings.Contains(err.Error(), "not a learner") {
		t.Errorf("LearnerOf llmd: %v, want an error saying it is not a learner", err)
	}
}
