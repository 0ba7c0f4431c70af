package suite

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/llm-d/llm-d/vllmsim"
)

// MaxModelLen is the service's --max-model-len (the article's manifest): a request's prompt and output
// together never exceed it.
const MaxModelLen = 32768

// Dist is a token-count distribution, clamped to [Min, Max].
type Dist struct {
	// Kind is "lognormal" (A = mu, B = sigma of the log), "pareto" (A = scale x_m, B = shape alpha),
	// "uniform" (between A and B) or "empirical" (the quantile function Q at the percentiles quantileAt,
	// linear between them).
	Kind     string
	A, B     float64
	Q        []float64
	Min, Max int
}

// quantileAt are the percentiles of the empirical distributions' quantile tables: every 2 %, then finer in
// the tail.
var quantileAt = []float64{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44,
	46, 48, 50, 52, 54, 56, 58, 60, 62, 64, 66, 68, 70, 72, 74, 76, 78, 80, 82, 84, 86, 88, 90, 92, 94, 96, 98, 99,
	99.5, 99.9, 100}

// Sample draws one count.
func (d Dist) Sample(rng *rand.Rand) int {
	var x float64
	switch d.Kind {
	case "lognormal":
		x = math.Exp(d.A + d.B*rng.NormFloat64())
	case "pareto":
		x = d.A / math.Pow(1-rng.Float64(), 1/d.B)
	case "uniform":
		x = d.A + (d.B-d.A)*rng.Float64()
	case "empirical":
		u := 100 * rng.Float64()
		i := sort.SearchFloat64s(quantileAt, u) // quantileAt[i-1] < u <= quantileAt[i]
		i = max(i, 1)
		lo, hi := quantileAt[i-1], quantileAt[i]
		x = d.Q[i-1] + (d.Q[i]-d.Q[i-1])*(u-lo)/(hi-lo)
	default:
		panic("suite: unknown distribution " + d.Kind)
	}
	return min(max(int(math.Round(x)), d.Min), d.Max)
}

func (d Dist) String() string {
	switch d.Kind {
	case "lognormal":
		return fmt.Sprintf("lognormal(median %.0f, σ %.2f) in [%d, %d]", math.Exp(d.A), d.B, d.Min, d.Max)
	case "pareto":
		return fmt.Sprintf("Pareto(x_m %.0f, α %.2f) in [%d, %d]", d.A, d.B, d.Min, d.Max)
	case "empirical":
		return fmt.Sprintf("empirical (median %.0f, p99 %.0f, max %.0f)", d.Q[25], d.Q[50], d.Q[len(d.Q)-1])
	}
	return fmt.Sprintf("uniform [%.0f, %.0f]", d.A, d.B)
}

// Mix is a population of requests: their prompt and output lengths. A prompt is cut to fit the context
// with its output.
type Mix struct {
	Name           string
	Prompt, Output Dist
}

// Sample draws one request's prompt and output tokens.
func (m Mix) Sample(rng *rand.Rand) (prompt, output int) {
	output = m.Output.Sample(rng)
	prompt = min(m.Prompt.Sample(rng), MaxModelLen-output)
	return prompt, output
}

func (m Mix) String() string {
	return fmt.Sprintf("%s tokens: prompt %s, output %s", m.Name, m.Prompt, m.Output)
}

