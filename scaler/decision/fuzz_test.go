package decision

import (
	"math"
	"strings"
	"testing"
	"time"
)

// fuzzInput reads small numbers from the fuzzer's bytes; once they run out it reads zeros, so every input
// is a valid sequence of snapshots.
type fuzzInput struct{ b []byte }

func (in *fuzzInput) next() byte {
	if len(in.b) == 0 {
		return 0
	}
	c := in.b[0]
	in.b = in.b[1:]
	return c
}

// count is a request count as a pod reports it: mostly small integers, sometimes fractions (a mean over
// engines), large values, or what only a broken exporter reports (1e12, NaN, a negative count).
func (in *fuzzInput) count() float64 {
	c := in.next()
	switch c >> 6 {
	case 0, 1:
		return float64(c & 63)
	case 2:
		return float64(c&63) / 4
	}
	switch c & 63 {
	case 63:
		return 1e12
	case 62:
		return math.NaN()
	case 61:
		return -1
	}
	return float64(c&63) * 1000
}

// implausible says whether a pod's numbers can only come from a broken exporter: Decide treats such a pod
// as missing.
func implausible(p Pod) bool {
	bad := func(x float64) bool { return !(x >= 0 && x <= 1e6) }
	return bad(p.Waiting) || bad(p.Running) || p.HasDecodeTPS && !(p.DecodeTPS >= 0 && !math.IsInf(p.DecodeTPS, 1))
}

func (in *fuzzInput) policy() Policy {
	p := Policy{
		MinReplicas:     1 + int32(in.next()%4),
		TargetQueue:     float64(1+in.next()%16) / 2, // 0.5 .. 8
		TargetDecodeTPS: float64(in.next()%4) * 150,  // 0 (no floor) .. 450
		ScaleDownWindow: time.Duration(in.next()%4) * 30 * time.Second,
	}
	p.MaxReplicas = p.MinReplicas + int32(in.next()%12)
	return p
}

// FuzzDecide drives one Autoscaler through a sequence of snapshots decoded from the input (policy edits,
// pods appearing and vanishing, missing data, numbers only a broken exporter reports, a current size the HPA
// set or a person edited) and checks what must hold whatever the signals: the result is within
// [MinReplicas, MaxReplicas], also right after an edit lowered them; missing or impossible data, or no ready
// pod, never yields less than the current size (within bounds); nothing scales below the current size before
// one full window of data; and every decision has a rule and a reason.
func FuzzDecide(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 9, 2, 3, 7, 1, 1, 1, 40, 60, 5, 5})
	f.Add([]byte{1, 4, 0, 1, 10, 3, 2, 0, 200, 10, 130, 20, 255, 255, 3, 0, 0, 0})
	f.Add([]byte("a queue builds, pods start, data goes missing, the queue drains and the window passes"))
	f.Add([]byte{3, 15, 3, 3, 11, 8, 8, 2, 63, 63, 63, 63, 63, 63, 63, 63, 63, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{b: data}
		p := in.policy()
		a := New(p)
		now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
		var firstData time.Time
		current := p.MinReplicas
		for step := 0; step < 48 && (step == 0 || len(in.b) > 0); step++ {
			op := in.next()
			if op&0x80 != 0 { // an SRE edits the policy: it applies at once, the window is kept
				p = in.policy()
				a.SetPolicy(p)
			}
			if op&0x40 != 0 { // the size was set by someone else (a person, a stale HPA), even out of bounds
				current = int32(in.next() % 20)
			}
			ready := int(in.next() % 10)
			s := Snapshot{Now: now, Current: current, Ready: ready, Starting: int(in.next() % 4)}
			bad := false
			for range ready {
				flags := in.next()
				if flags&0x7 == 0 {
					s.Missing++
					continue
				}
				pod := Pod{Waiting: in.count(), Running: in.count(),
					DecodeTPS: in.count() * 10, HasDecodeTPS: flags&0x8 == 0, KVCacheUsage: float64(flags>>4) / 15}
				bad = bad || implausible(pod)
				s.Pods = append(s.Pods, pod)
			}
			d := a.Decide(s)
			if d.Desired < p.MinReplicas || d.Desired > p.MaxReplicas {
				t.Fatalf("step %d: desired %d outside [%d, %d]: %+v\nsnapshot %+v", step, d.Desired, p.MinReplicas, p.MaxReplicas, d, s)
			}
			inBounds := min(max(current, p.MinReplicas), p.MaxReplicas)
			if (s.Missing > 0 || ready == 0 || bad) && d.Desired < inBounds {
				t.Fatalf("step %d: scaled down from %d to %d on missing or impossible data: %s\nsnapshot %+v", step, current, d.Desired, d.Reason, s)
			}
			if firstData.IsZero() && ready > 0 && d.Rule != RuleMissingData && d.Rule != RuleNoReadyPod {
				firstData = now
			}
			if d.Desired < inBounds && (firstData.IsZero() || now.Sub(firstData) < p.ScaleDownWindow) {
				t.Fatalf("step %d: scaled down from %d to %d before one full window (%s) of data: %s", step, current, d.Desired, p.ScaleDownWindow, d.Reason)
			}
			if d.Rule == "" || strings.TrimSpace(d.Reason) == "" {
				t.Fatalf("step %d: no rule or reason: %+v", step, d)
			}
			for _, v := range []float64{d.WaitingPerPod, d.RunningPerPod, d.DecodeTPSPerPod, d.KVCacheUsage, d.Batch} {
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					t.Fatalf("step %d: signal %v in %+v", step, v, d)
				}
			}
			if in.next()&1 == 0 { // the HPA follows the scaler
				current = d.Desired
			}
			now = now.Add(time.Duration(1+in.next()%40) * time.Second)
		}
	})
}

