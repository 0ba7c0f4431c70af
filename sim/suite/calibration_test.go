package suite

import (
	"testing"
	"time"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/sim"
)

// calPod is a pod whose numbers are easy to follow: it prefills 10,000 tokens/s alone, a step costs 20 ms
// plus 1 ms per sequence and holds 2,000 tokens, the cache 100,000 tokens.
var calPod = decision.Capacity{PrefillTPS: 10_000, StepBase: 20 * time.Millisecond, StepPerSeq: time.Millisecond,
	StepTokens: 2_000, MaxSeqs: 256, KVTokens: 100_000}

// calBudget is the default objective, 2 s for 99 %, with the article's queue target.
var calBudget = decision.Budget{TTFT: 2 * time.Second, Attainment: 0.99, QueueDepth: 5}

// perSecond is a request a second for minutes, 10 output tokens each and prompt(minute) prompt tokens, and
// a run that served them all in time.
func perSecond(minutes int, prompt func(minute int) int) ([]sim.Request, []bool) {
	var reqs []sim.Request
	for s := range minutes * 60 {
		reqs = append(reqs, sim.Request{At: time.Duration(s) * time.Second, PromptTokens: prompt(s / 60), OutputTokens: 10})
	}
	met := make([]bool, len(reqs))
	for i := range met {
		met[i] = true
	}
	return reqs, met
}

// short is 100-token prompts, whatever the minute.
func short(int) int { return 100 }

// Ten minutes of one request a second, 100-token prompts: one pod is far from late (the lowest bin), so
// every minute counts once three comfortable minutes precede it, with the late requests its run had; other
// policies' runs are not fixed counts and do not count.
func TestCalibrationBinsComfortableMinutes(t *testing.T) {
	reqs, met := perSecond(10, short)
	for i := 360; i < 365; i++ {
		met[i] = false // five late requests in minute 6
	}
	results := []sim.Result{{Policy: sim.Static(1), Met: met}, {Policy: sim.LLMD, Met: make([]bool, len(reqs))}}
	cal := calibrate(reqs, results, nil, 0, calPod, calBudget)
	low := cal[0]
	if low.Decade != calibrationLow || low.Requests != 7*60 || low.Late != 5 || !(low.Expected < 1e-5*7*60) {
		t.Fatalf("lowest bin %+v, want minutes 3 to 9 (420 requests, 5 late, expected under 1e-5 each)", low)
	}
	for _, b := range cal[1:] {
		if b.Requests != 0 {
			t.Fatalf("bin %+v: only the lowest should hold minutes", b)
		}
	}
}

// A count the model calls hopeless (the demand is past its prefill rate) lands in the top bin, and the
// minutes after it do not count until three comfortable ones have passed.
func TestCalibrationSkipsMinutesAfterOverload(t *testing.T) {
	reqs, met := perSecond(8, func(m int) int {
		if m == 3 {
			return 20_000 // 20,000 tokens a second: twice what the pod prefills
		}
		return 100
	})
	cal := calibrate(reqs, []sim.Result{{Policy: sim.Static(1), Met: met}}, nil, 0, calPod, calBudget)
	var counted int
	for _, b := range cal {
		counted += b.Requests
	}
	// Minute 3 (after three comfortable ones) counts, in the top bin; minutes 4 to 6 follow the overload;
	// minute 7 counts again.
	if top := cal[len(cal)-1]; top.Requests != 60 || counted != 120 {
		t.Fatalf("top bin %+v, %d requests counted; want minute 3 on top and minute 7 besides (120)", top, counted)
	}
}

// Minutes that touch a burst, or the startup delay after it, do not count.
func TestCalibrationSkipsBursts(t *testing.T) {
	reqs, met := perSecond(10, short)
	burst := []sim.Burst{{Start: 5*time.Minute + 30*time.Second, End: 6 * time.Minute}}
	cal := calibrate(reqs, []sim.Result{{Policy: sim.Static(1), Met: met}}, burst, 90*time.Second, calPod, calBudget)
	// Minutes 3 to 9 are comfortable; 5, 6 and 7 touch the burst or the 90 s after it.
	if low := cal[0]; low.Requests != 4*60 {
		t.Fatalf("lowest bin %+v, want minutes 3, 4, 8 and 9 (240 requests)", low)
	}
}

// A minute that starts with more requests waiting than pods ready carries a backlog and does not count.
func TestCalibrationSkipsBacklog(t *testing.T) {
	reqs, met := perSecond(10, short)
	var series []sim.Point
	for q := range 40 { // every 15 s; 30 waiting on the one pod at the start of minute 6 only
		p := sim.Point{T: time.Duration(q) * 15 * time.Second, Ready: 1}
		if p.T == 6*time.Minute {
			p.Waiting = 30
		}
		series = append(series, p)
	}
	cal := calibrate(reqs, []sim.Result{{Policy: sim.Static(1), Met: met, Series: series}}, nil, 0, calPod, calBudget)
	if low := cal[0]; low.Requests != 6*60 {
		t.Fatalf("lowest bin %+v, want minutes 3 to 9 but 6 (360 requests)", low)
	}
}
