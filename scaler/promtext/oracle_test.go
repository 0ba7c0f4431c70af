package promtext

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// This file compares Scan with expfmt's TextParser. expfmt regroups samples into metric families, folding
// histogram and summary lines into one message per series, so both sides are brought to a flat form: one
// flat per sample, histogram and summary parts named <family>_bucket, <family>, <family>_sum and
// <family>_count, "le" and "quantile" normalized through a float. Scan's side is folded exactly as expfmt
// folds it (mimic), using the family types expfmt found, which is what makes the comparison exact.

// flat is one sample in comparable form.
type flat struct {
	name   string
	labels string // sorted, quoted: a="x",b="y"
	value  float64
	ts     int64
	hasTS  bool
}

func (f flat) String() string {
	s := fmt.Sprintf("%s{%s} %v", f.name, f.labels, f.value)
	if f.hasTS {
		s += fmt.Sprintf(" @%d", f.ts)
	}
	return s
}

// scanned is a Sample copied out of its callback.
type scanned struct {
	name   string
	labels []Label
	value  float64
	ts     int64
	hasTS  bool
}

// scanAll runs Scan and copies every sample, checking that the label accessors agree with each other.
func scanAll(data []byte, want func([]byte) bool) ([]scanned, error) {
	var out []scanned
	err := Scan(data, want, func(s *Sample) error {
		ls := s.Labels()
		if len(ls) != s.NumLabels() {
			return fmt.Errorf("Labels has %d labels, NumLabels says %d", len(ls), s.NumLabels())
		}
		for i, l := range ls {
			n, v := s.LabelAt(i)
			if string(n) != l.Name || string(v) != l.Value {
				return fmt.Errorf("LabelAt(%d) = %q=%q, Labels has %q=%q", i, n, v, l.Name, l.Value)
			}
			if got, ok := s.Label(l.Name); !ok || got != l.Value {
				return fmt.Errorf("Label(%q) = %q, %v; Labels has %q", l.Name, got, ok, l.Value)
			}
		}
		if _, ok := s.Label("no_such_label_anywhere"); ok {
			return fmt.Errorf("Label found a label that is not there")
		}
		out = append(out, scanned{string(s.Name), ls, s.Value, s.Timestamp, s.HasTimestamp})
		return nil
	})
	return out, err
}

func oracleParse(data []byte) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	return p.TextToMetricFamilies(bytes.NewReader(data))
}

