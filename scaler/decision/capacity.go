package decision

import (
	"fmt"
	"math"
	"time"
)

// The capacity model.
//
// A vLLM pod runs engine steps back to back while it has work. One step serves every running sequence: each
// decoding sequence gets one token, and the token budget left over (--max-num-batched-tokens) prefills the
// next prompt chunks, first come first served. A step costs
//
//	StepBase + StepPerSeq·B + StepPerContextToken·(context tokens of the B decoding sequences) + prefill/PrefillTPS
//
// (the cost model package vllmsim runs; StepBase is reading the weights once, the per-sequence and
// per-context-token terms are the batch's compute and attention, prefill is compute-bound). At N pods, each
// pod gets λ/N of the demand (the Service routes at random), and:
//
//   - Prefill: while a pod prefills, a step prefills M − B tokens and decodes B, so it prefills at
//     V(B) = (M − B) / (t(B) + (M − B)/PrefillTPS), t(B) = StepBase + c·B the decode step, c = StepPerSeq +
//     StepPerContextToken·(mean context per sequence). A request's prefill takes S = p̄/V(B) and the pod
//     spends u = (λ/N)·S of its time prefilling.
//   - Batch: a request stays in its pod for its prefill and d̄ steps, and every step, prefill chunk or not,
//     gives each decoding sequence a token. Steps run back to back and together cost t(B) each plus the
//     prompt tokens' compute, ρ = (λ/N)·p̄/PrefillTPS of the time: the pod runs (1 − ρ)/t(B) steps a
//     second, however the prompts are chunked. By Little's law B = (λ/N)·(S + d̄·t(B)/(1 − ρ)), solved by
//     iteration with S, which itself depends on B. When no batch solves it, N pods cannot decode the
//     demand.
//   - KV cache: the B sequences each hold the mean context the pods report (usage × cache tokens /
//     running). Under random routing a pod's share is a sum of independent requests, so its load in caches
//     has mean f = B·context/cache. The batch itself is not Poisson: each sequence slows every step, so a
//     sequence leaves at the rate 1/(d̄·t(B)), and B at a rate that grows slower than B. That birth-death
//     chain's batch is negative binomial, with variance B/(1 − p), p = (λ/N)·d̄·c/(1 − ρ) the share of the
//     pod's decode capacity in use (the processor-sharing effect: near saturation, the batch swings
//     widely). With exponential contexts (C² 1), the load has variance r·f, r = (context/cache)·(1 + 1/(1 −
//     p)). The pods' own spread (var/mean of their loads across the pods, with the batch's own dispersion at
//     their count taken out, averaged like the per-request sizes: sizes.kvDispersion) replaces
//     context/cache·2 while it is measured, and is carried to other counts by the same factor. vLLM admits a
//     request once its pod's cache has free blocks for its whole prompt; one that finds them missing waits
//     for sequences to finish, seconds. For a prompt of x caches that chance is P(load > 1 − x), the load
//     taken as gamma with mean f and variance r·f (a compound Poisson sum is skewed to the right), averaged
//     over the prompt lengths.
//   - Prefill queue: a request also waits for the prompts ahead of it. Each pod is a queue of prefill work
//     with utilization u and mean service time S (an M/G/1 queue, C² the squared coefficient of variation of
//     the prompt lengths); the Pollaczek–Khinchine waiting time has an exponential tail, P(W > w) ≈
//     u·exp(−θw), θ = 2(1−u)/(S·(1+C²)). A request is late when its wait and its own prefill together pass
//     the objective less its first step, T: its own prefill is S times its prompt over the mean prompt, and
//     P(late) integrates P(W > T − own prefill) over the prompt lengths' shape (shape.go). Without the shape,
//     lengths are exponential (C² 1): P(late) = exp(−T/S) + u·exp(−θT)·(1 − exp(−aT))/(aS), a = 1/S − θ. A
//     long prompt is late on its own, and leaves little of T for its wait.
//   - The two ways to be late add up; at most 1 − attainment of the requests may be.
//   - The queue target bounds what its name says, the average queue per pod: the Pollaczek–Khinchine mean
//     Lq = u²(1+C²)/(2(1−u)) stays at or under targetAverageQueueDepth.
//
// The pods needed are the fewest N that meet all of these (and B within --max-num-seqs).

