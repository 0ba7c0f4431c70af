package decision

import (
	"strings"
	"testing"
	"time"
)

// A queue piled on single pods scales up by one per hot pod, net of the pods already starting, and holds the
// scale-down window like any other recommendation.
func TestHotPod(t *testing.T) {
	noWindow := article()
	noWindow.ScaleDownWindow = 0
	cases := []struct {
		name string
		s    Snapshot
		want int32
		rule Rule
	}{
		{"one pod above target, average under it: one more replica",
			Snapshot{Current: 4, Ready: 4, Pods: []Pod{busy(8, 20, 300), busy(0, 10, 200), busy(0, 10, 200), busy(0, 10, 200)}}, 5, RuleScaleUpHotPod},
		{"two hot pods: two more",
			Snapshot{Current: 5, Ready: 5, Pods: []Pod{busy(7, 20, 300), busy(6, 20, 300), busy(0, 5, 100), busy(0, 5, 100), busy(0, 5, 100)}}, 7, RuleScaleUpHotPod},
		{"a starting pod already answers one hot pod",
			Snapshot{Current: 5, Ready: 4, Starting: 1, Pods: []Pod{busy(8, 20, 400), busy(0, 10, 400), busy(0, 10, 400), busy(0, 10, 400)}}, 5, RuleThroughputAboveFloor},
		{"a queue exactly at the target is tolerated",
			Snapshot{Current: 4, Ready: 4, Pods: []Pod{busy(5, 20, 400), busy(0, 10, 400), busy(0, 10, 400), busy(0, 10, 400)}}, 4, RuleThroughputAboveFloor},
		{"missing data: the hot pod does not scale, the size holds",
			Snapshot{Current: 4, Ready: 4, Missing: 1, Pods: []Pod{busy(8, 20, 300), busy(0, 10, 200), busy(0, 10, 200)}}, 4, RuleMissingData},
		{"clamped at max",
			Snapshot{Current: 8, Ready: 8, Pods: append([]Pod{busy(9, 20, 300)}, pods(7, busy(0, 10, 200))...)}, 8, RuleAtMaxReplicas},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.Now = t0
			a := New(noWindow)
			a.started = t0.Add(-time.Hour)
			d := a.Decide(tc.s)
			if d.Desired != tc.want || d.Rule != tc.rule {
				t.Fatalf("got %d (%s: %s), want %d (%s)", d.Desired, d.Rule, d.Reason, tc.want, tc.rule)
			}
		})
	}
}

func TestHotPodHoldsTheWindow(t *testing.T) {
	a := New(article())
	a.started = t0.Add(-time.Hour)
	hot := append([]Pod{busy(8, 20, 300)}, pods(3, busy(0, 5, 100))...)
	if d := a.Decide(Snapshot{Now: t0, Current: 4, Ready: 4, Pods: hot}); d.Desired != 5 {
		t.Fatalf("hot pod: got %d (%s), want 5", d.Desired, d.Rule)
	}
	calm5 := pods(5, busy(0, 5, 100))
	if d := a.Decide(Snapshot{Now: t0.Add(200 * time.Second), Current: 5, Ready: 5, Pods: calm5}); d.Desired != 5 || d.Rule != RuleScaleDownStabilizing {
		t.Fatalf("inside the window: got %d (%s), want 5 (%s)", d.Desired, d.Rule, RuleScaleDownStabilizing)
	}
	if d := a.Decide(Snapshot{Now: t0.Add(301 * time.Second), Current: 5, Ready: 5, Pods: calm5}); d.Desired >= 5 {
		t.Fatalf("after the window: got %d (%s), want a scale-down", d.Desired, d.Rule)
	}
}

// With the capacity model's data, a hot pod is the variation of random routing the model sizes for: the
// model's count stands, and the reason says why the hot pod added none. On partial data the rule's count
// stands.
func TestHotPodUnderTheModel(t *testing.T) {
	a := New(modelled(), Without(MechanismHeadroom))
	current := int32(1)
	steady := run(a, &current, 0, 20*time.Minute, func(time.Duration) float64 { return 10 })
	ps := load(int(current), 10, 1000, 100, 0)
	ps[0].Waiting = 8 // above the target of 5, the average under it
	d := a.Decide(Snapshot{Now: t0.Add(20 * time.Minute), Current: current, Ready: int(current), Pods: ps, StartupDelay: time.Minute})
	if d.Desired != steady.Desired || d.Rule == RuleScaleUpHotPod || !strings.Contains(d.Reason, "random routing's variation") {
		t.Fatalf("a hot pod under the model: %d (%s: %s), want the model's %d", d.Desired, d.Rule, d.Reason, steady.Desired)
	}
	ps[1].RateSpan = time.Second // a pod that has just started: its rates are missing from the sums
	d = a.Decide(Snapshot{Now: t0.Add(20*time.Minute + 5*time.Second), Current: current, Ready: int(current), Pods: ps, StartupDelay: time.Minute})
	if d.Desired != current+1 || d.Rule != RuleScaleUpHotPod {
		t.Fatalf("a hot pod on partial data: %d (%s: %s), want %d (%s)", d.Desired, d.Rule, d.Reason, current+1, RuleScaleUpHotPod)
	}
}
