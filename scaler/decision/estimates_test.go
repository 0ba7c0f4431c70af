package decision

import (
	"math"
	"testing"
	"time"
)

// fresh is a pod that has just become ready: one scrape, no decode rate yet, nothing in its KV cache.
var fresh = Pod{}

// The demand estimates behind a scale-down: a pod without a rate yet, a request caught between scheduler steps,
// counts no vLLM reports. Each on one snapshot, with no window in the way.
func TestScaleDownEstimates(t *testing.T) {
	noWindow := article()
	noWindow.ScaleDownWindow = 0
	queueOnly := Policy{MinReplicas: 1, MaxReplicas: 8, TargetQueue: 5}
	cases := []struct {
		name string
		p    Policy
		s    Snapshot
		want int32
		rule Rule
	}{
		{"a pod without a decode rate yet counts at the floor, the others' rates decide",
			noWindow, Snapshot{Current: 5, Ready: 5, Pods: append(pods(4, busy(0, 2, 100)), fresh)}, 2, RuleScaleDown},
		{"... and holds when the others are at the floor",
			noWindow, Snapshot{Current: 5, Ready: 5, Pods: append(pods(4, busy(0, 10, 420)), fresh)}, 5, RuleThroughputAboveFloor},
		{"no pod has a decode rate yet: hold",
			noWindow, Snapshot{Current: 4, Ready: 4, Pods: pods(4, fresh)}, 4, RuleMissingData},
		{"one request waiting on a small batch is not saturation: the largest batch sets the estimate",
			noWindow, Snapshot{Current: 6, Ready: 6, Pods: append([]Pod{busy(1, 2, 100)}, pods(5, busy(0, 15, 100))...)}, 4, RuleScaleDown},
		{"the same without a throughput floor",
			queueOnly, Snapshot{Current: 6, Ready: 6, Pods: append([]Pod{busy(1, 2, 100)}, pods(5, busy(0, 15, 100))...)}, 4, RuleScaleDown},
		{"a running count no vLLM reports is missing data, not a batch that fits any demand",
			queueOnly, Snapshot{Current: 6, Ready: 2, Pods: []Pod{{Waiting: 1, Running: 1}, {Running: 1e12}}}, 6, RuleMissingData},
		{"a NaN count is missing data",
			noWindow, Snapshot{Current: 4, Ready: 4, Pods: append(pods(3, busy(0, 1, 50)), Pod{Waiting: math.NaN(), HasDecodeTPS: true})}, 4, RuleMissingData},
		{"a negative count is missing data",
			noWindow, Snapshot{Current: 4, Ready: 4, Pods: append(pods(3, busy(0, 1, 50)), Pod{Running: -1, HasDecodeTPS: true})}, 4, RuleMissingData},
		{"a NaN decode rate is missing data, not a rate under the floor",
			noWindow, Snapshot{Current: 4, Ready: 4, Pods: append(pods(3, busy(0, 1, 50)), Pod{DecodeTPS: math.NaN(), HasDecodeTPS: true})}, 4, RuleMissingData},
		{"a negative decode rate is missing data",
			noWindow, Snapshot{Current: 4, Ready: 4, Pods: append(pods(3, busy(0, 1, 50)), Pod{DecodeTPS: -300, HasDecodeTPS: true})}, 4, RuleMissingData},
		{"an implausible pod does not stop a scale-up",
			noWindow, Snapshot{Current: 2, Ready: 2, Pods: []Pod{busy(30, 10, 500), {Running: math.Inf(1)}}}, 3, RuleScaleUpQueue},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.Now = t0
			a := New(tc.p)
			a.started = t0.Add(-time.Hour)
			d := a.Decide(tc.s)
			if d.Desired != tc.want || d.Rule != tc.rule {
				t.Fatalf("got %d (%s: %s), want %d (%s)", d.Desired, d.Rule, d.Reason, tc.want, tc.rule)
			}
		})
	}
}

// A pod becoming ready does not re-arm the window: the window runs from the last recommendation that asked
// for the count, not from the new pod's first scrape.
func TestNewPodDoesNotReArmTheWindow(t *testing.T) {
	a := New(article())
	a.started = t0.Add(-time.Hour)
	hot := append([]Pod{busy(8, 20, 300)}, pods(3, busy(0, 5, 100))...)
	if d := a.Decide(Snapshot{Now: t0, Current: 4, Ready: 4, Pods: hot}); d.Desired != 5 {
		t.Fatalf("hot pod: got %d (%s), want 5", d.Desired, d.Rule)
	}
	calm := append(pods(4, busy(0, 5, 100)), fresh)
	if d := a.Decide(Snapshot{Now: t0.Add(90 * time.Second), Current: 5, Ready: 5, Pods: calm}); d.Desired != 5 || d.Rule != RuleScaleDownStabilizing {
		t.Fatalf("the new pod's first scrape: got %d (%s: %s), want 5 (%s)", d.Desired, d.Rule, d.Reason, RuleScaleDownStabilizing)
	}
	calm[4] = busy(0, 5, 100)
	if d := a.Decide(Snapshot{Now: t0.Add(301 * time.Second), Current: 5, Ready: 5, Pods: calm}); d.Desired >= 5 {
		t.Fatalf("one window after the hot pod: got %d (%s: %s), want a scale-down", d.Desired, d.Rule, d.Reason)
	}
}