// Capacity is what one pod of the service can do, in the step cost model above. The scaler starts from a
// prior (a table of GPUs and the model's size, or vllmsim's presets in the simulator) and refines it with
// what the pods report (their KV cache size).
type Capacity struct {
	// PrefillTPS is the prompt tokens/s a pod prefills when it does nothing else.
	PrefillTPS float64
	// StepBase, StepPerSeq and StepPerContextToken are the step cost terms.
	StepBase, StepPerSeq, StepPerContextToken time.Duration
	// StepTokens is --max-num-batched-tokens, the token budget of one step.
	StepTokens float64
	// MaxSeqs is --max-num-seqs.
	MaxSeqs float64
	// KVTokens is the KV cache's size in tokens; the pods' own report (vllm:cache_config_info) replaces it.
	KVTokens float64
}

// Validate says what is wrong with a capacity prior.
func (c Capacity) Validate() error {
	switch {
	case !(c.PrefillTPS > 0) || math.IsInf(c.PrefillTPS, 0):
		return fmt.Errorf("prefill tokens/s is %v: it must be positive", c.PrefillTPS)
	case c.StepBase <= 0 || c.StepPerSeq < 0 || c.StepPerContextToken < 0:
		return fmt.Errorf("step costs %s + %s/sequence + %s/context token: the base must be positive, the others not negative",
			c.StepBase, c.StepPerSeq, c.StepPerContextToken)
	case !(c.MaxSeqs >= 1) || !(c.StepTokens >= c.MaxSeqs) || !(c.KVTokens > 0):
		return fmt.Errorf("max-num-seqs %v, max-num-batched-tokens %v, KV cache %v tokens: need 1 <= seqs <= batched tokens and a cache",
			c.MaxSeqs, c.StepTokens, c.KVTokens)
	}
	return nil
}

// Demand is the service's load as the pods' counters report it over the rate window.
type Demand struct {
	// Arrivals is requests/s: first tokens/s plus the growth of the waiting queue.
	Arrivals float64
	// PromptPerRequest is uncached prompt tokens per request; DecodePerRequest output tokens per request.
	PromptPerRequest, DecodePerRequest float64
	// ContextPerSeq is the mean KV-cache tokens a running sequence holds.
	ContextPerSeq float64
	// PromptShape is the distribution of prompt lengths in multiples of their mean; nil if unknown, when
	// lengths are taken as exponential.
	PromptShape Shape
}

// Budget is what a pod's prefill queue must achieve.
type Budget struct {
	// TTFT is the time to first token a request should meet: it may wait that long less its own prefill and
	// first step. Attainment is the share of requests that must.
	TTFT       time.Duration
	Attainment float64
	// QueueDepth bounds the average number of requests waiting per pod.
	QueueDepth float64
}

// PodLoad is the model's picture of one pod at a given replica count.
type PodLoad struct {
	Pods int32
	// Batch is the sequences a pod runs; Step the duration of a decode step at that batch.
	Batch float64
	Step  time.Duration
	// PrefillTPS is the pod's prefill rate while decoding Batch; Utilization the share of its time spent
	// prefilling.
	PrefillTPS, Utilization float64
	// DecodeLoad is the share of the pod's decode capacity its sequences use, (λ/N)·d̄·c/(1 − ρ): the
	// batch's variance over its mean is 1/(1 − DecodeLoad).
	DecodeLoad float64
	// Service is a request's mean prefill time; Budget what the objective leaves for its wait and its own
	// prefill (the objective less one step).
	Service, Budget time.Duration
	// QueueMean is the average number of requests waiting per pod.
	QueueMean float64
	// KVFill is the share of the KV cache the batch holds on average.
	KVFill float64
	// QueueLate and KVLate are the predicted shares of requests late for the prefill queue (waiting longer
	// than the budget, or finding more than the queue target ahead) and for a full KV cache; Late their sum.
	QueueLate, KVLate, Late float64
	// Fits says whether all of the constraints hold; Limit names the first that does not.
	Fits  bool
	Limit string
}

// At is the model's picture of each pod when n pods share demand d; kvDispersion is the pods' measured
// index of dispersion of KV load (in caches) with the batch's own dispersion taken out (BaseDispersion), 0 if
// unknown.
func (c Capacity) At(n int32, d Demand, b Budget, kvDispersion float64) PodLoad {
	pl, ok := c.load(n, d)
	if !ok {
		return pl
	}
	c.kv(d, kvDispersion, &pl)
	c.queue(d, b, &pl)
	pl.Late = pl.QueueLate + pl.KVLate
	switch {
	case pl.Batch+2.33*math.Sqrt(pl.Batch) > c.MaxSeqs:
		pl.Limit = "max-num-seqs"
	case pl.Utilization >= 1:
		pl.Limit = "prefill"
	case pl.Late > 1-b.Attainment && pl.KVLate > pl.QueueLate:
		pl.Limit = "KV cache"
	case pl.Late > 1-b.Attainment:
		pl.Limit = "prefill queue"
	case b.QueueDepth > 0 && pl.QueueMean > b.QueueDepth:
		pl.Limit = "average queue"
	default:
		pl.Fits = true
	}
	return pl
}

