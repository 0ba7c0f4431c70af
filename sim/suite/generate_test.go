package suite

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/llm-d/llm-d/sim"
)

func a10g() Preset { p, _ := PresetNamed("a10g"); return p }
func h100() Preset { p, _ := PresetNamed("h100"); return p }

func traceNamed(t *testing.T, name string) Trace {
	t.Helper()
	for _, tr := range Traces(1) {
		if tr.Name == name {
			return tr
		}
	}
	t.Fatalf("no trace %q", name)
	return Trace{}
}

// The same seed gives the same requests and bursts; another seed other ones.
func TestGenerateDeterministic(t *testing.T) {
	for _, tr := range append(Short(1), traceNamed(t, "hours-apart")) {
		a, la := Generate(tr, a10g(), 1)
		b, lb := Generate(tr, a10g(), 1)
		if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(la, lb) {
			t.Errorf("%s: two generations from seed 1 differ", tr.Name)
		}
		c, _ := Generate(tr, a10g(), 2)
		if reflect.DeepEqual(a, c) {
			t.Errorf("%s: seeds 1 and 2 give the same requests", tr.Name)
		}
		if !slices.IsSortedFunc(a, func(x, y sim.Request) int { return int(x.At - y.At) }) {
			t.Errorf("%s: requests out of order", tr.Name)
		}
	}
	// The burst schedule depends on the seed and the trace only: both presets burst at the same instants.
	tr := traceNamed(t, "steps-4x")
	if !reflect.DeepEqual(Traces(1)[4].Bursts, tr.Bursts) || reflect.DeepEqual(Traces(2)[4].Bursts, tr.Bursts) {
		t.Error("burst schedule is not a function of the seed")
	}
}

// Arrivals follow the rate curve: in every 10-minute bucket the count is within 5 Poisson standard
// deviations of the integral of Σ Load × ReplicaRate, and the tokens stay within the context.
func TestGenerateRates(t *testing.T) {
	check := func(tr Trace, p Preset) {
		reqs, _ := Generate(tr, p, 1)
		const bucket = 10 * time.Minute
		nb := int((tr.Duration + bucket - 1) / bucket)
		got, want := make([]float64, nb), make([]float64, nb)
		for _, r := range reqs {
			got[r.At/bucket]++
			if r.PromptTokens < 1 || r.OutputTokens < 1 || r.PromptTokens+r.OutputTokens > MaxModelLen {
				t.Fatalf("%s: request %+v outside the context", tr.Name, r)
			}
		}
		for _, c := range tr.Components {
			rate := ReplicaRate(p.Params, c.Mix)
			for s := time.Duration(0); s < tr.Duration; s += rateStep {
				want[s/bucket] += c.Load(s+rateStep/2) * rate * rateStep.Seconds()
			}
		}
		for i := range got {
			if math.Abs(got[i]-want[i]) > 5*math.Sqrt(want[i])+1 {
				t.Errorf("%s on %s, minutes %d-%d: %.0f arrivals, want %.0f", tr.Name, p.Name, i*10, i*10+10, got[i], want[i])
			}
		}
	}
	for _, tr := range Traces(1) {
		check(tr, a10g())
	}
	check(traceNamed(t, "mix-chat-code"), h100())
}

// A step burst multiplies the request rate by its size: the rate inside the steps of steps-4x is four
// times the rate outside them.
func TestStepSize(t *testing.T) {
	tr := traceNamed(t, "steps-4x")
	reqs, labels := Generate(tr, h100(), 1)
	var in, out float64
	var inDur time.Duration
	for _, l := range labels {
		inDur += l.End - l.Start
		if l.Size != 4 || math.Abs(l.Ratio-4) > 1e-9 {
			t.Errorf("label %+v, want size 4", l)
		}
	}
	for _, r := range reqs {
		if within(tr.Bursts, r.At) {
			in++
		} else {
			out++
		}
	}
	ratio := (in / inDur.Seconds()) / (out / (tr.Duration - inDur).Seconds())
	if math.Abs(ratio-4) > 0.2 {
		t.Errorf("rate inside the steps / outside: %.2f, want 4", ratio)
	}
}

