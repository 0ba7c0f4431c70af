package vllmmetrics

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/llm-d/llm-d/scaler/promtext"
)

// histogram sums the buckets of one histogram over its label sets (engines, model names), bound by bound.
// Duplicate buckets are caught before add, by the series key (label set and bound), so that a bound's
// groups is the number of label sets that have it.
type histogram struct {
	bounds []bound // in first-seen order until buckets sorts them
	// index finds a bound once there are too many to scan: a hostile payload must not cost a quadratic scan.
	index map[float64]int
	// next is where the label set's next bucket usually is: every label set lists the same bounds in the
	// same order, so after the first one a scan is rarely needed.
	next     int
	groups   int  // label sets seen
	unsorted bool // whether a bound was added after a larger one
	buf      [24]bound
}

type bound struct {
	le, count float64
	groups    int
}

// maxScannedBounds is the number of distinct bounds found by a linear scan before index takes over.
// vLLM's prompt-length histogram has 1-2-5 bounds up to the context length, then +Inf: 17 for 128k tokens.
const maxScannedBounds = 32

func (h *histogram) init() { h.bounds = h.buf[:0] }

// add counts v observations at most le in one label set.
func (h *histogram) add(le, v float64) {
	i := h.find(le)
	if i < 0 {
		i = len(h.bounds)
		h.unsorted = h.unsorted || i > 0 && le < h.bounds[i-1].le
		h.bounds = append(h.bounds, bound{le: le})
		if h.index == nil && len(h.bounds) > maxScannedBounds {
			h.index = make(map[float64]int, 2*len(h.bounds))
			for j, b := range h.bounds {
				h.index[b.le] = j
			}
		} else if h.index != nil {
			h.index[le] = i
		}
	}
	h.bounds[i].count += v
	h.bounds[i].groups++
	h.next = i + 1
}

func (h *histogram) find(le float64) int {
	if h.next < len(h.bounds) && h.bounds[h.next].le == le {
		return h.next
	}
	if h.index != nil {
		if i, ok := h.index[le]; ok {
			return i
		}
		return -1
	}
	for i, b := range h.bounds {
		if b.le == le {
			return i
		}
	}
	return -1
}

// buckets returns the summed buckets in increasing order of bound, nil if none were added, or an error if
// they do not make a histogram.
func (h *histogram) buckets(name string) ([]Bucket, error) {
	if len(h.bounds) == 0 {
		return nil, nil
	}
	if h.unsorted {
		slices.SortFunc(h.bounds, func(a, b bound) int { return cmp.Compare(a.le, b.le) })
	}
	if last := h.bounds[len(h.bounds)-1]; !math.IsInf(last.le, 1) {
		return nil, fmt.Errorf(`%w: %s has no le="+Inf" bucket (the largest is le=%q): without it the number of requests is unknown`,
			ErrInvalidValue, name, formatBound(last.le))
	}
	out := make([]Bucket, len(h.bounds))
	for i, b := range h.bounds {
		switch {
		case b.groups != h.groups:
			return nil, fmt.Errorf("%w: %s{le=%q} is in %d of its %d label sets; the engines' buckets can be summed only if they all have the same bounds",
				ErrInvalidValue, name, formatBound(b.le), b.groups, h.groups)
		case math.IsInf(b.count, 0):
			return nil, fmt.Errorf("%w: the sum of %s{le=%q} over its label sets overflows", ErrInvalidValue, name, formatBound(b.le))
		case i > 0 && b.count < out[i-1].Count:
			return nil, fmt.Errorf("%w: %s{le=%q} counts %v requests, fewer than the %v at le=%q (summed over label sets): cumulative counts cannot decrease as the bound grows",
				ErrInvalidValue, name, formatBound(b.le), b.count, out[i-1].Count, formatBound(out[i-1].UpperBound))
		}
		out[i] = Bucket{UpperBound: b.le, Count: b.count}
	}
	return out, nil
}

// bucketBound reads the le label of a bucket sample: its index among the sample's labels and its value.
// A missing or unreadable le is ErrInvalidValue, not ErrSyntax: the line is well-formed Prometheus text
// (expfmt reads it as an untyped sample when no TYPE line says histogram), it only does not say which
// bucket it counts; and ErrSyntax promises a *promtext.SyntaxError, the scanner's verdict on the text.
func bucketBound(s *promtext.Sample) (int, float64, error) {
	for i := range s.NumLabels() {
		name, value := s.LabelAt(i)
		if string(name) != "le" {
			continue
		}
		// The string conversion does not allocate: strconv does not let it escape.
		le, err := strconv.ParseFloat(string(value), 64)
		switch {
		case err != nil:
			return 0, 0, fmt.Errorf("%w: line %d: %s: le=%s is not a number; a bucket's upper bound is a float or +Inf",
				ErrInvalidValue, s.Line, seriesString(s), quoteShort(value))
		case math.IsNaN(le):
			return 0, 0, fmt.Errorf("%w: line %d: %s: le is NaN; a bucket's upper bound is a float or +Inf",
				ErrInvalidValue, s.Line, seriesString(s))
		}
		if le == 0 {
			le = 0 // -0 is the same bound as 0, and must make the same series key
		}
		return i, le, nil
	}
	return 0, 0, fmt.Errorf("%w: line %d: %s has no le label; a histogram bucket needs its upper bound",
		ErrInvalidValue, s.Line, seriesString(s))
}

// formatBound writes a bound for an error message: 1, 1000, +Inf.
func formatBound(le float64) string { return strconv.FormatFloat(le, 'g', -1, 64) }

// quoteShort quotes a label value for an error message, cut short: a label value may be megabytes long.
func quoteShort(b []byte) string {
	const max = 40
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}