// The token mixes. Chat and Code are the Azure LLM inference trace 2023's own distributions (Patel et al.,
// "Splitwise", ISCA 2024, CC-BY 4.0), as quantile tables, prompt and output drawn independently:
// conversation (prompt median 1,020, p99 4,142, max 14,050; output median 129, max 1,000) and code (prompt
// median 1,469, max 7,437; output median 13, p99 252).
var (
	Chat = Mix{Name: "chat",
		Prompt: Dist{Kind: "empirical", Min: 1, Max: MaxModelLen, Q: []float64{2, 91, 181, 191, 201, 207, 222, 317, 375, 381,
			387, 392, 395, 398, 400, 403, 406, 411, 419, 433, 703, 903, 972, 994, 1009, 1020, 1031, 1041, 1050, 1060, 1071, 1081,
			1092, 1102, 1116, 1130, 1147, 1171, 1214, 1311, 1315, 1368, 1690, 2032, 2401, 2734, 4073, 4079, 4086, 4098, 4142,
			4831, 6212, 14050}},
		Output: Dist{Kind: "empirical", Min: 1, Max: MaxModelLen, Q: []float64{7, 24, 38, 44, 49, 54, 59, 64, 69, 73, 77, 81,
			84, 86, 89, 91, 93, 95, 97, 100, 103, 107, 110, 116, 122, 129, 137, 145, 156, 163, 177, 190, 216, 237, 375, 384, 390,
			394, 396, 397, 400, 404, 410, 414, 417, 424, 429, 442, 468, 540, 601, 643, 954, 1000}}}
	Code = Mix{Name: "code",
		Prompt: Dist{Kind: "empirical", Min: 1, Max: MaxModelLen, Q: []float64{3, 35, 62, 88, 109, 147, 179, 209, 253, 319,
			386, 469, 539, 604, 698, 770, 848, 908, 969, 1027, 1075, 1133, 1205, 1296, 1377, 1469, 1555, 1642, 1724, 1823, 1909,
			2024, 2128, 2226, 2329, 2433, 2546, 2670, 2805, 2975, 3192, 3452, 3714, 4107, 4559, 5186, 5961, 6585, 7430, 7436,
			7436, 7436, 7437, 7437}},
		Output: Dist{Kind: "empirical", Min: 1, Max: MaxModelLen, Q: []float64{6, 6, 6, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9, 9, 9, 9,
			10, 10, 10, 11, 11, 12, 12, 12, 13, 13, 13, 14, 14, 15, 16, 16, 17, 18, 19, 20, 21, 23, 25, 27, 29, 32, 37, 42, 48,
			55, 65, 79, 105, 172, 252, 361, 824, 1899}}}
	// HeavyLognormal: prompts with a median of 2,000 tokens and a tail to the context limit (6 % above 20k),
	// chat outputs: retrieval-augmented and document traffic.
	HeavyLognormal = Mix{Name: "heavy-lognormal",
		Prompt: Dist{Kind: "lognormal", A: math.Log(2000), B: 1.5, Min: 1, Max: MaxModelLen},
		Output: Chat.Output}
	// HeavyPareto: a power-law tail (α 1.3 from 400 tokens: half the prompts under 700, 1 % over 14k), chat
	// outputs; a few prompts fill an A10G's whole KV cache.
	HeavyPareto = Mix{Name: "heavy-pareto",
		Prompt: Dist{Kind: "pareto", A: 400, B: 1.3, Min: 1, Max: MaxModelLen},
		Output: Chat.Output}
	// LongOutput: chat prompts, 1,024 to 4,096 output tokens (reasoning, long-form generation).
	LongOutput = Mix{Name: "long-output", Prompt: Chat.Prompt,
		Output: Dist{Kind: "uniform", A: 1024, B: 4096, Min: 1024, Max: 4096}}
)

// ReplicaRate is the requests per second one replica serves at full use with requests of mix m: the
// offered load is expressed in these units (replica-equivalents), so that one shape means the same on every
// GPU. A request costs its prompt at the prefill rate plus its output at the decode rate of a batch limited
// by the KV cache (and MaxNumSeqs), each sequence holding its prompt and half its output:
//
//	ctx = E[prompt] + E[output]/2,  B = min(MaxNumSeqs, KVCacheTokens / ctx)
//	decode tokens/s = B / (IterationBase + B·DecodePerSeq + B·ctx·DecodePerContextToken)
//	seconds per request = E[prompt] / PrefillTokensPerSec + E[output] / (decode tokens/s)
//
// The means are estimated from 20,000 draws with a fixed seed. On the A10G this gives 1.7 chat requests/s
// (the Azure conversation trace needs 6 A10Gs at ~9 requests/s, 1.5 each), on the H100 14.6.
func ReplicaRate(p vllmsim.Params, m Mix) float64 {
	const n = 20000
	rng := rand.New(rand.NewPCG(0, 0))
	var sp, so float64
	for range n {
		pr, out := m.Sample(rng)
		sp += float64(pr)
		so += float64(out)
	}
	ep, eo := sp/n, so/n
	ctx := ep + eo/2
	b := max(1, min(float64(p.MaxNumSeqs), float64(p.KVCacheTokens)/ctx))
	iter := p.IterationBase.Seconds() + b*p.DecodePerSeq.Seconds() + b*ctx*p.DecodePerContextToken.Seconds()
	perReq := ep/float64(p.PrefillTokensPerSec) + eo*iter/b
	return 1 / perReq
}

// Preset is a replica model the suite runs on.
type Preset struct {
	Name   string
	Params vllmsim.Params
}

// Presets are the two replica models of package vllmsim.
var Presets = []Preset{{"a10g", vllmsim.A10GLlama8B()}, {"h100", vllmsim.H100Llama8B()}}

// PresetNamed returns the preset called name.
func PresetNamed(name string) (Preset, error) {
	for _, p := range Presets {
		if p.Name == name {
			return p, nil
		}
	}
	return Preset{}, fmt.Errorf("no replica preset %q: want a10g or h100", name)
}

// startup is a preset's pod startup delay, the span after a burst that the burst-aware score excludes.
func (p Preset) startup() time.Duration { return p.Params.StartupDelay }