// The token distributions: the Azure tables' medians, the heavy tails within the context, long outputs
// in [1024, 4096]; and ReplicaRate by hand for a constant mix.
func TestTokens(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	median := func(m Mix, prompt bool) (float64, int) {
		var xs []int
		mx := 0
		for range 20000 {
			p, o := m.Sample(rng)
			x := o
			if prompt {
				x = p
			}
			xs = append(xs, x)
			mx = max(mx, p+o)
		}
		slices.Sort(xs)
		return float64(xs[len(xs)/2]), mx
	}
	for _, c := range []struct {
		m      Mix
		prompt bool
		want   float64
	}{{Chat, true, 1020}, {Chat, false, 129}, {Code, true, 1469}, {Code, false, 13},
		{HeavyLognormal, true, 2000}, {HeavyPareto, true, 400 * math.Pow(2, 1/1.3)}, {LongOutput, false, 2560}} {
		got, mx := median(c.m, c.prompt)
		if math.Abs(got-c.want) > 0.05*c.want+1 {
			t.Errorf("%s: median %s %.0f, want %.0f", c.m.Name, map[bool]string{true: "prompt", false: "output"}[c.prompt], got, c.want)
		}
		if mx > MaxModelLen {
			t.Errorf("%s: a request of %d tokens", c.m.Name, mx)
		}
	}
	for range 1000 {
		if _, o := LongOutput.Sample(rng); o < 1024 || o > 4096 {
			t.Fatalf("long output %d", o)
		}
	}
	// 1,000-token prompts and 200-token outputs on an A10G: ctx 1,100, a batch of 33,600/1,100 = 30.5, an
	// iteration of 28 + 30.5 × 0.3 + 30.5 × 1,100 × 0.00022 = 44.56 ms; 1000/6000 + 200 × 44.56/30.5 ms =
	// 0.4584 s per request.
	constant := Mix{Prompt: Dist{Kind: "uniform", A: 1000, B: 1000, Min: 1, Max: MaxModelLen},
		Output: Dist{Kind: "uniform", A: 200, B: 200, Min: 1, Max: MaxModelLen}}
	if got := ReplicaRate(a10g().Params, constant); math.Abs(got-1/0.458404) > 1e-3 {
		t.Errorf("ReplicaRate %.4f, want %.4f", got, 1/0.458404)
	}
}

// The burst detector, which sees only arrivals, finds the generator's bursts: every labelled burst that
// stands out of Poisson noise (its expected count in a minute at least 6 standard deviations above the
// baseline's; at night on the A10G a 2x step of a few requests does not) overlaps a detected one, sizes
// agree for at least 85 % of them, and traces without bursts (steady, slow waves) have none.
func TestDetectorFindsLabels(t *testing.T) {
	labelled, agree, weak := 0, 0, 0
	for _, tr := range Traces(1) {
		presets := []Preset{a10g()}
		if tr.Family == "step bursts" || tr.Family == "mixture" {
			presets = append(presets, h100())
		}
		for _, p := range presets {
			reqs, labels := Generate(tr, p, 1)
			found := sim.DetectBursts(reqs)
			if (tr.Family == "steady" || tr.Family == "slow wave") && len(found) > 0 {
				t.Errorf("%s on %s: bursts %+v in a trace without any", tr.Name, p.Name, found)
			}
			for _, l := range labels {
				n := 0 // arrivals in the baseline span before the burst
				for _, r := range reqs {
					if r.At >= l.Start-sim.DefaultBurstRule.Baseline && r.At < l.Start {
						n++
					}
				}
				lambda := float64(n) * time.Minute.Seconds() / sim.DefaultBurstRule.Baseline.Seconds()
				if l.Ratio*lambda < lambda+6*math.Sqrt(lambda) {
					weak++
					continue
				}
				labelled++
				i := slices.IndexFunc(found, func(b sim.Burst) bool { return b.Start < l.End && l.Start < b.End })
				if i < 0 {
					t.Errorf("%s on %s: labelled burst %+v not found in %+v", tr.Name, p.Name, l, found)
					continue
				}
				if found[i].Size == l.Size {
					agree++
				}
			}
		}
	}
	t.Logf("sizes agree for %d of %d labelled bursts; %d too weak to test", agree, labelled, weak)
	if labelled < 50 || weak > labelled/10 || float64(agree) < 0.85*float64(labelled) {
		t.Errorf("sizes agree for %d of %d labelled bursts (%d too weak to test), want at least 85 %%", agree, labelled, weak)
	}
}
