package suite

import (
	"math"
	"time"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/sim"
	"github.com/llm-d/llm-d/vllmsim"
)

// The capacity model's calibration: what share of requests it predicts late, against what the fixed counts
// realize. Every fixed count's run is cut into minutes; for each minute the model is given the minute's true
// demand at that count, as the scaler would measure it without error: the trace's arrivals and mean tokens,
// the context a running sequence holds weighted by how long it decodes (what the pods' KV usage over their
// running requests shows), and the prompt lengths' shape in vLLM's buckets over the minute and the
// calibrationShape before it. Its predicted late share is set beside the share of the minute's requests the
// run served late. Only minutes the model calls comfortable for the calibrationQuiet before them (predicted
// late under calibrationQuietLate), and that start with no more requests waiting than pods ready, count: a
// backlog carried from an overloaded minute is no error of the model's tail. Nor do minutes that touch a
// burst or the startup delay after it: the model takes arrivals to be Poisson at the minute's mean rate, and
// a burst inside the minute is not.
const (
	calibrationQuiet     = 3 * time.Minute
	calibrationQuietLate = 1e-2
	calibrationShape     = 4 * time.Minute
	// The bins: the lowest holds every predicted share under 10^(calibrationLow+1), then one per decade,
	// the highest every share from 10^calibrationHigh up.
	calibrationLow, calibrationHigh = -6, -1
)

// CalibrationBin is the minutes whose predicted late share falls in one decade, [10^Decade, 10^(Decade+1));
// the lowest bin holds everything below, the highest everything above.
type CalibrationBin struct {
	Decade   int     `json:"decade"`
	Requests int     `json:"requests"`
	Late     int     `json:"late"`
	Expected float64 `json:"expected_late"` // the predicted late shares, summed over the requests
}

// Calibration is the bins in order of decade.
type Calibration []CalibrationBin

// calibrate bins the fixed counts' minutes of one case.
func calibrate(reqs []sim.Request, results []sim.Result, bursts []sim.Burst, startup time.Duration, c decision.Capacity, b decision.Budget) Calibration {
	inBurst := func(minute time.Duration) bool {
		from, to := minute*time.Minute, (minute+1)*time.Minute
		for _, x := range bursts {
			if from < x.End+startup && x.Start < to {
				return true
			}
		}
		return false
	}
	cal := newCalibration()
	quiet := int(calibrationQuiet / time.Minute)
	for _, r := range results {
		n, ok, _ := sim.ParseStatic(r.Policy)
		if !ok || len(r.Met) != len(reqs) {
			continue
		}
		var recent []float64
		var lengths []decision.Histogram // this minute's prompt lengths and those of the calibrationShape before it
		point := 0                       // r.Series[point] is the last point at or before the minute's start
		for start := 0; start < len(reqs); {
			minute := reqs[start].At / time.Minute
			end, prompt, output, held, late := start, 0.0, 0.0, 0.0, 0
			h := promptHistogram()
			for ; end < len(reqs) && reqs[end].At/time.Minute == minute; end++ {
				prompt += float64(reqs[end].PromptTokens)
				h.Counts[vllmsim.PromptBucket(reqs[end].PromptTokens)]++
				output += float64(reqs[end].OutputTokens)
				// A sequence holds its prompt and half its output on average, for as long as it decodes.
				held += float64(reqs[end].OutputTokens) * (float64(reqs[end].PromptTokens) + float64(reqs[end].OutputTokens)/2)
				if !r.Met[end] {
					late++
				}
			}
			lengths = append(lengths, h)
			if len(lengths) > int(calibrationShape/time.Minute)+1 {
				lengths = lengths[1:]
			}
			k := float64(end - start)
			d := decision.Demand{Arrivals: k / 60, PromptPerRequest: prompt / k, DecodePerRequest: output / k,
				ContextPerSeq: held / output, PromptShape: recentShape(lengths)}
			pl := c.At(n, d, b, 0)
			predicted := math.Min(pl.Late, 1)
			if math.IsInf(pl.Batch, 0) || pl.Utilization >= 1 {
				predicted = 1
			}
			comfortable := len(recent) >= quiet
			for _, p := range recent {
				comfortable = comfortable && p < calibrationQuietLate
			}
			for point+1 < len(r.Series) && r.Series[point+1].T <= minute*time.Minute {
				point++
			}
			backlog := len(r.Series) > 0 && r.Series[point].T <= minute*time.Minute && r.Series[point].Waiting > r.Series[point].Ready
			if comfortable && !backlog && !inBurst(minute) {
				cal.add(predicted, end-start, late)
			}
			recent = append(recent, predicted)
			if len(recent) > quiet {
				recent = recent[1:]
			}
			start = end
		}
	}
	return cal
}

// promptHistogram is an empty histogram in vLLM's prompt-length buckets.
func promptHistogram() decision.Histogram {
	return decision.Histogram{Bounds: vllmsim.PromptTokenBounds[:], Counts: make([]float64, len(vllmsim.PromptTokenBounds)+1)}
}

// recentShape is the shape of the histograms' sum.
func recentShape(hs []decision.Histogram) decision.Shape {
	sum := promptHistogram()
	for _, h := range hs {
		for i, c := range h.Counts {
			sum.Counts[i] += c
		}
	}
	return sum.Shape()
}

func newCalibration() Calibration {
	var cal Calibration
	for d := calibrationLow; d <= calibrationHigh; d++ {
		cal = append(cal, CalibrationBin{Decade: d})
	}
	return cal
}

func (cal Calibration) add(predicted float64, requests, late int) {
	d := calibrationLow
	if predicted > 0 {
		d = min(max(int(math.Floor(math.Log10(predicted))), calibrationLow), calibrationHigh)
	}
	b := &cal[d-calibrationLow]
	b.Requests += requests
	b.Late += late
	b.Expected += predicted * float64(requests)
}

// merge adds o's counts to cal's.
func (cal Calibration) merge(o Calibration) {
	for i := range o {
		cal[i].Requests += o[i].Requests
		cal[i].Late += o[i].Late
		cal[i].Expected += o[i].Expected
	}
}
