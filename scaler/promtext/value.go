package promtext

import (
	"bytes"
	"strconv"
)

// parseFloat accepts what expfmt accepts: strconv.ParseFloat syntax (so also "NaN", "+Inf", "-Inf", "inf",
// exponents), minus hexadecimal mantissas and '_' digit separators, which are Go syntax, not the format's.
// Out-of-range values such as 1e999 are rejected, as in expfmt.
func parseFloat(b []byte) (float64, bool) {
	if bytes.ContainsAny(b, "pP_") {
		return 0, false
	}
	// The string conversion does not allocate: strconv does not let s escape.
	v, err := strconv.ParseFloat(string(b), 64)
	return v, err == nil
}

// parseInt64 is strconv.ParseInt(string(b), 10, 64) without the conversion: an optional sign and decimal
// digits, within the int64 range.
func parseInt64(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<63 {
			return 0, false
		}
	}
	if neg {
		return -int64(n), true // -(1<<63) wraps to itself: MinInt64
	}
	if n == 1<<63 {
		return 0, false
	}
	return int64(n), true
}