// oracleFlat flattens expfmt's families.
func oracleFlat(fams map[string]*dto.MetricFamily) []flat {
	var out []flat
	for name, mf := range fams {
		for _, m := range mf.Metric {
			var ls []Label
			for _, lp := range m.Label {
				ls = append(ls, Label{lp.GetName(), lp.GetValue()})
			}
			plain := func(v float64) {
				out = append(out, flat{name, canon(ls), v, m.GetTimestampMs(), m.TimestampMs != nil})
			}
			part := func(suffix string, extra []Label, v float64) {
				out = append(out, flat{name: name + suffix, labels: canon(append(slices.Clone(ls), extra...)), value: v})
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				plain(m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				plain(m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				plain(m.GetUntyped().GetValue())
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				if s == nil {
					continue
				}
				for _, q := range s.Quantile {
					part("", []Label{{"quantile", fmtFloat(q.GetQuantile())}}, q.GetValue())
				}
				if s.SampleSum != nil {
					part("_sum", nil, s.GetSampleSum())
				}
				if s.SampleCount != nil {
					part("_count", nil, float64(s.GetSampleCount()))
				}
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				h := m.GetHistogram()
				if h == nil {
					continue
				}
				for _, b := range h.Bucket {
					v := float64(b.GetCumulativeCount())
					if b.CumulativeCountFloat != nil {
						v = b.GetCumulativeCountFloat()
					}
					part("_bucket", []Label{{"le", fmtFloat(b.GetUpperBound())}}, v)
				}
				if h.SampleSum != nil {
					part("_sum", nil, h.GetSampleSum())
				}
				switch {
				case h.SampleCountFloat != nil:
					part("_count", nil, h.GetSampleCountFloat())
				case h.SampleCount != nil:
					part("_count", nil, float64(h.GetSampleCount()))
				}
			}
		}
	}
	return out
}

// part says which piece of its family a sample line is, as expfmt's setOrCreateCurrentMF decides it.
type part int

const (
	partSelf part = iota // the family's own name: a plain sample, a quantile or a bucket
	partCount
	partSum
)

// route finds the family expfmt put a sample named n in. Looking at the final map is exact: once a line
// has gone to a summary or histogram base family, no family named n can be created later (HELP, TYPE and
// samples named n all go to the base), and families are only dropped when they got no sample.
func route(fams map[string]*dto.MetricFamily, n string) (string, *dto.MetricFamily, part) {
	if mf := fams[n]; mf != nil {
		return n, mf, partSelf
	}
	isCount := len(n) > 6 && strings.HasSuffix(n, "_count")
	isSum := len(n) > 4 && strings.HasSuffix(n, "_sum")
	p := partSelf
	base := n
	switch {
	case isCount:
		p, base = partCount, n[:len(n)-6]
	case isSum:
		p, base = partSum, n[:len(n)-4]
	case len(n) > 7 && strings.HasSuffix(n, "_bucket"):
		base = n[:len(n)-7]
	}
	if mf := fams[base]; mf != nil {
		switch mf.GetType() {
		case dto.MetricType_SUMMARY:
			if p != partSelf {
				return base, mf, p
			}
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			return base, mf, p
		}
	}
	return "", nil, 0
}

// series is the folded state of one summary or histogram series on Scan's side.
type series struct {
	name, labels  string
	summary       bool
	sum           float64
	hasSum        bool
	count         float64 // summary: last count, truncated like expfmt's uint64(value)
	hasCount      bool
	uintCount     float64 // histogram: last count that was a whole number (expfmt's SampleCount)
	hasUintCount  bool
	floatCount    float64 // histogram: last count that was not (expfmt's SampleCountFloat)
	hasFloatCount bool
	anyFloat      bool // some bucket or count was not a whole number: expfmt then reports all as floats
}

// mimic folds Scan's samples the way expfmt folds lines into families, and flattens them like oracleFlat.
func mimic(fams map[string]*dto.MetricFamily, samples []scanned) ([]flat, error) {
	var out []flat
	state := map[[2]string]*series{}
	for _, s := range samples {
		fam, mf, p := route(fams, s.name)
		if mf == nil {
			return nil, fmt.Errorf("sample %s has no family in expfmt's output", s.name)
		}
		typ := mf.GetType()
		if typ != dto.MetricType_SUMMARY && typ != dto.MetricType_HISTOGRAM && typ != dto.MetricType_GAUGE_HISTOGRAM {
			out = append(out, flat{s.name, canon(s.labels), s.value, s.ts, s.hasTS})
			continue
		}
		bound := "le"
		if typ == dto.MetricType_SUMMARY {
			bound = "quantile"
		}
		rest, bv, hasBound := split(s.labels, bound)
		var b float64
		if hasBound {
			var ok bool
			if b, ok = parseFloat([]byte(bv)); !ok {
				return nil, fmt.Errorf("%s: expfmt accepted %s=%q", s.name, bound, bv)
			}
		}
		key := [2]string{fam, canon(rest)}
		st := state[key]
		if st == nil {
			st = &series{name: fam, labels: key[1], summary: typ == dto.MetricType_SUMMARY}
			state[key] = st
		}
		whole := isWhole(s.value)
		switch {
		case p == partSum:
			st.sum, st.hasSum = s.value, true
		case p == partCount && st.summary:
			st.count, st.hasCount = float64(uint64(s.value)), true
		case p == partCount && whole:
			st.uintCount, st.hasUintCount = s.value, true
		case p == partCount:
			st.floatCount, st.hasFloatCount, st.anyFloat = s.value, true, true
		case !hasBound || math.IsNaN(b):
			// expfmt drops a summary or histogram line that is neither a part nor has a usable bound.
		case st.summary:
			out = append(out, flat{name: fam, labels: canon(append(slices.Clone(rest), Label{"quantile", fmtFloat(b)})), value: s.value})
		default:
			out = append(out, flat{name: fam + "_bucket", labels: canon(append(slices.Clone(rest), Label{"le", fmtFloat(b)})), value: s.value})
			st.anyFloat = st.anyFloat || !whole
		}
	}
	for _, st := range state {
		if st.hasSum {
			out = append(out, flat{name: st.name + "_sum", labels: st.labels, value: st.sum})
		}
		// normalizeHistogram turns every count into a float as soon as one is, inventing 0 for a missing
		// _count line.
		switch {
		case st.summary && st.hasCount:
			out = append(out, flat{name: st.name + "_count", labels: st.labels, value: st.count})
		case st.summary:
		case st.hasFloatCount:
			out = append(out, flat{name: st.name + "_count", labels: st.labels, value: st.floatCount})
		case st.hasUintCount:
			out = append(out, flat{name: st.name + "_count", labels: st.labels, value: st.uintCount})
		case st.anyFloat:
			out = append(out, flat{name: st.name + "_count", labels: st.labels, value: 0})
		}
	}
	return out, nil
}

// isWhole is expfmt's test for storing a histogram count as an integer.
func isWhole(v float64) bool {
	return v == float64(uint64(v))
}

// split removes the label called name and returns its value.
func split(ls []Label, name string) (rest []Label, value string, ok bool) {
	for _, l := range ls {
		if l.Name == name {
			value, ok = l.Value, true
			continue
		}
		rest = append(rest, l)
	}
	return rest, value, ok
}

func canon(ls []Label) string {
	ls = slices.Clone(ls)
	slices.SortFunc(ls, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	var sb strings.Builder
	for i, l := range ls {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(l.Name)
		sb.WriteByte('=')
		sb.WriteString(strconv.Quote(l.Value))
	}
	return sb.String()
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func cmpFlat(a, b flat) int {
	return cmp.Or(
		strings.Compare(a.name, b.name),
		strings.Compare(a.labels, b.labels),
		cmp.Compare(a.ts, b.ts),
		boolCmp(a.hasTS, b.hasTS),
		cmp.Compare(a.value, b.value), // NaN sorts first and equals NaN
	)
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// sameSamples fails t unless want and got hold the same samples, as multisets.
func sameSamples(t testing.TB, want, got []flat) {
	t.Helper()
	slices.SortFunc(want, cmpFlat)
	slices.SortFunc(got, cmpFlat)
	var missing, extra []flat
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch c := 0; {
		case i == len(want):
			extra = append(extra, got[j])
			j++
		case j == len(got):
			missing = append(missing, want[i])
			i++
		default:
			if c = cmpFlat(want[i], got[j]); c == 0 {
				i++
				j++
			} else if c < 0 {
				missing = append(missing, want[i])
				i++
			} else {
				extra = append(extra, got[j])
				j++
			}
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("Scan and expfmt disagree (%d samples from expfmt, %d from Scan)\nonly expfmt: %v\nonly Scan:   %v",
			len(want), len(got), head(missing), head(extra))
	}
}

func head(fs []flat) []flat {
	if len(fs) > 10 {
		return fs[:10]
	}
	return fs
}

// differential parses data with both and fails t if they disagree. Both must accept data.
func differential(t testing.TB, data []byte) int {
	t.Helper()
	fams, err := oracleParse(data)
	if err != nil {
		t.Fatalf("expfmt rejects the payload: %v", err)
	}
	got, err := scanAll(data, nil)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	folded, err := mimic(fams, got)
	if err != nil {
		t.Fatal(err)
	}
	want := oracleFlat(fams)
	sameSamples(t, want, folded)
	return len(got)
}