// load is the model's picture of each pod at n pods before the tails: the batch, the prefill share and the
// KV cache's mean fill; false, with Limit saying why, if no batch serves the demand.
func (c Capacity) load(n int32, d Demand) (PodLoad, bool) {
	pl := PodLoad{Pods: n}
	if n < 1 {
		pl.Limit = "no pod"
		return pl, false
	}
	base := c.StepBase.Seconds()
	per := c.StepPerSeq.Seconds() + c.StepPerContextToken.Seconds()*d.ContextPerSeq
	if !c.batch(d.Arrivals/float64(n), d, base, per, &pl) {
		return pl, false
	}
	if d.ContextPerSeq > 0 && c.KVTokens > 0 {
		pl.KVFill = pl.Batch * d.ContextPerSeq / c.KVTokens
	}
	return pl, true
}

// batch solves Little's law for the batch and the prefill share together; false if no batch serves lam.
func (c Capacity) batch(lam float64, d Demand, base, per float64, pl *PodLoad) bool {
	prefillRate := func(b float64) float64 {
		chunk := c.StepTokens - b
		if chunk <= 0 {
			return 0
		}
		return chunk / (base + per*b + chunk/c.PrefillTPS)
	}
	rho := lam * d.PromptPerRequest / c.PrefillTPS // the share of a pod's time its prompts' compute takes
	b := 0.0
	for range 50 {
		v := prefillRate(b)
		if v <= 0 {
			pl.Limit = "step token budget"
			return false
		}
		u := lam * d.PromptPerRequest / v
		den := 1 - lam*d.DecodePerRequest*per/(1-rho)
		if u >= 1 || den <= 0 {
			pl.Limit, pl.Batch, pl.Utilization, pl.DecodeLoad = "decode", math.Inf(1), u, 1
			return false
		}
		pl.DecodeLoad = 1 - den
		next := lam * (d.PromptPerRequest/v + d.DecodePerRequest*base/(1-rho)) / den
		done := math.Abs(next-b) < 1e-3*max(next, 1)
		b = next
		if done {
			break
		}
	}
	pl.Batch = b
	pl.Step = seconds(base + per*b)
	pl.PrefillTPS = prefillRate(b)
	if pl.PrefillTPS <= 0 {
		pl.Limit = "step token budget"
		return false
	}
	pl.Utilization = lam * d.PromptPerRequest / pl.PrefillTPS
	pl.Service = seconds(d.PromptPerRequest / pl.PrefillTPS)
	return true
}

// kv sets the chance that a request finds its pod's KV cache full, from the mean fill load set.
func (c Capacity) kv(d Demand, dispersion float64, pl *PodLoad) {
	if !(pl.KVFill > 0) {
		return // no context or no cache to fill
	}
	r := dispersion
	if !(r > 0) {
		r = 2 * d.ContextPerSeq / c.KVTokens
	}
	r *= batchDispersion(pl.DecodeLoad)
	// vLLM admits a request once the cache has free blocks for its whole (uncached) prompt: it finds its pod
	// full when the load passes 1 less its own prompt. The load, a compound Poisson sum, is skewed to the
	// right: a gamma distribution of its mean and variance (shape f/r, scale r) carries that skew, where a
	// normal one would understate the tail.
	own := d.PromptPerRequest / c.KVTokens
	pl.KVLate = d.PromptShape.mean(func(x float64) float64 {
		return upperGamma(pl.KVFill/r, max(1-x*own, 0)/r)
	})
}

// upperGamma is the regularized upper incomplete gamma function Q(a, x) = Γ(a, x)/Γ(a): the chance that a
// gamma variable of shape a and scale 1 exceeds x. A series below a + 1, a continued fraction above
// (Numerical Recipes' gammq).
func upperGamma(a, x float64) float64 {
	switch {
	case !(a > 0) || math.IsInf(a, 1):
		return 0
	case x <= 0:
		return 1
	}
	lg, _ := math.Lgamma(a)
	front := math.Exp(-x + a*math.Log(x) - lg)
	if x < a+1 {
		sum, term := 1/a, 1/a
		for n := 1.0; n < 1000; n++ {
			term *= x / (a + n)
			sum += term
			if term < sum*1e-15 {
				break
			}
		}
		return max(1-front*sum, 0)
	}
	const tiny = 1e-300
	b := x + 1 - a
	cf, dd := 1/tiny, 1/b
	h := dd
	for i := 1.0; i < 1000; i++ {
		an := -i * (i - a)
		b += 2
		dd = an*dd + b
		if math.Abs(dd) < tiny {
			dd = tiny
		}
		cf = b + an/cf
		if math.Abs(cf) < tiny {
			cf = tiny
		}
		dd = 1 / dd
		step := dd * cf
		h *= step
		if math.Abs(step-1) < 1e-15 {
			break
		}
	}
	return min(front*h, 1)
}

