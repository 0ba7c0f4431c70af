// Package promtext is a streaming, allocation-light scanner of the Prometheus text exposition format
// (version 0.0.4), for scrapers that need a handful of series out of a large payload.
//
// expfmt builds a protobuf MetricFamily for every series of the payload; a vLLM /metrics page is ~450
// samples of which a scaler needs ~5. Scan instead walks the bytes once, reads only the metric name of each
// line, and parses labels and value only when the caller wants that name. Names and label values are
// slices of the input; a Scan allocates once, plus buffer growth for lines with more than eight labels or
// with escaped label values.
//
// Scan accepts every payload expfmt's TextParser accepts (with legacy name validation) and yields the same
// samples, with two deliberate exceptions, both rejected: the UTF-8 name syntax of newer formats (quoted
// names, a name inside the braces) and a repeated "le" or "quantile" label. It is more lenient where a
// scraper benefits: "\r\n" line endings, a last line without newline, trailing blanks. Comment lines, HELP
// and TYPE included, are skipped unvalidated: Scan does not know metric types, and callers select series
// by their exact sample name (a histogram is its _bucket, _sum and _count series).
package promtext

import (
	"bytes"
)

// Sample is one sample line. Scan reuses one Sample for every callback: neither it nor any byte slice
// reachable from it (Name, LabelAt) may be kept after the callback returns. Copy what you need; Label and
// Labels return copies.
type Sample struct {
	// Name is the metric name, e.g. "vllm:num_requests_running" or "foo_bucket".
	Name []byte
	// Value is the sample value; NaN and ±Inf are legal.
	Value float64
	// Timestamp is in milliseconds since the epoch; meaningful only if HasTimestamp.
	Timestamp    int64
	HasTimestamp bool
	// Line is the 1-based line number of the sample in the payload, for error messages.
	Line int

	labels    []rawLabel
	labelsBuf [16]rawLabel // backs labels, so that common label sets cost no allocation
	scratch   []byte       // unescaped label values of the current line
}

// rawLabel holds slices of the input, or of Sample.scratch for a value that had escapes.
type rawLabel struct {
	name, value []byte
}

// Scan calls fn for every sample whose metric name satisfies want(name), in payload order. A nil want
// selects every sample. want must not retain name.
//
// Only wanted lines are fully validated: a line whose name is not wanted is skipped as soon as its name is
// read, so garbage after an unwanted name goes unnoticed. Comment lines (HELP, TYPE and others) are skipped
// without validation.
//
// Scan stops at the first malformed wanted line and returns a *SyntaxError carrying its line number, or at
// the first error fn returns, which it returns unchanged.
func Scan(data []byte, want func(name []byte) bool, fn func(s *Sample) error) error {
	s := &Sample{}
	s.labels = s.labelsBuf[:0]
	for lineNo := 1; len(data) > 0; lineNo++ {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		i := skipBlanks(line, 0)
		if i == len(line) || line[i] == '#' || (line[i] == '\r' && i == len(line)-1) {
			continue
		}
		start := i
		for i < len(line) && class[line[i]]&metricChar != 0 {
			i++
		}
		if i == start || class[line[start]]&digit != 0 {
			return startError(line[start:], lineNo)
		}
		if i < len(line) && line[i] == '"' {
			return syntaxErrorf(lineNo, kindUTF8Name, "quoted metric names are not supported, at %s", quote(line[start:]))
		}
		name := line[start:i]
		if want != nil && !want(name) {
			continue
		}
		if err := s.parse(line, name, i, lineNo); err != nil {
			return err
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

// startError explains why a line does not start with a metric name.
func startError(rest []byte, lineNo int) error {
	switch rest[0] {
	case '{':
		// expfmt reads "{name, l="v"} 1" and "{l="v"} 1" (the latter by attaching the labels to the previous
		// line's metric); neither is version 0.0.4 text.
		return syntaxErrorf(lineNo, kindUTF8Name, "line starts with '{': a metric name must come before the label set")
	case '"':
		return syntaxErrorf(lineNo, kindUTF8Name, "quoted metric names are not supported, at %s", quote(rest))
	}
	return syntaxErrorf(lineNo, kindOther, "expected a metric name, a comment or a blank line, found %s", quote(rest))
}

// parse reads the label set, value and timestamp that follow the metric name, which ends at line[i].
func (s *Sample) parse(line, name []byte, i, lineNo int) error {
	s.Name, s.Line = name, lineNo
	s.Value, s.Timestamp, s.HasTimestamp = 0, 0, false
	s.labels, s.scratch = s.labels[:0], s.scratch[:0]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	i = skipBlanks(line, i)
	if i < len(line) && line[i] == '{' {
		var err error
		if i, err = s.parseLabels(line, i+1); err != nil {
			return err
		}
		i = skipBlanks(line, i)
	}
	// Like expfmt, the value is whatever follows up to the next blank: "foo{a="b"}1" is valid.
	tok, i := token(line, i)
	if len(tok) == 0 {
		return syntaxErrorf(lineNo, kindOther, "metric %s has no value", quote(name))
	}
	v, ok := parseFloat(tok)
	if !ok {
		return syntaxErrorf(lineNo, kindOther, "metric %s: value %s is not a float", quote(name), quote(tok))
	}
	s.Value = v
	if tok, i = token(line, skipBlanks(line, i)); len(tok) == 0 {
		return nil
	}
	ts, ok := parseInt64(tok)
	if !ok {
		return syntaxErrorf(lineNo, kindOther, "metric %s: timestamp %s is not an integer number of milliseconds", quote(name), quote(tok))
	}
	s.Timestamp, s.HasTimestamp = ts, true
	if i = skipBlanks(line, i); i < len(line) {
		return syntaxErrorf(lineNo, kindOther, "metric %s: unexpected %s after the timestamp", quote(name), quote(line[i:]))
	}
	return nil
}

// token returns line[i:j], where j is the first blank at or after i (or the end), and j.
func token(line []byte, i int) ([]byte, int) {
	j := i
	for j < len(line) && line[j] != ' ' && line[j] != '\t' {
		j++
	}
	return line[i:j], j
}

func skipBlanks(line []byte, i int) int {
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	return i
}

const (
	metricChar = 1 << iota // [a-zA-Z0-9_:]
	labelChar              // [a-zA-Z0-9_]
	digit                  // [0-9]: not allowed first in a name
)

var class = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= '0' && c <= '9':
			t[c] = metricChar | labelChar | digit
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
			t[c] = metricChar | labelChar
		case c == ':':
			t[c] = metricChar
		}
	}
	return t
}()
