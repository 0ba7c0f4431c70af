package suite

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"
)

// Trace is one generated trace: populations of requests, each with its offered load over time, arriving as
// a Poisson process with that rate.
type Trace struct {
	// Name identifies the trace; Family is its kind.
	Name, Family string
	// Params says how it is built and Why what it tests.
	Params, Why string
	Duration    time.Duration
	Components  []Component
	// Bursts are the generator's own bursts (sizes are measured per preset by Generate); they only serve to
	// test the burst detector, never to score.
	Bursts []Span
}

// Component is one population of requests.
type Component struct {
	Mix Mix
	// Load is the offered load at t in replica-equivalents: Load(t) × ReplicaRate(preset, Mix) requests/s.
	Load func(t time.Duration) float64
}

// Span is an interval of a trace.
type Span struct {
	Start time.Duration `json:"start_ns"`
	End   time.Duration `json:"end_ns"`
}

// The offered loads are in replica-equivalents (see ReplicaRate): what one replica serves at full use. Peaks
// are 4 of them. How many replicas that takes depends on the GPU, and the fixed counts measure it: with
// random routing and a 2 s TTFT objective, 5 H100s or 7 to 8 A10Gs meet the SLO for 99.5 % of a chat trace
// (the A10G's small KV cache and slow prefill need more headroom). That is within the article's maxReplicas
// of 8 with the cheapest adequate fixed count well above minReplicas, so that autoscaling has something to
// gain and something to lose. The level was set from the fixed counts alone (4.4 left several A10G cases
// beyond 8), before any policy ran on the suite, and is the same for every family and both GPUs. Where the
// SLO is out of reach on a GPU whatever the count (prompts above 12,000 tokens cannot be prefilled in 2 s at
// an A10G's 6,000 tokens/s: 12 % of heavy-lognormal's, 1 % of heavy-pareto's), the case says so by its
// frontier.
const peakLoad = 4.0

// Traces is the suite, deterministic from seed (which sets the burst schedules and, through Generate, the
// arrivals and token counts).
func Traces(seed uint64) []Trace {
	return []Trace{
		steady(seed, "steady", 2*time.Hour, 0.8*peakLoad),
		wave(seed, "wave-20m", 3*time.Hour, 20*time.Minute, 2),
		wave(seed, "wave-60m", 4*time.Hour, 60*time.Minute, 3),
		steps(seed, "steps-2x", 3*time.Hour, 2, Span{3 * time.Minute, 5 * time.Minute}, Span{15 * time.Minute, 30 * time.Minute}),
		steps(seed, "steps-4x", 3*time.Hour, 4, Span{time.Minute, 3 * time.Minute}, Span{20 * time.Minute, 40 * time.Minute}),
		steps(seed, "steps-8x", 3*time.Hour, 8, Span{time.Minute, 2 * time.Minute}, Span{25 * time.Minute, 45 * time.Minute}),
		hoursApart(seed, "hours-apart", 6*time.Hour),
		silences(seed, "silences", 3*time.Hour),
		diurnal(seed, "diurnal-3h", 3*time.Hour, 0),
		diurnal(seed, "diurnal-4h-2x", 4*time.Hour, 2),
		heavy(seed, "heavy-lognormal", HeavyLognormal),
		heavySteps(seed, "heavy-pareto", HeavyPareto),
		longOutputs(seed, "long-outputs"),
		mixture(seed, "mix-chat-code", 4*time.Hour, Span{20 * time.Minute, 40 * time.Minute}),
	}
}

// Short is a few short traces for the suite's structural test: a step family and the mixture, 40 minutes
// each.
func Short(seed uint64) []Trace {
	return []Trace{
		steps(seed, "short-steps-4x", 40*time.Minute, 4, Span{time.Minute, 2 * time.Minute}, Span{8 * time.Minute, 10 * time.Minute}),
		mixture(seed, "short-mix", 40*time.Minute, Span{6 * time.Minute, 8 * time.Minute}),
	}
}