// maxDecodeLoad caps the decode load the batch's dispersion is computed at: beyond it, a pod is saturated and
// the batch's solution, not its spread, says so.
const maxDecodeLoad = 0.95

// batchDispersion is the factor the batch's own dispersion puts on the KV load's, against a Poisson batch:
// (1 + 1/(1 − p))/2 for exponential contexts at decode load p.
func batchDispersion(p float64) float64 {
	return (1 + 1/(1-min(max(p, 0), maxDecodeLoad))) / 2
}

// BaseDispersion is the KV load's index of dispersion r, measured across n pods serving d, with the batch's
// own dispersion at that count taken out: what At takes.
func (c Capacity) BaseDispersion(r float64, n int32, d Demand) float64 {
	if !(r > 0) || n < 1 {
		return 0
	}
	pl, _ := c.load(n, d)
	return r / batchDispersion(pl.DecodeLoad)
}

// queue sets the prefill queue's budget and the share of requests late for it.
func (c Capacity) queue(d Demand, b Budget, pl *PodLoad) {
	u, service := pl.Utilization, pl.Service.Seconds()
	t := max(b.TTFT.Seconds()-pl.Step.Seconds(), 0)
	pl.Budget = seconds(t)
	switch {
	case u >= 1:
		pl.QueueLate, pl.QueueMean = 1, math.Inf(1)
	case u <= 0 || service <= 0:
	case d.PromptShape == nil:
		// P(S + W > t) for an own prefill S exponential with the mean service (C² = 1) and a wait W with
		// tail u·exp(−θw): P(S > t) + ∫₀ᵗ P(W > t − s) dP(S ≤ s).
		theta := (1 - u) / service
		a := 1/service - theta
		within := t / service // ∫₀ᵗ exp(−a·s) ds / service, t/service as a → 0
		if math.Abs(a*t) > 1e-9 {
			within = -math.Expm1(-a*t) / (a * service)
		}
		pl.QueueLate = min(math.Exp(-t/service)+u*math.Exp(-theta*t)*within, 1)
		pl.QueueMean = u * u / (1 - u)
	default:
		cv2 := d.PromptShape.CV2()
		theta := 2 * (1 - u) / (service * (1 + cv2))
		pl.QueueLate = min(d.PromptShape.late(t/service, u, theta*service), 1)
		pl.QueueMean = u * u * (1 + cv2) / (2 * (1 - u))
	}
}

// Saturation is the most requests/s of d's mix one pod serves at all, however late: the rate at which its
// batch still has a solution, fits the KV cache on average and stays within --max-num-seqs. A backlog
// drains at the pods' saturation rate less the arrivals.
func (c Capacity) Saturation(d Demand) float64 {
	// A request costs at least its prefill and its decode steps' per-sequence share, whatever the batch.
	work := d.PromptPerRequest/c.PrefillTPS + d.DecodePerRequest*c.StepPerSeq.Seconds()
	if !(work > 0) {
		return 0
	}
	serves := func(lam float64) bool {
		dd := d
		dd.Arrivals = lam
		pl, ok := c.load(1, dd) // the tails do not matter to what a pod serves at all
		return ok && pl.Utilization < 1 && pl.KVFill <= 1 && pl.Batch <= c.MaxSeqs
	}
	lo, hi := 0.0, 1/work
	for range 40 {
		mid := (lo + hi) / 2
		if serves(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// Fewest is the fewest pods, at most limit, that serve d within b, and the model's picture at that count.
// If even limit pods do not, it returns limit's picture (Fits false).
func (c Capacity) Fewest(d Demand, b Budget, kvDispersion float64, limit int32) PodLoad {
	if !(d.Arrivals > 0) {
		return PodLoad{Pods: 0, Fits: true}
	}
	// Load per pod falls with n, so the constraints, once met, stay met: bisect.
	lo, hi := int32(1), max(limit, 1)
	best := c.At(hi, d, b, kvDispersion)
	if !best.Fits {
		return best
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		if pl := c.At(mid, d, b, kvDispersion); pl.Fits {
			hi, best = mid, pl
		} else {
			lo = mid + 1
		}
	}
	return best
}

func seconds(s float64) time.Duration {
	if math.IsInf(s, 0) || math.IsNaN(s) || s > 1e9 {
		return math.MaxInt64
	}
	return time.Duration(s * float64(time.Second))
}
