package suite

import (
	"cmp"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/llm-d/llm-d/sim"
)

// Label is one of the generator's bursts with its size on a preset: the request rate in the middle of the
// burst over the mean rate of the burst detector's baseline span before it (at least one request per span,
// as the detector floors it), and that ratio's bucket.
type Label struct {
	Span
	Ratio float64 `json:"ratio"`
	Size  int     `json:"size"`
}

// rateStep is the resolution of the rate curves: arrivals are a Poisson process whose rate is constant
// within each second.
const rateStep = time.Second

// Generate draws t's requests for preset p: each component's arrivals are a Poisson process with rate
// Load(t) × ReplicaRate(p, its mix), its tokens drawn from its mix; the components are merged in arrival
// order. The same seed, trace and preset give the same requests.
func Generate(t Trace, p Preset, seed uint64) ([]sim.Request, []Label) {
	var reqs []sim.Request
	rates := make([]float64, len(t.Components))
	for i, c := range t.Components {
		rates[i] = ReplicaRate(p.Params, c.Mix)
		h := fnv.New64a()
		h.Write([]byte(t.Name + "/" + p.Name + "/" + strconv.Itoa(i)))
		rng := rand.New(rand.NewPCG(seed, h.Sum64()))
		reqs = append(reqs, poisson(rng, t.Duration, func(at time.Duration) float64 { return c.Load(at) * rates[i] }, c.Mix)...)
	}
	slices.SortStableFunc(reqs, func(a, b sim.Request) int { return cmp.Compare(a.At, b.At) })
	rate := func(at time.Duration) float64 {
		r := 0.0
		for i, c := range t.Components {
			r += c.Load(at) * rates[i]
		}
		return r
	}
	labels := make([]Label, len(t.Bursts))
	base := sim.DefaultBurstRule.Baseline
	for i, b := range t.Bursts {
		before := 0.0 // the mean rate over the detector's baseline span before the burst
		for at := b.Start - base; at < b.Start; at += rateStep {
			before += rate(at+rateStep/2) / float64(base/rateStep)
		}
		ratio := rate((b.Start+b.End)/2) / max(before, 1/base.Seconds()) // floored as the detector floors it
		labels[i] = Label{Span: b, Ratio: ratio, Size: sim.BurstSize(ratio)}
	}
	return reqs, labels
}

// poisson draws arrivals over [0, d) at rate(t) requests/s, constant within each rateStep, by inverting the
// integrated rate: each gap is an exponential draw of unit mean, spent at the rates it crosses.
func poisson(rng *rand.Rand, d time.Duration, rate func(time.Duration) float64, m Mix) []sim.Request {
	var out []sim.Request
	need := rng.ExpFloat64()
	for s := time.Duration(0); s < d; s += rateStep {
		r := rate(s + rateStep/2)
		left := rateStep.Seconds()
		pos := s.Seconds()
		for r > 0 && need <= r*left {
			pos += need / r
			left -= need / r
			prompt, output := m.Sample(rng)
			out = append(out, sim.Request{At: time.Duration(pos * float64(time.Second)), PromptTokens: prompt, OutputTokens: output})
			need = rng.ExpFloat64()
		}
		need -= r * left
	}
	return out
}
