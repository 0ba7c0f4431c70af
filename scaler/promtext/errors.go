package promtext

import (
	"fmt"
	"strconv"
)

// SyntaxError is a malformed line of the payload.
type SyntaxError struct {
	Line int    // 1-based
	Msg  string // what is wrong, quoting the offending text
	kind errKind
}

// Error implements error: "line 12: what is wrong".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// errKind tells the differential tests which rejections are deliberate departures from expfmt.
type errKind uint8

const (
	kindOther errKind = iota
	// kindUTF8Name: the UTF-8 name syntax expfmt accepts and format 0.0.4 does not have: quoted names
	// ("a" 1, a"b" 1, {"l"="v"}), a name inside the braces ({a} 1). This includes a label set with no name
	// at all ({l="v"} 1), which expfmt accepts by attaching the labels and value to the previous
	// line's metric.
	kindUTF8Name
	// kindDuplicateBound: a repeated "le" or "quantile" label, which expfmt lets through for histograms and
	// summaries (it keeps the last one) because it strips them before its duplicate check.
	kindDuplicateBound
)

func syntaxErrorf(line int, kind errKind, format string, args ...any) error {
	return &SyntaxError{Line: line, Msg: fmt.Sprintf(format, args...), kind: kind}
}

// quote quotes b for an error message, cut short: a bad line may be the whole 50 KB payload.
func quote(b []byte) string {
	const max = 40
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}
