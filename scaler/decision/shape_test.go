package decision

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// Equal prompts (a point at the mean, C² = 0) on the hand pod of TestCapacityOnePodByHand at 3 requests/s
// and a 400 ms objective: the batch, the service S and u do not depend on the shape. M/D/1's tail has
// θ = 2(1 − u)/S, and a request is late when its wait passes T − S: u·exp(−θ(T − S)).
func TestCapacityEqualPromptsByHand(t *testing.T) {
	d := Demand{Arrivals: 3, PromptPerRequest: 1000, DecodePerRequest: 100, ContextPerSeq: 1000}
	b := Budget{TTFT: 400 * time.Millisecond, Attainment: 0.99, QueueDepth: 5}
	exp := handPod.At(1, d, b, 0)
	d.PromptShape = Shape{{Lo: 1, Hi: 1, P: 1}}
	pl := handPod.At(1, d, b, 0)
	if pl.Batch != exp.Batch || pl.Utilization != exp.Utilization || pl.Service != exp.Service {
		t.Fatalf("the shape changed the batch: %+v against %+v", pl, exp)
	}
	u, s, tt := pl.Utilization, pl.Service.Seconds(), pl.Budget.Seconds()
	near(t, "queue late", pl.QueueLate, u*math.Exp(-2*(1-u)/s*(tt-s)), 1e-9)
	near(t, "average queue", pl.QueueMean, u*u/(2*(1-u)), 1e-9)
	if !(pl.QueueLate < exp.QueueLate) {
		t.Fatalf("equal prompts are late %.3g, exponential ones %.3g: the exponential tail is the longer", pl.QueueLate, exp.QueueLate)
	}
}

// A histogram of exponential lengths in fine buckets gives the exponential model's answer: the shape's
// integral and the closed form agree where they assume the same thing.
func TestShapeOfExponentialLengths(t *testing.T) {
	var h Histogram
	for x := 0.02; x <= 30; x += 0.02 {
		h.Bounds = append(h.Bounds, x*1000)
	}
	prev := 0.0
	for _, bound := range h.Bounds {
		cdf := -math.Expm1(-bound / 1000)
		h.Counts = append(h.Counts, 1e6*(cdf-prev))
		prev = cdf
	}
	h.Counts = append(h.Counts, 1e6*(1-prev))
	shape := h.Shape()
	near(t, "C²", shape.CV2(), 1, 1e-3)
	for _, arrivals := range []float64{1, 3, 6} {
		d := Demand{Arrivals: arrivals, PromptPerRequest: 1000, DecodePerRequest: 100, ContextPerSeq: 1000}
		b := Budget{TTFT: 700 * time.Millisecond, Attainment: 0.99}
		exp := handPod.At(1, d, b, 0)
		d.PromptShape = shape
		near(t, "queue late", handPod.At(1, d, b, 0).QueueLate, exp.QueueLate, 2e-2)
	}
}

// At the same mean, a longer tail makes more requests late: 90 % short prompts and 10 % at ten times their
// length against the exponential.
func TestShapeLongTailIsLater(t *testing.T) {
	h := Histogram{Bounds: []float64{100, 200, 1000, 2000}, Counts: []float64{0, 900, 0, 100, 0}}
	shape := h.Shape()
	if cv2 := shape.CV2(); !(cv2 > 1.5) {
		t.Fatalf("C² %.2f, want the long tail's above 1.5", cv2)
	}
	d := Demand{Arrivals: 2, PromptPerRequest: 1000, DecodePerRequest: 100, ContextPerSeq: 1000}
	b := Budget{TTFT: 2 * time.Second, Attainment: 0.99}
	exp := handPod.At(1, d, b, 0)
	d.PromptShape = shape
	if tail := handPod.At(1, d, b, 0); !(tail.QueueLate > 10*exp.QueueLate) {
		t.Fatalf("long tail late %.3g, exponential %.3g", tail.QueueLate, exp.QueueLate)
	}
}

