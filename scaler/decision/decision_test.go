package decision

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// article is the article's policy: queue 5, 400 tokens/s, 300 s window, 1..8 replicas.
func article() Policy {
	return Policy{MinReplicas: 1, MaxReplicas: 8, TargetQueue: 5, TargetDecodeTPS: 400, ScaleDownWindow: 300 * time.Second}
}

func pods(n int, p Pod) []Pod {
	out := make([]Pod, n)
	for i := range out {
		out[i] = p
	}
	return out
}

// busy is a pod with a decode rate; its KV cache holds its running requests at 2 % of the cache each
// (~670 tokens of an A10G's 33,600), so an idle pod's cache is empty, as vLLM reports it.
func busy(waiting, running, tps float64) Pod {
	return Pod{Waiting: waiting, Running: running, DecodeTPS: tps, HasDecodeTPS: true, KVCacheUsage: min(running/50, 1)}
}

// Each rule on its own, with no window in the way.
func TestRules(t *testing.T) {
	noWindow := article()
	noWindow.ScaleDownWindow = 0
	cases := []struct {
		name string
		p    Policy
		s    Snapshot
		want int32
		rule Rule
	}{
		{"queue above target scales up by running+waiting over batch+target, not waiting/target",
			noWindow, Snapshot{Current: 1, Ready: 1, Pods: []Pod{busy(20, 10, 500)}}, 2, RuleScaleUpQueue},
		{"a deep queue on saturated pods",
			noWindow, Snapshot{Current: 2, Ready: 2, Pods: pods(2, busy(40, 16, 700))}, 6, RuleScaleUpQueue},
		{"starting pods absorb the queue",
			noWindow, Snapshot{Current: 2, Ready: 1, Starting: 1, Pods: []Pod{busy(20, 10, 500)}}, 2, RuleStartingPodsAbsorbDemand},
		{"queue above target on average, piled on one pod, never scales down",
			noWindow, Snapshot{Current: 2, Ready: 2, Pods: []Pod{busy(12, 10, 500), busy(0, 2, 100)}}, 2, RuleQueueAboveTarget},
		{"same demand on uniform pods scales up",
			noWindow, Snapshot{Current: 3, Ready: 3, Pods: pods(3, busy(6, 10, 100))}, 4, RuleScaleUpQueue},
		{"idle pods under the floor scale down to what the load needs",
			noWindow, Snapshot{Current: 4, Ready: 4, Pods: pods(4, busy(0, 2, 100))}, 2, RuleScaleDown},
		{"throughput at the floor keeps the pods",
			noWindow, Snapshot{Current: 4, Ready: 4, Pods: pods(4, busy(0, 2, 400))}, 4, RuleThroughputAboveFloor},
		{"no throughput floor: the queue alone decides",
			Policy{MinReplicas: 1, MaxReplicas: 8, TargetQueue: 5}, Snapshot{Current: 4, Ready: 4, Pods: pods(4, busy(0, 1, 0))}, 1, RuleScaleDown},
		{"steady load stays",
			noWindow, Snapshot{Current: 2, Ready: 2, Pods: pods(2, busy(1, 10, 390))}, 2, RuleSteady},
		{"a pod without data holds the size",
			noWindow, Snapshot{Current: 4, Ready: 4, Missing: 1, Pods: pods(3, busy(0, 0, 0))}, 4, RuleMissingData},
		{"a pod without data does not stop a scale-up",
			noWindow, Snapshot{Current: 2, Ready: 2, Missing: 1, Pods: []Pod{busy(30, 10, 500)}}, 3, RuleScaleUpQueue},
		{"no ready pod holds the size",
			noWindow, Snapshot{Current: 3, Ready: 0, Starting: 3}, 3, RuleNoReadyPod},
		{"no ready pod, no replica yet: holds minReplicas",
			noWindow, Snapshot{Current: 0, Ready: 0}, noWindow.MinReplicas, RuleNoReadyPod},
		{"decode rate not yet known holds the size",
			noWindow, Snapshot{Current: 4, Ready: 4, Pods: pods(4, Pod{Running: 1})}, 4, RuleMissingData},
		{"clamped at max",
			noWindow, Snapshot{Current: 8, Ready: 8, Pods: pods(8, busy(100, 10, 900))}, 8, RuleAtMaxReplicas},
		{"clamped at min",
			noWindow, Snapshot{Current: 2, Ready: 2, Pods: pods(2, busy(0, 0, 0))}, 1, RuleAtMinReplicas},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.Now = t0
			a := New(tc.p)
			a.started = t0.Add(-time.Hour) // past the warm-up
			d := a.Decide(tc.s)
			if d.Desired != tc.want || d.Rule != tc.rule {
				t.Fatalf("got %d (%s: %s), want %d (%s)", d.Desired, d.Rule, d.Reason, tc.want, tc.rule)
			}
			if d.Reason == "" {
				t.Fatal("no reason")
			}
			if hold := fmt.Sprintf("holding %d replicas", d.Desired); (d.Rule == RuleNoReadyPod || d.Rule == RuleMissingData) && !strings.Contains(d.Reason, hold) {
				t.Errorf("reason %q does not say %q", d.Reason, hold)
			}
		})
	}
}

