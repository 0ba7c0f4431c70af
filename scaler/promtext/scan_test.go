package promtext

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestScanExplicit(t *testing.T) {
	payload := "# HELP a_total help with } and \"\n" +
		"# TYPE a_total counter\r\n" +
		"a_total{path=\"C:\\\\x\",msg=\"say \\\"hi\\\"\\n\",sep=\",}=\",} 1.5e+06 1700000000000\r\n" +
		"\r\n" +
		"  \t\n" +
		"b -2E-3\n" +
		"c{x=\"1\"} NaN\n" +
		"c{x=\"2\"}\t+Inf\n" +
		"c { x = \"3\" , } -Inf  -42  \n" +
		"d{} 7"
	want := []struct {
		name   string
		labels string
		value  float64
		ts     int64
		hasTS  bool
		line   int
	}{
		{"a_total", `msg="say \"hi\"\n",path="C:\\x",sep=",}="`, 1.5e6, 1700000000000, true, 3},
		{"b", ``, -2e-3, 0, false, 6},
		{"c", `x="1"`, math.NaN(), 0, false, 7},
		{"c", `x="2"`, math.Inf(1), 0, false, 8},
		{"c", `x="3"`, math.Inf(-1), -42, true, 9},
		{"d", ``, 7, 0, false, 10},
	}
	var lines []int
	err := Scan([]byte(payload), nil, func(s *Sample) error {
		lines = append(lines, s.Line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := scanAll([]byte(payload), nil)
	if len(got) != len(want) {
		t.Fatalf("got %d samples, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.name != w.name || canon(g.labels) != w.labels || cmpFlat(flat{value: g.value}, flat{value: w.value}) != 0 ||
			g.ts != w.ts || g.hasTS != w.hasTS || lines[i] != w.line {
			t.Errorf("sample %d: got %s{%s} %v ts=%d,%v line %d; want %s{%s} %v ts=%d,%v line %d", i,
				g.name, canon(g.labels), g.value, g.ts, g.hasTS, lines[i], w.name, w.labels, w.value, w.ts, w.hasTS, w.line)
		}
	}
}

func TestScanWantExactNames(t *testing.T) {
	payload := `# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0"} 3
vllm:num_requests_waiting_by_reason{reason="capacity"} 100
vllm:num_requests_waitingX 100
vllm:num_requests_waitin 100
vllm:num_requests_waiting{engine="1"} 4
vllm:num_requests_running garbage that is never looked at {
`
	var sum float64
	var seen []string
	err := Scan([]byte(payload), func(name []byte) bool {
		seen = append(seen, string(name))
		return string(name) == "vllm:num_requests_waiting"
	}, func(s *Sample) error {
		sum += s.Value
		return nil
	})
	if err != nil {
		t.Fatalf("an unwanted line must not be validated: %v", err)
	}
	if sum != 7 {
		t.Errorf("sum = %v, want 7", sum)
	}
	wantSeen := "vllm:num_requests_waiting vllm:num_requests_waiting_by_reason vllm:num_requests_waitingX " +
		"vllm:num_requests_waitin vllm:num_requests_waiting vllm:num_requests_running"
	if got := strings.Join(seen, " "); got != wantSeen {
		t.Errorf("want was asked about\n%s\nwant\n%s", got, wantSeen)
	}
}

func TestScanCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := Scan([]byte("a 1\nb 2\nc 3\n"), nil, func(s *Sample) error {
		n++
		if string(s.Name) == "b" {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Fatalf("err = %v after %d samples; want the callback's error, unchanged, after 2", err, n)
	}
}

func TestScanErrors(t *testing.T) {
	cases := []struct {
		payload string
		line    int
		msg     string
		kind    errKind
	}{
		{"ok 1\n1abc 2\n", 2, `expected a metric name, a comment or a blank line, found "1abc 2"`, kindOther},
		{"ok 1\n\n-x 2\n", 3, `found "-x 2"`, kindOther},
		{"ok 1\nfoo\n", 2, `metric "foo" has no value`, kindOther},
		{"foo{a=\"b\"}\n", 1, `metric "foo" has no value`, kindOther},
		{"foo abc\n", 1, `value "abc" is not a float`, kindOther},
		{"foo 0x1p3\n", 1, `value "0x1p3" is not a float`, kindOther},
		{"foo 1_000\n", 1, `value "1_000" is not a float`, kindOther},
		{"foo 1e999\n", 1, `value "1e999" is not a float`, kindOther},
		{"foo 1\r2\n", 1, `value "1\r2" is not a float`, kindOther},
		{"foo 1 1.5\n", 1, `timestamp "1.5" is not an integer`, kindOther},
		{"foo 1 9223372036854775808\n", 1, `timestamp "9223372036854775808" is not an integer`, kindOther},
		{"foo 1 2 3\n", 1, `unexpected "3" after the timestamp`, kindOther},
		{"foo{a=\"b\" 1\n", 1, `expected ',' or '}' after the value of label "a", found "1"`, kindOther},
		{"foo{a=\"b\",\n", 1, `label set is not closed with '}'`, kindOther},
		{"foo{a=\"b\n", 1, `value of label "a" is not closed`, kindOther},
		{"foo{a=\"b\\\n", 1, `value of label "a" is not closed`, kindOther},
		{"foo{a=\"b\\t\"} 1\n", 1, `invalid escape sequence "\\t" in the value of label "a"`, kindOther},
		{"foo{a=b} 1\n", 1, `expected '"' to open the value of label "a", found "b} 1"`, kindOther},
		{"foo{a} 1\n", 1, `expected '=' after label name "a", found "} 1"`, kindOther},
		{"foo{,} 1\n", 1, `expected a label name or '}', found ",} 1"`, kindOther},
		{"foo{1a=\"x\"} 1\n", 1, `expected a label name or '}', found "1a=`, kindOther},
		{"foo{a:b=\"x\"} 1\n", 1, `expected '=' after label name "a", found ":b=`, kindOther},
		{"foo{a=\"1\",a=\"2\"} 1\n", 1, `metric "foo" has label "a" twice`, kindOther},
		{"foo{__name__=\"x\"} 1\n", 1, `label name __name__ is reserved`, kindOther},
		{"x_bucket{le=\"1\",le=\"2\"} 1\n", 1, `has label "le" twice`, kindDuplicateBound},
		{"{foo} 1\n", 1, `line starts with '{'`, kindUTF8Name},
		{"a 1\n{x=\"y\"} 1\n", 2, `line starts with '{'`, kindUTF8Name},
		{"\"foo\" 1\n", 1, `quoted metric names are not supported`, kindUTF8Name},
		{"foo\"bar\" 1\n", 1, `quoted metric names are not supported`, kindUTF8Name},
		{"foo{\"a\"=\"x\"} 1\n", 1, `quoted label names are not supported`, kindUTF8Name},
		{"foo{a\"b\"=\"x\"} 1\n", 1, `quoted label names are not supported`, kindUTF8Name},
		{"foo 1\n\x00\n", 2, `found "\x00"`, kindOther},
		{"foo " + strings.Repeat("9", 100) + "x\n", 1, `value "9999999999999999999999999999999999999999"... is not a float`, kindOther},
	}
	for _, c := range cases {
		t.Run(strconv.Quote(c.payload), func(t *testing.T) {
			err := Scan([]byte(c.payload), nil, func(*Sample) error { return nil })
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *SyntaxError", err)
			}
			if se.Line != c.line || !strings.Contains(se.Msg, c.msg) || se.kind != c.kind {
				t.Fatalf("got line %d kind %d %q; want line %d kind %d, message containing %q", se.Line, se.kind, se.Msg, c.line, c.kind, c.msg)
			}
			if want := "line " + strconv.Itoa(c.line) + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q, want it to start with %q", err.Error(), want)
			}
		})
	}
}

func TestParseInt64MatchesStrconv(t *testing.T) {
	for _, s := range []string{"0", "-0", "+0", "7", "-7", "+7", "007", "9223372036854775807", "9223372036854775808",
		"-9223372036854775808", "-9223372036854775809", "92233720368547758070", "18446744073709551616", "",
		"+", "-", "1_0", "0x10", "1e3", " 1", "1 ", "--1", "+-1", "١"} {
		want, err := strconv.ParseInt(s, 10, 64)
		got, ok := parseInt64([]byte(s))
		if ok != (err == nil) || (ok && got != want) {
			t.Errorf("parseInt64(%q) = %d, %v; strconv says %d, %v", s, got, ok, want, err)
		}
	}
}

// TestScanAllocs pins the claim of the package doc: selecting a few series costs a constant handful of
// allocations, however large the payload.
func TestScanAllocs(t *testing.T) {
	var sb strings.Builder
	for i := 0; i < 500; i++ {
		sb.WriteString("# HELP unwanted_bucket help\nunwanted_bucket{model_name=\"m\",le=\"" + strconv.Itoa(i) + "\"} 1.0\n")
		sb.WriteString("wanted{model_name=\"m\",engine=\"" + strconv.Itoa(i%2) + "\"} 2.5e+00 17\n")
	}
	data := []byte(sb.String())
	var sum float64
	allocs := testing.AllocsPerRun(20, func() {
		sum = 0
		err := Scan(data, func(n []byte) bool { return string(n) == "wanted" }, func(s *Sample) error {
			if _, v := s.LabelAt(1); len(v) == 1 {
				sum += s.Value
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if sum != 500*2.5 {
		t.Fatalf("sum = %v", sum)
	}

	if allocs > 1 {
		t.Errorf("%v allocations per Scan, want 1", allocs)
	}
}
