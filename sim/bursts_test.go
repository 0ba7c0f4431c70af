package sim

import (
	"math"
	"testing"
	"time"
)

// evenly is n requests per second, evenly spaced, over [from, to).
func evenly(from, to time.Duration, perSec int) []Request {
	var out []Request
	for t := from; t < to; t += time.Second / time.Duration(perSec) {
		out = append(out, Request{At: t, PromptTokens: 100, OutputTokens: 10})
	}
	return out
}

// A hand-built trace: 2 requests/s, a 4x step for two minutes at 20:00, 2/s again, five minutes of silence
// from 40:00, then 2/s. The detector finds the step as a 4x burst and the return after silence as an 8x
// one; each is the first of its size.
func TestDetectBursts(t *testing.T) {
	var reqs []Request
	reqs = append(reqs, evenly(0, 20*time.Minute, 2)...)
	reqs = append(reqs, evenly(20*time.Minute, 22*time.Minute, 8)...)
	reqs = append(reqs, evenly(22*time.Minute, 40*time.Minute, 2)...)
	reqs = append(reqs, evenly(45*time.Minute, 60*time.Minute, 2)...)
	got := DetectBursts(reqs)
	if len(got) != 2 {
		t.Fatalf("found %d bursts, want 2: %+v", len(got), got)
	}
	step, resume := got[0], got[1]
	// A window is hot once it holds a few seconds of the step (1 + 3·f ≥ 1.6 for a share f of it), so the
	// burst's windows start up to a minute before the step and end up to a minute after it.
	if step.Start < 19*time.Minute || step.Start > 20*time.Minute || step.End < 22*time.Minute || step.End > 23*time.Minute {
		t.Errorf("step burst %v-%v, want about 20:00-22:00", step.Start, step.End)
	}
	if step.Size != 4 || math.Abs(step.Ratio-4) > 0.01 || !step.First {
		t.Errorf("step burst: %+v, want the first 4x, ratio 4", step)
	}
	if resume.Start < 44*time.Minute || resume.Start > 45*time.Minute || resume.Size != 8 || !resume.First {
		t.Errorf("return after silence: %+v, want the first 8x from about 45:00", resume)
	}
	// The silence's baseline is frozen at zero: the burst lasts MaxHold, then the level is the new normal.
	if d := resume.End - resume.Start; d > DefaultBurstRule.MaxHold+DefaultBurstRule.Step {
		t.Errorf("return after silence lasts %v, more than MaxHold", d)
	}
}

// A steady trace and a slow wave (2x over 30 minutes) have no burst; a second step of the same size is not
// the first.
func TestDetectBurstsNone(t *testing.T) {
	if got := DetectBursts(evenly(0, time.Hour, 3)); len(got) != 0 {
		t.Errorf("steady: %+v", got)
	}
	var wave []Request
	for t := time.Duration(0); t < 2*time.Hour; {
		rate := 3 - math.Cos(2*math.Pi*t.Minutes()/30) // 2 to 4 requests/s
		t += time.Duration(float64(time.Second) / rate)
		wave = append(wave, Request{At: t, PromptTokens: 1, OutputTokens: 1})
	}
	if got := DetectBursts(wave); len(got) != 0 {
		t.Errorf("slow wave: %+v", got)
	}
	var reqs []Request
	reqs = append(reqs, evenly(0, 20*time.Minute, 2)...)
	reqs = append(reqs, evenly(20*time.Minute, 22*time.Minute, 8)...)
	reqs = append(reqs, evenly(22*time.Minute, 40*time.Minute, 2)...)
	reqs = append(reqs, evenly(40*time.Minute, 41*time.Minute, 8)...)
	reqs = append(reqs, evenly(41*time.Minute, 60*time.Minute, 2)...)
	got := DetectBursts(reqs)
	if len(got) != 2 || !got[0].First || got[1].First || got[1].Size != 4 {
		t.Errorf("two 4x steps: %+v", got)
	}
}

// The burst-aware scores by hand: ten requests a second apart, a burst over [3 s, 5 s) and a startup of
// 2 s, so the burst's span is requests 3 to 6.
func TestBurstScores(t *testing.T) {
	reqs := evenly(0, 10*time.Second, 1)
	met := []bool{true, true, true, false, false, true, false, true, true, false}
	bursts := []Burst{{Start: 3 * time.Second, End: 5 * time.Second, Size: 4, First: true}}
	scores := ScoreBursts(reqs, bursts, 2*time.Second, []Result{{Policy: "p", Met: met}})
	if len(scores) != 1 || scores[0].Requests != 4 || scores[0].Attainment["p"] != 0.25 {
		t.Errorf("burst score %+v, want 4 requests, 1 of them met", scores)
	}
	// Outside: requests 0-2 and 7-9, five of six met.
	if a, n := OutsideFirstBursts(reqs, bursts, 2*time.Second, met); n != 6 || a != 5.0/6 {
		t.Errorf("outside the first burst: %v of %d, want 5/6 of 6", a, n)
	}
	// A burst that is not the first of its size is not excluded.
	bursts[0].First = false
	if a, n := OutsideFirstBursts(reqs, bursts, 2*time.Second, met); n != 10 || a != 0.6 {
		t.Errorf("no first burst: %v of %d, want 0.6 of 10", a, n)
	}
	for ratio, size := range map[float64]int{1.6: 2, 2.8: 2, 2.9: 4, 5.6: 4, 5.7: 8, 1e6: 8} {
		if got := BurstSize(ratio); got != size {
			t.Errorf("BurstSize(%v) = %d, want %d", ratio, got, size)
		}
	}
}