// The window keeps the highest recommendation; scale-up is immediate; the window then releases.
func TestScaleDownWindow(t *testing.T) {
	a := New(article())
	a.started = t0.Add(-time.Hour)
	steps := []struct {
		at      time.Duration
		current int32
		pod     Pod
		n       int
		want    int32
		rule    Rule
	}{
		{0, 1, busy(30, 10, 600), 1, 3, RuleScaleUpQueue},
		{15 * time.Second, 3, busy(0, 1, 50), 3, 3, RuleScaleDownStabilizing},
		{299 * time.Second, 3, busy(0, 1, 50), 3, 3, RuleScaleDownStabilizing},
		{301 * time.Second, 3, busy(0, 1, 50), 3, 1, RuleScaleDown},
	}
	for _, st := range steps {
		d := a.Decide(Snapshot{Now: t0.Add(st.at), Current: st.current, Ready: st.n, Pods: pods(st.n, st.pod)})
		if d.Desired != st.want || d.Rule != st.rule {
			t.Fatalf("at %s: got %d (%s: %s), want %d (%s)", st.at, d.Desired, d.Rule, d.Reason, st.want, st.rule)
		}
	}
}

// After a restart nothing scales down before one full window of data, however idle the pods look.
func TestNoScaleDownBeforeOneWindowAfterRestart(t *testing.T) {
	a := New(article())
	idle := pods(4, busy(0, 0, 0))
	for at := time.Duration(0); at < 300*time.Second; at += 15 * time.Second {
		d := a.Decide(Snapshot{Now: t0.Add(at), Current: 4, Ready: 4, Pods: idle})
		if d.Desired != 4 || d.Rule != RuleWarmingUp {
			t.Fatalf("at %s after restart: %d (%s: %s)", at, d.Desired, d.Rule, d.Reason)
		}
	}
	if d := a.Decide(Snapshot{Now: t0.Add(301 * time.Second), Current: 4, Ready: 4, Pods: idle}); d.Desired != 1 {
		t.Fatalf("after a full window: %d (%s)", d.Desired, d.Reason)
	}
	// Scale-up is never held by the warm-up.
	b := New(article())
	if d := b.Decide(Snapshot{Now: t0, Current: 1, Ready: 1, Pods: []Pod{busy(30, 10, 600)}}); d.Desired != 3 {
		t.Fatalf("scale-up right after restart: %d (%s)", d.Desired, d.Reason)
	}
}

// Missing data in the window counts as a hold: the window restarts from it.
func TestMissingDataInTheWindowHolds(t *testing.T) {
	a := New(article())
	a.started = t0.Add(-time.Hour)
	a.Decide(Snapshot{Now: t0, Current: 4, Ready: 4, Missing: 4})
	d := a.Decide(Snapshot{Now: t0.Add(200 * time.Second), Current: 4, Ready: 4, Pods: pods(4, busy(0, 0, 0))})
	if d.Desired != 4 {
		t.Fatalf("scaled down %s after missing data: %d (%s)", 200*time.Second, d.Desired, d.Reason)
	}
}

// A pod that vanishes mid-window (Ready drops below Current) does not shortcut the window.
func TestPodVanishingMidWindow(t *testing.T) {
	a := New(article())
	a.started = t0.Add(-time.Hour)
	a.Decide(Snapshot{Now: t0, Current: 3, Ready: 3, Pods: pods(3, busy(2, 10, 450))})
	d := a.Decide(Snapshot{Now: t0.Add(30 * time.Second), Current: 3, Ready: 2, Pods: pods(2, busy(0, 3, 100))})
	if d.Desired != 3 {
		t.Fatalf("a vanished pod shrank the service inside the window: %d (%s)", d.Desired, d.Reason)
	}
}