// A pod that reports an absurd running count (a broken exporter, a wrapped counter) must not read as
// "demand fits in fewer replicas": it is missing data, and the service holds. (Found by this fault matrix:
// the int32 conversion of ceil((waiting+running)/(batch+target)) used to wrap negative above 2^31 and drop
// the service to minReplicas; decision.go now treats such a pod as missing and saturates the conversion.)
func TestHugeRunningCountNeverScalesDown(t *testing.T) {
	p := Policy{MinReplicas: 1, MaxReplicas: 8, TargetQueue: 1}
	a := New(p)
	a.started = time.Date(2026, 11, 24, 11, 0, 0, 0, time.UTC) // past the warm-up
	d := a.Decide(Snapshot{Now: a.started.Add(time.Hour), Current: 6, Ready: 2,
		Pods: []Pod{{Waiting: 1, Running: 1}, {Running: 1e12}}})
	if d.Recommendation < 0 || d.Desired < 6 {
		t.Fatalf("a running count of 1e12 gives recommendation %d and desired %d (%s: %s)", d.Recommendation, d.Desired, d.Rule, d.Reason)
	}
}

// An SRE lowers maxReplicas while the window remembers a higher recommendation: the next decision is
// within the new bounds: an edit takes effect at the next decision, and the window's peak, recorded under the
// old bound, is clamped to the new one.
func TestLoweredMaxAppliesAtOnce(t *testing.T) {
	p := Policy{MinReplicas: 1, MaxReplicas: 8, TargetQueue: 1, ScaleDownWindow: time.Minute}
	a := New(p)
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	if d := a.Decide(Snapshot{Now: now, Current: 8, Ready: 8, Pods: pods(8, Pod{Waiting: 20, Running: 4})}); d.Desired != 8 {
		t.Fatalf("setup: desired %d (%s)", d.Desired, d.Reason)
	}
	p.MaxReplicas = 2
	a.SetPolicy(p)
	d := a.Decide(Snapshot{Now: now.Add(5 * time.Second), Current: 8, Ready: 8, Pods: pods(8, Pod{Waiting: 20, Running: 4})})
	if d.Desired > p.MaxReplicas {
		t.Fatalf("maxReplicas lowered to 2, desired %d (%s: %s)", d.Desired, d.Rule, d.Reason)
	}
}
