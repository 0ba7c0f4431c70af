package sim

import (
	"testing"
	"time"
)

// The HPA's replica formula and behavior, against the Kubernetes documentation's examples.
func TestHPAFormula(t *testing.T) {
	cases := []struct {
		name          string
		current       int32
		total, target float64
		tolerance     float64
		want          int32
	}{
		{"AverageValue: ceil(total/target)", 2, 23, 5, 0, 5},
		{"exact multiple", 3, 15, 5, 0, 3},
		{"within the 10% tolerance: no change (ratio 1.08)", 5, 27, 5, 0.1, 5},
		{"just outside the tolerance (ratio 1.12)", 5, 28, 5, 0.1, 6},
		{"within the tolerance downwards (ratio 0.92)", 5, 23, 5, 0.1, 5},
		{"zero tolerance moves on any difference", 10, 11, 1, 0, 11},
		{"zero metric asks for min", 3, 0, 5, 0.1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := DefaultBehavior()
			b.Tolerance = tc.tolerance
			b.Down.Window = 0
			h := HPA{Behavior: b, Min: 1, Max: 100}
			if got := h.Sync(0, tc.current, tc.total, tc.target); got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// Default scale-up: the larger of +4 pods and +100 % per 15 s period.
func TestHPAScaleUpLimit(t *testing.T) {
	for _, tc := range []struct{ current, want int32 }{{1, 5}, {2, 6}, {4, 8}, {10, 20}} {
		h := HPA{Behavior: DefaultBehavior(), Min: 1, Max: 100}
		if got := h.Sync(0, tc.current, 1000, 1); got != tc.want {
			t.Errorf("from %d: got %d, want %d", tc.current, got, tc.want)
		}
	}
	// Two syncs in one period share the limit; the next period starts from the new count.
	h := HPA{Behavior: DefaultBehavior(), Min: 1, Max: 100}
	if got := h.Sync(0, 1, 1000, 1); got != 5 {
		t.Fatalf("first sync: %d", got)
	}
	if got := h.Sync(10*time.Second, 5, 1000, 1); got != 5 {
		t.Fatalf("same period: got %d, want 5 (limit is 1+4 from the period's start)", got)
	}
	if got := h.Sync(15*time.Second, 5, 1000, 1); got != 10 {
		t.Fatalf("next period: got %d, want 10", got)
	}
	if got := h.Sync(30*time.Second, 10, 1000, 1); got != 20 {
		t.Fatalf("then: got %d, want 20", got)
	}
	// Max bounds it.
	h = HPA{Behavior: DefaultBehavior(), Min: 1, Max: 8}
	if got := h.Sync(0, 6, 1000, 1); got != 8 {
		t.Fatalf("max: got %d, want 8", got)
	}
}

// The scale-down stabilization window keeps the highest recommendation of the last 300 s.
func TestHPAStabilizationKeepsTheMax(t *testing.T) {
	h := HPA{Behavior: DefaultBehavior(), Min: 1, Max: 10}
	cur := h.Sync(0, 4, 40, 5) // 8
	if cur != 8 {
		t.Fatalf("scale-up is immediate: got %d", cur)
	}
	for at := 15 * time.Second; at <= 300*time.Second; at += 15 * time.Second {
		if got := h.Sync(at, cur, 10, 5); got != 8 {
			t.Fatalf("at %s inside the window: got %d, want 8", at, got)
		}
	}
	if got := h.Sync(315*time.Second, cur, 10, 5); got != 2 {
		t.Fatalf("after the window: got %d, want 2 (100%% per period allows it at once)", got)
	}
}

// The operator's behavior: no window, no tolerance, the scaler's number goes through (scale-down at once,
// scale-up rate-limited).
func TestHPAOperatorBehavior(t *testing.T) {
	want := Behavior{Up: Rules{Percent: 100, Pods: 4, Period: 15 * time.Second}, Down: Rules{Percent: 100, Period: 15 * time.Second}}
	if got := OperatorBehavior(); got != want {
		t.Fatalf("OperatorBehavior() = %+v, want %+v (read from contract.HPABehavior)", got, want)
	}
	h := HPA{Behavior: OperatorBehavior(), Min: 1, Max: 8}
	if got := h.Sync(0, 6, 2, 1); got != 2 {
		t.Fatalf("scale-down: got %d, want 2", got)
	}
	if got := h.Sync(15*time.Second, 2, 3, 1); got != 3 {
		t.Fatalf("10%% tolerance would swallow 2 -> 3: got %d", got)
	}
	if got := h.Sync(30*time.Second, 1, 8, 1); got != 5 {
		t.Fatalf("scale-up limit: got %d, want 5", got)
	}
}