// A queue that flips between deep and empty every sync must not flap the replica count.
func TestFlappingInputDoesNotFlapOutput(t *testing.T) {
	a := New(article())
	a.started = t0.Add(-time.Hour)
	current, changes, last := int32(2), 0, 0
	for i := 0; i < 40; i++ { // 10 minutes of 15 s syncs
		pod := busy(0, 4, 150)
		if i%2 == 0 {
			pod = busy(12, 10, 500)
		}
		d := a.Decide(Snapshot{Now: t0.Add(time.Duration(i) * 15 * time.Second), Current: current, Ready: int(current), Pods: pods(int(current), pod)})
		dir := 0
		if d.Desired > current {
			dir = 1
		} else if d.Desired < current {
			dir = -1
		}
		if dir != 0 && dir != last {
			changes++
			last = dir
		}
		current = d.Desired
	}
	if changes > 1 {
		t.Fatalf("output changed direction %d times on flapping input", changes)
	}
}

// An edited target takes effect at the next decision.
func TestPolicyEditTakesEffectAtOnce(t *testing.T) {
	a := New(article())
	s := Snapshot{Now: t0, Current: 2, Ready: 2, Pods: pods(2, busy(4, 10, 500))}
	if d := a.Decide(s); d.Desired != 2 {
		t.Fatalf("before edit: %d (%s)", d.Desired, d.Reason)
	}
	p := article()
	p.TargetQueue = 2
	a.SetPolicy(p)
	s.Now = s.Now.Add(15 * time.Second)
	if d := a.Decide(s); d.Desired != 3 || d.Rule != RuleScaleUpQueue {
		t.Fatalf("after edit: %d (%s)", d.Desired, d.Reason)
	}
}

func TestValidate(t *testing.T) {
	bad := []Policy{
		{MinReplicas: 0, MaxReplicas: 1, TargetQueue: 1},
		{MinReplicas: 2, MaxReplicas: 1, TargetQueue: 1},
		{MinReplicas: 1, MaxReplicas: 1, TargetQueue: 0},
		{MinReplicas: 1, MaxReplicas: 1, TargetQueue: 1, TargetDecodeTPS: -1},
	}
	for _, p := range bad {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if err := article().Validate(); err != nil {
		t.Fatal(err)
	}
}

// Over random snapshots: the result stays in [min, max], never drops below the current size on missing
// data, and always comes with a reason.
func TestRandomSnapshotsStayInBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		p := Policy{MinReplicas: 1 + r.Int32N(3), TargetQueue: float64(1 + r.IntN(10)), TargetDecodeTPS: float64(r.IntN(3) * 200),
			ScaleDownWindow: time.Duration(r.IntN(3)) * time.Minute}
		p.MaxReplicas = p.MinReplicas + r.Int32N(10)
		a := New(p)
		now := t0
		current := p.MinReplicas
		for j := 0; j < 20; j++ {
			ready := r.IntN(int(current) + 1)
			s := Snapshot{Now: now, Current: current, Ready: ready, Starting: int(current) - ready}
			for k := 0; k < ready; k++ {
				if r.IntN(10) == 0 {
					s.Missing++
					continue
				}
				s.Pods = append(s.Pods, Pod{Waiting: float64(r.IntN(50)), Running: float64(r.IntN(64)),
					DecodeTPS: r.Float64() * 2000, HasDecodeTPS: r.IntN(8) != 0, KVCacheUsage: r.Float64()})
			}
			d := a.Decide(s)
			if d.Desired < p.MinReplicas || d.Desired > p.MaxReplicas {
				t.Fatalf("desired %d outside [%d,%d]: %+v", d.Desired, p.MinReplicas, p.MaxReplicas, d)
			}
			if (s.Missing > 0 || ready == 0) && d.Desired < min(current, p.MaxReplicas) {
				t.Fatalf("scaled down from %d to %d on missing data: %s", current, d.Desired, d.Reason)
			}
			if strings.TrimSpace(d.Reason) == "" {
				t.Fatalf("no reason: %+v", d)
			}
			current = d.Desired
			now = now.Add(time.Duration(5+r.IntN(30)) * time.Second)
		}
	}
}