func TestHistogramShape(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    Histogram
		want Shape
	}{
		{"one bucket", Histogram{Bounds: []float64{1000, 2000}, Counts: []float64{0, 60, 0}}, Shape{{Lo: 2. / 3, Hi: 4. / 3, P: 1}}},
		{"above every bound", Histogram{Bounds: []float64{1000}, Counts: []float64{50, 50}}, Shape{{Lo: 0, Hi: 4. / 3, P: 0.5}, {Lo: 4. / 3, Hi: 4. / 3, P: 0.5}}},
		{"too few requests", Histogram{Bounds: []float64{1000}, Counts: []float64{49, 0}}, nil},
		{"a count missing", Histogram{Bounds: []float64{1000}, Counts: []float64{60}}, nil},
		{"bounds not increasing", Histogram{Bounds: []float64{1000, 1000}, Counts: []float64{0, 60, 0}}, nil},
		{"negative count", Histogram{Bounds: []float64{1000}, Counts: []float64{100, -1}}, nil},
		{"NaN count", Histogram{Bounds: []float64{1000}, Counts: []float64{100, math.NaN()}}, nil},
		{"nothing but above a zero bound", Histogram{Bounds: []float64{}, Counts: []float64{100}}, nil},
	} {
		got := tc.h.Shape()
		if len(got) != len(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			continue
		}
		var mean float64
		for i, x := range got {
			near(t, tc.name+" lo", x.Lo, tc.want[i].Lo, 1e-9)
			near(t, tc.name+" hi", x.Hi, tc.want[i].Hi, 1e-9)
			near(t, tc.name+" share", x.P, tc.want[i].P, 1e-9)
			mean += x.P * (x.Lo + x.Hi) / 2
		}
		if got != nil {
			near(t, tc.name+" mean", mean, 1, 1e-9)
		}
	}
}

// The demand's shape is the pods' buckets summed and forgotten like the per-request sizes; a pod of other
// bounds does not mix into them. 2 requests/s over the rate window are 60 requests, enough for a shape.
func TestDemandPromptShape(t *testing.T) {
	a := New(Policy{MinReplicas: 1, MaxReplicas: 4, TargetQueue: 5, Capacity: handPod})
	pod := load(1, 2, 1000, 100, 0)[0]
	pod.PromptLengths = Histogram{Bounds: []float64{1000, 2000}, Counts: []float64{0, 2, 0}}
	other := pod
	other.PromptLengths = Histogram{Bounds: []float64{500, 1000}, Counts: []float64{2, 0, 0}}
	m := a.measure(Snapshot{Now: t0, Current: 2, Ready: 2, Pods: []Pod{pod, other}}, handPod)
	want := Shape{{Lo: 2. / 3, Hi: 4. / 3, P: 1}}
	if len(m.PromptShape) != 1 || math.Abs(m.PromptShape[0].Lo-want[0].Lo) > 1e-9 {
		t.Fatalf("shape %v, want %v from the first pod's bounds only", m.PromptShape, want)
	}
	old := pod
	old.PromptLengths = Histogram{}
	a = New(Policy{MinReplicas: 1, MaxReplicas: 4, TargetQueue: 5, Capacity: handPod})
	if m := a.measure(Snapshot{Now: t0, Current: 1, Ready: 1, Pods: []Pod{old}}, handPod); m.PromptShape != nil {
		t.Fatalf("a pod without the histogram gives shape %v, want none (exponential lengths)", m.PromptShape)
	}
}

// randomHistogram is a histogram in vLLM's 1-2-5 bounds up to 10^5 with random counts.
func randomHistogram(r *rand.Rand) Histogram {
	var h Histogram
	for b := 1.0; b <= 1e5; b *= 10 {
		h.Bounds = append(h.Bounds, b, 2*b, 5*b)
	}
	for range len(h.Bounds) + 1 {
		c := 0.0
		if r.IntN(3) == 0 {
			c = r.Float64() * 100
		}
		h.Counts = append(h.Counts, c)
	}
	h.Counts[len(h.Counts)-1] = 0
	return h
}
