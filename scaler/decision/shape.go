package decision

import (
	"math"
	"slices"
)

// Prompt lengths.
//
// A request is late when its wait and its own prefill pass the budget, so the tail of the prompt lengths
// matters as much as their mean: one long prompt is late on its own and holds up the requests behind it.
// vLLM counts each finished request's prompt in the histogram vllm:request_prompt_tokens (bounds 1, 2, 5,
// 10, … up to --max-model-len). The pods' bucket counts over the rate window, summed and forgotten like the
// per-request sizes, give the shape of the distribution:
//   - within a bucket, lengths are taken as spread evenly (the buckets are a factor 2 to 2.5 wide);
//   - the shape is in multiples of its own mean, so that it applies to the uncached prompt, whose mean the
//     counters give: a prefix-cache hit is taken to shorten every prompt in the same proportion;
//   - the histogram counts a request when it finishes, a decode later than its prefill: the per-request
//     sizes' half-life is long beside that.
//
// Without the histogram (vLLM before 0.4 has none), or with fewer than minShapeRequests requests in it, the
// lengths are taken as exponential around the mean.

// Histogram counts prompt lengths: Counts[i] requests of a length in (Bounds[i−1], Bounds[i]], the first
// bucket from 0, the last (len(Bounds)) above every bound. A Pod's counts are requests per second.
type Histogram struct {
	Bounds []float64
	Counts []float64
}

// Valid says whether h has a count per bucket, increasing positive bounds and finite, non-negative counts.
func (h Histogram) Valid() bool {
	if len(h.Counts) != len(h.Bounds)+1 {
		return false
	}
	for i, b := range h.Bounds {
		if !(b > 0) || math.IsInf(b, 0) || i > 0 && !(b > h.Bounds[i-1]) {
			return false
		}
	}
	for _, c := range h.Counts {
		if !(c >= 0) || math.IsInf(c, 0) {
			return false
		}
	}
	return true
}

// minShapeRequests is the fewest requests a histogram needs to give a shape: fewer say little of a tail.
const minShapeRequests = 50

// Share is the part P of the requests whose lengths, in multiples of the mean, spread evenly over [Lo, Hi].
type Share struct{ Lo, Hi, P float64 }

// Shape is a distribution of prompt lengths in multiples of their mean: shares of mean 1.
type Shape []Share

// Shape is h's distribution, nil if h holds fewer than minShapeRequests requests. The bucket above every
// bound is taken as a point at the largest bound: vLLM's bounds reach --max-model-len, so it stays empty.
func (h Histogram) Shape() Shape {
	var total float64
	for _, c := range h.Counts {
		total += c
	}
	if !(total >= minShapeRequests) || !h.Valid() {
		return nil
	}
	var s Shape
	var mean, lo float64
	for i, c := range h.Counts {
		hi := lo
		if i < len(h.Bounds) {
			hi = h.Bounds[i]
		}
		if c > 0 {
			s = append(s, Share{Lo: lo, Hi: hi, P: c / total})
			mean += c / total * (lo + hi) / 2
		}
		lo = hi
	}
	if !(mean > 0) {
		return nil
	}
	for i := range s {
		s[i].Lo, s[i].Hi = s[i].Lo/mean, s[i].Hi/mean
	}
	return s
}

// CV2 is the squared coefficient of variation of the lengths.
func (s Shape) CV2() float64 {
	var m2 float64
	for _, x := range s {
		m2 += x.P * (x.Lo*x.Lo + x.Lo*x.Hi + x.Hi*x.Hi) / 3
	}
	return max(m2-1, 0)
}

// late is the share of requests whose own prefill X (in mean prefills) and wait W (in mean prefills, tail
// P(W > w) = u·exp(−φw)) pass t: over each share's lengths x, 1 where x ≥ t, else u·exp(−φ(t − x)).
func (s Shape) late(t, u, phi float64) float64 {
	var p float64
	for _, x := range s {
		var late float64
		switch {
		case x.Hi-x.Lo < 1e-12*x.Hi:
			late = 1
			if x.Lo < t {
				late = u * math.Exp(-phi*(t-x.Lo))
			}
		default:
			late = max(x.Hi-max(x.Lo, t), 0) // the lengths that are late on their own
			if x.Lo < t {
				top := min(x.Hi, t)
				if phi*(top-x.Lo) < 1e-9 {
					late += u * math.Exp(-phi*(t-top)) * (top - x.Lo)
				} else {
					late += u / phi * (math.Exp(-phi*(t-top)) - math.Exp(-phi*(t-x.Lo)))
				}
			}
			late /= x.Hi - x.Lo
		}
		p += x.P * late
	}
	return p
}

// mean is the expectation of f over the lengths (in multiples of the mean), exponential lengths when s is nil:
// midpoints of quantiles for the exponential, of even steps within each share otherwise.
func (s Shape) mean(f func(x float64) float64) float64 {
	var sum float64
	if s == nil {
		const k = 32
		for i := range k {
			sum += f(-math.Log1p(-(float64(i)+0.5)/k)) / k
		}
		return sum
	}
	const k = 4
	for _, x := range s {
		for i := range k {
			sum += x.P / k * f(x.Lo+(x.Hi-x.Lo)*(float64(i)+0.5)/k)
		}
	}
	return sum
}

// add adds o's counts, weighted by w, to h's; o's counts replace h's when the bounds differ (the pods'
// --max-model-len changed).
func (h *Histogram) add(o Histogram, w float64) {
	if !slices.Equal(h.Bounds, o.Bounds) {
		h.Bounds, h.Counts = slices.Clone(o.Bounds), make([]float64, len(o.Counts))
	}
	for i, c := range o.Counts {
		h.Counts[i] += c * w
	}
}

// scale multiplies h's counts by f.
func (h *Histogram) scale(f float64) {
	for i := range h.Counts {
		h.Counts[i] *= f
	}
}