// rngFor is the schedule's generator of a trace: a function of the seed and the trace's name only, so that
// both presets see the same bursts at the same instants.
func rngFor(seed uint64, name string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// between draws a duration uniformly in [s.Start, s.End], to the second.
func between(rng *rand.Rand, s Span) time.Duration {
	d := s.Start + time.Duration(rng.Float64()*float64(s.End-s.Start))
	return d.Truncate(time.Second)
}

// quiet is how long every trace starts without a burst: the simulator replays the first 10 minutes as its
// warm-up, and a burst there would give the policies a precedent the trace does not show.
const quiet = 15 * time.Minute

// schedule draws bursts of a duration in dur separated by gaps in gap, the first after quiet plus a gap,
// all ending before until less a gap's minimum.
func schedule(rng *rand.Rand, until time.Duration, dur, gap Span) []Span {
	var out []Span
	t := quiet + between(rng, gap)/2
	for {
		d := between(rng, dur)
		if t+d > until-gap.Start/2 {
			return out
		}
		out = append(out, Span{t, t + d})
		t += d + between(rng, gap)
	}
}

// within says whether t falls in one of spans.
func within(spans []Span, t time.Duration) bool {
	for _, s := range spans {
		if t >= s.Start && t < s.End {
			return true
		}
	}
	return false
}

// cosWave oscillates around mid between two levels whose ratio is ratio, starting at its trough.
func cosWave(mid, ratio float64, period time.Duration) func(time.Duration) float64 {
	amp := mid * (ratio - 1) / (ratio + 1)
	return func(t time.Duration) float64 { return mid - amp*math.Cos(2*math.Pi*t.Seconds()/period.Seconds()) }
}

func steady(seed uint64, name string, d time.Duration, load float64) Trace {
	return Trace{Name: name, Family: "steady", Duration: d,
		Params: fmt.Sprintf("%s of a constant %.1f replica-equivalents, chat tokens", d, load),
		Why: "the control case: nothing to scale for; an autoscaler should land on the frontier near the cheapest " +
			"fixed count that meets the SLO, and any scale-down it tries costs attainment",
		Components: []Component{{Mix: Chat, Load: func(time.Duration) float64 { return load }}}}
}

func wave(seed uint64, name string, d, period time.Duration, ratio float64) Trace {
	mid := peakLoad * (ratio + 1) / (2 * ratio)
	return Trace{Name: name, Family: "slow wave", Duration: d,
		Params: fmt.Sprintf("%s, cosine of period %s between %.1f and %.1f replica-equivalents (%gx), chat tokens",
			d, period, peakLoad/ratio, peakLoad, ratio),
		Why: "demand that moves slower than a pod starts: a reactive policy can follow it, and the saving over the " +
			"peak's fixed count is what autoscaling is for; the scale-down window decides how much is kept",
		Components: []Component{{Mix: Chat, Load: cosWave(mid, ratio, period)}}}
}

func steps(seed uint64, name string, d time.Duration, size float64, dur, gap Span) Trace {
	base := peakLoad / size
	bursts := schedule(rngFor(seed, name), d, dur, gap)
	return Trace{Name: name, Family: "step bursts", Duration: d, Bursts: bursts,
		Params: fmt.Sprintf("%s at %.2f replica-equivalents with %d steps to %gx (%.1f) lasting %s-%s, %s-%s apart, chat tokens",
			d, base, len(bursts), size, peakLoad, dur.Start, dur.End, gap.Start, gap.End),
		Why: "bursts that arrive faster than a pod starts, of one size, recurring: the first cannot be absorbed " +
			"without spare capacity, the later ones can if the policy learns from the first",
		Components: []Component{{Mix: Chat, Load: func(t time.Duration) float64 {
			if within(bursts, t) {
				return base * size
			}
			return base
		}}}}
}

// hoursApart holds one burst of each size (2x for 5 min, 4x for 2 min, 8x for 1 min, in random order) in
// each of three episodes at about 0:20, 2:50 and 5:00, on a gentle wave.
func hoursApart(seed uint64, name string, d time.Duration) Trace {
	rng := rngFor(seed, name)
	base := peakLoad / 8 / 1.2 // the wave's crest is 1.2 times its middle: an 8x burst there reaches peakLoad
	sizes := map[Span]float64{}
	var bursts []Span
	for _, episode := range []time.Duration{20 * time.Minute, 170 * time.Minute, 300 * time.Minute} {
		t := episode + between(rng, Span{0, 5 * time.Minute})
		for _, i := range rng.Perm(3) {
			size := []float64{2, 4, 8}[i]
			s := Span{t, t + []time.Duration{5 * time.Minute, 2 * time.Minute, time.Minute}[i]}
			bursts = append(bursts, s)
			sizes[s] = size
			t = s.End + between(rng, Span{8 * time.Minute, 15 * time.Minute})
		}
	}
	w := cosWave(base, 1.5, 45*time.Minute)
	return Trace{Name: name, Family: "step bursts", Duration: d, Bursts: bursts,
		Params: fmt.Sprintf("%s on a 45-min wave of 1.5x around %.2f replica-equivalents; three episodes at about 0:20, "+
			"2:50 and 5:00, each one burst of 2x (5 min), 4x (2 min) and 8x (1 min) in random order, 8-15 min apart; chat tokens", d, base),
		Why: "the same sizes recur hours apart: a policy that remembers only minutes meets each episode as the " +
			"first; one whose history spans hours can hold headroom for the second and third",
		Components: []Component{{Mix: Chat, Load: func(t time.Duration) float64 {
			for s, size := range sizes {
				if t >= s.Start && t < s.End {
					return w(t) * size
				}
			}
			return w(t)
		}}}}
}

// silences alternates blocks of load at a random level with minutes of nothing.
func silences(seed uint64, name string, d time.Duration) Trace {
	rng := rngFor(seed, name)
	type block struct {
		Span
		level float64
	}
	var blocks []block
	var resumes []Span
	for t := time.Duration(0); t < d; {
		b := block{Span{t, t + between(rng, Span{10 * time.Minute, 25 * time.Minute})}, peakLoad * (0.35 + 0.65*rng.Float64())}
		blocks = append(blocks, b)
		if t >= quiet {
			resumes = append(resumes, Span{t, t + time.Minute})
		}
		t = b.End + between(rng, Span{3 * time.Minute, 10 * time.Minute})
	}
	return Trace{Name: name, Family: "silences", Duration: d, Bursts: resumes,
		Params: fmt.Sprintf("%s of blocks lasting 10-25 min at a level drawn in [%.1f, %.1f] replica-equivalents, separated by 3-10 min of no request; chat tokens",
			d, 0.35*peakLoad, peakLoad),
		Why: "no signal at all during a silence: a policy must not scale to its minimum on missing data and then " +
			"meet the full load cold; load after silence is an 8x burst to the detector",
		Components: []Component{{Mix: Chat, Load: func(t time.Duration) float64 {
			for _, b := range blocks {
				if t >= b.Start && t < b.End {
					return b.level
				}
			}
			return 0
		}}}}
}

// dayProfile is a day's relative load by hour from midnight: a night trough at a tenth of the peak, a
// morning ramp, a late-morning peak, a lunch dip, an afternoon shoulder and an evening decline.
var dayProfile = [24]float64{0.25, 0.18, 0.13, 0.10, 0.10, 0.13, 0.22, 0.40, 0.62, 0.80, 0.92, 1.00,
	0.95, 0.88, 0.93, 0.97, 0.95, 0.85, 0.72, 0.62, 0.55, 0.48, 0.40, 0.32}

// day is dayProfile compressed into d, interpolated by half-cosines between the hours.
func day(d time.Duration, peak float64) func(time.Duration) float64 {
	return func(t time.Duration) float64 {
		h := 24 * t.Seconds() / d.Seconds()
		i := int(h) % 24
		f := h - math.Floor(h)
		f = (1 - math.Cos(math.Pi*f)) / 2
		return peak * (dayProfile[i]*(1-f) + dayProfile[(i+1)%24]*f)
	}
}

// diurnal is a day compressed into d; with size > 0, bursts of that size (1-2 min, 20-40 min apart) on top.
func diurnal(seed uint64, name string, d time.Duration, size float64) Trace {
	peak := peakLoad
	var bursts []Span
	params := fmt.Sprintf("a day compressed into %s (an hour every %s), from %.2f at night to %.1f replica-equivalents late morning; chat tokens",
		d, d/24, 0.1*peak, peak)
	why := "demand that rises and falls by 10x over the trace: the whole range of counts is used, and the " +
		"night is where a fixed count wastes most"
	if size > 0 {
		peak = peakLoad / size
		bursts = schedule(rngFor(seed, name), d, Span{time.Minute, 2 * time.Minute}, Span{20 * time.Minute, 40 * time.Minute})
		params = fmt.Sprintf("a day compressed into %s, from %.2f to %.1f replica-equivalents, with %d bursts of %gx lasting 1-2 min, 20-40 min apart; chat tokens",
			d, 0.1*peak, peak, len(bursts), size)
		why = "bursts on a moving baseline: the same 2x is a small absolute step at night and a large one at noon"
	}
	base := day(d, peak)
	return Trace{Name: name, Family: "diurnal", Duration: d, Bursts: bursts, Params: params, Why: why,
		Components: []Component{{Mix: Chat, Load: func(t time.Duration) float64 {
			if within(bursts, t) {
				return base(t) * size
			}
			return base(t)
		}}}}
}

func heavy(seed uint64, name string, m Mix) Trace {
	const ratio = 2
	d, period := 3*time.Hour, 30*time.Minute
	return Trace{Name: name, Family: "heavy-tailed prompts", Duration: d,
		Params: fmt.Sprintf("%s, 30-min wave of 2x up to %.1f replica-equivalents; %s", d, peakLoad, m),
		Why: "a request count means little when prompts span three orders of magnitude: long prompts fill KV " +
			"caches and hold prefill, so capacity per pod varies with the mix, not with the request rate",
		Components: []Component{{Mix: m, Load: cosWave(peakLoad*(ratio+1)/(2*ratio), ratio, period)}}}
}

func heavySteps(seed uint64, name string, m Mix) Trace {
	d := 3 * time.Hour
	t := steps(seed, name, d, 4, Span{time.Minute, 3 * time.Minute}, Span{25 * time.Minute, 40 * time.Minute})
	t.Family, t.Components[0].Mix = "heavy-tailed prompts", m
	t.Params = fmt.Sprintf("%s at %.2f replica-equivalents with %d steps to 4x lasting 1-3 min, 25-40 min apart; %s",
		d, peakLoad/4, len(t.Bursts), m)
	t.Why = "power-law prompts under bursts: a burst's cost depends on which prompts it brings"
	return t
}

func longOutputs(seed uint64, name string) Trace {
	const ratio = 2.5
	d, period := 3*time.Hour, 40*time.Minute
	return Trace{Name: name, Family: "long outputs", Duration: d,
		Params: fmt.Sprintf("%s, 40-min wave of %gx up to %.1f replica-equivalents; %s", d, ratio, peakLoad, LongOutput),
		Why: "decode-bound load: requests hold KV cache for minutes, queues form late, and a count set by the " +
			"request rate misses how long each request stays",
		Components: []Component{{Mix: LongOutput, Load: cosWave(peakLoad*(ratio+1)/(2*ratio), ratio, period)}}}
}

// mixture is chat on a slow wave plus code-like bursts (long prompts, short outputs) that add 2
// replica-equivalents for 2-4 minutes, gap apart.
func mixture(seed uint64, name string, d time.Duration, gap Span) Trace {
	const ratio, code = 2, 2.0
	chatPeak := peakLoad - code
	bursts := schedule(rngFor(seed, name), d, Span{2 * time.Minute, 4 * time.Minute}, gap)
	return Trace{Name: name, Family: "mixture", Duration: d, Bursts: bursts,
		Params: fmt.Sprintf("%s: chat on a 60-min wave of 2x up to %.1f replica-equivalents, plus %d bursts of code-like requests (%s) adding %.1f for 2-4 min, %s-%s apart",
			d, chatPeak, len(bursts), Code, code, gap.Start, gap.End),
		Why: "two populations with different costs: a code burst multiplies prompt tokens far more than requests, " +
			"so request-count signals understate it",
		Components: []Component{
			{Mix: Chat, Load: cosWave(chatPeak*(ratio+1)/(2*ratio), ratio, 60*time.Minute)},
			{Mix: Code, Load: func(t time.Duration) float64 {
				if within(bursts, t) {
					return code
				}
				return 0
			}},
		}}
}
