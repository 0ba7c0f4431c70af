package promtext

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// trickyPayloads are accepted by expfmt; each stresses one corner of the format. They also seed FuzzScan.
var trickyPayloads = map[string]string{
	"help type comments blanks": `# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter

http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000
#
#   
# just a comment, with "quotes" and {braces}
   # indented comment
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9
`,
	"escapes and separators in values": `# TYPE m gauge
m{a="x\\y\"z\nw",b="commas, and } braces {",c="a=b",d=""} 1
m{a="\\\\",b="\"",c="\n",d="ünïcödé ☃"} 2
m{a="trailing backslash\\"} 3
`,
	"trailing comma and whitespace": `# TYPE g gauge
g{a="1",} 1
g{ a = "2" , b="x" , } 2
g   {a="3"}   3
g{a="4"}	4	-17
	g{a="5"} 5
g{} 6
g{a="7"}7
g 8
`,
	"float syntax": `# TYPE v untyped
v{i="1"} 1.5e+06
v{i="2"} -2E-3
v{i="3"} NaN
v{i="4"} +Inf
v{i="5"} -Inf
v{i="6"} -0
v{i="7"} .5
v{i="8"} 5.
v{i="9"} 1e-320
v{i="10"} 0001
v{i="11"} +3
v{i="12"} nan
v{i="13"} inf
v{i="14"} -Infinity
v{i="15"} 1.7976931348623157e308
v{i="19"} 4.9e-324
v{i="16"} 1 -9223372036854775808
v{i="17"} 1 +9223372036854775807
v{i="18"} 1 007
`,
	"histogram": `# HELP rpc_duration_seconds A histogram of the request duration.
# TYPE rpc_duration_seconds histogram
rpc_duration_seconds_bucket{le="0.05"} 24054
rpc_duration_seconds_bucket{le="0.1"} 33444
rpc_duration_seconds_bucket{le="0.2"} 100392
rpc_duration_seconds_bucket{le="0.5"} 129389
rpc_duration_seconds_bucket{le="1.0"} 133988
rpc_duration_seconds_bucket{le="+Inf"} 144320
rpc_duration_seconds_sum 53423
rpc_duration_seconds_count 144320
rpc_duration_seconds_bucket{code="500",le="1e-3"} 1
rpc_duration_seconds_bucket{le="+Inf",code="500"} 2
rpc_duration_seconds_count{code="500"} 2
rpc_duration_seconds_sum{code="500"} 0.25
# HELP rpc_duration_seconds_created created
# TYPE rpc_duration_seconds_created gauge
rpc_duration_seconds_created 1.7364178837954564e+09
`,
	"histogram with float counts and odd parts": `# TYPE h histogram
h_bucket{le="1"} 0.5
h_bucket{le="+Inf"} 1.5
h_sum 3
h{le="2"} 7
h_bucket 9
h_bucket{le="NaN"} 10
h_count{le="5",x="y"} 4
h_sum{x="y"} 1
h_count{x="z"} 1.25
h_count{x="z"} 2
# TYPE h2 gaugehistogram
h2_bucket{le="10"} 1
h2_count 1
`,
	"summary": `# TYPE s summary
s{quantile="0.5"} 4773
s{quantile="0.9"} 9001
s{quantile="0.99"} 76656
s_sum 1.7560473e+07
s_count 2693
s_count{a="b"} 2.9
s_sum{quantile="0.5",a="b"} 1
s{a="b"} 42
s{quantile="NaN"} 5
s_bucket{le="1"} 2
`,
	"families by suffix": `# TYPE x counter
x_total 1
x_count 2
x_sum 3
x_bucket{le="1"} 4
# HELP y_count help before the base family
y_count 5
# TYPE y summary
y_count 6
# TYPE z_count histogram
z_count{le="1"} 7
z_count_count 8
z_count 9
le_on_gauge{le="abc",quantile="xyz"} 10
`,
	"duplicates kept": `c 1
c 1
c{a="1"} 2
c{a="1"} 3 5
_:a:b_ 4
:colon 5
A_Z09 6
`,
	// expfmt ends a name at the first byte that cannot be in one, and reads the value from there.
	"value glued to the name": `foo+1
bar-2.5
baz.5
qux{a="b"}3
`,
	"no value after HELP name": `# HELP
# TYPE
# HELP lonely
# TYPE lonely2
# SOMETHING else entirely
lonely 1
lonely2 2
`,
}

func TestDifferentialTricky(t *testing.T) {
	for name, p := range trickyPayloads {
		t.Run(name, func(t *testing.T) {
			if n := differential(t, []byte(p)); n == 0 {
				t.Fatal("no samples")
			}
		})
	}
}

// realisticPayloads are the vLLM fixtures of the vllmmetrics package.
func realisticPayloads(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("../vllmmetrics/testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no vLLM fixtures found: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestDifferentialVLLM(t *testing.T) {
	for name, p := range realisticPayloads(t) {
		t.Run(name, func(t *testing.T) {
			if n := differential(t, p); n < 100 {
				t.Fatalf("only %d samples: is the fixture realistic?", n)
			}
		})
	}
}

// TestLenientForms checks what Scan accepts beyond expfmt: it must read the same samples as from the
// strict form of the payload.
func TestLenientForms(t *testing.T) {
	forms := map[string]func([]byte) []byte{
		"CRLF":             func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) },
		"no final newline": func(b []byte) []byte { return bytes.TrimSuffix(b, []byte("\n")) },
		"CRLF no final": func(b []byte) []byte {
			return bytes.TrimSuffix(bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")), []byte("\r\n"))
		},
		"trailing blanks":     func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte(" \t \n")) },
		"CRLF after blanks":   func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte(" \r\n")) },
		"final comment no NL": func(b []byte) []byte { return append(bytes.Clone(b), "# the end"...) },
	}
	for name, p := range trickyPayloads {
		strict, err := scanAll([]byte(p), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for form, f := range forms {
			t.Run(name+"/"+form, func(t *testing.T) {
				got, err := scanAll(f([]byte(p)), nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(strict) {
					t.Fatalf("%d samples, want %d", len(got), len(strict))
				}
				for i := range got {
					a, b := flatOf(got[i]), flatOf(strict[i])
					if cmpFlat(a, b) != 0 {
						t.Fatalf("sample %d: %v, want %v", i, a, b)
					}
				}
			})
		}
	}
}

func flatOf(s scanned) flat { return flat{s.name, canon(s.labels), s.value, s.ts, s.hasTS} }

// TestDeparturesFromExpfmt pins the inputs FuzzScan lets Scan reject although expfmt accepts them, so
// that the skip there stays narrow and a change of expfmt shows up here.
func TestDeparturesFromExpfmt(t *testing.T) {
	for payload, kind := range map[string]errKind{
		"a 1\n{x=\"y\"} 2\n": kindUTF8Name, // expfmt: a{x="y"} 2, twice, and a 1 is lost
		"{a} 1\n":            kindUTF8Name,
		"{a,x=\"y\"} 1\n":    kindUTF8Name,
		"\"a\" 1\n":          kindUTF8Name,
		"a\"b\" 1\n":         kindUTF8Name, // expfmt: ab 1
		"a{\"x\"=\"y\"} 1\n": kindUTF8Name,
		"# TYPE h histogram\nh_bucket{le=\"1\",le=\"2\"} 1\n":      kindDuplicateBound,
		"# TYPE s summary\ns{quantile=\"1\",quantile=\"0.5\"} 1\n": kindDuplicateBound,
	} {
		if _, err := oracleParse([]byte(payload)); err != nil {
			t.Errorf("%q: expfmt now rejects it (%v): drop the departure", payload, err)
		}
		_, err := scanAll([]byte(payload), nil)
		var se *SyntaxError
		if !errors.As(err, &se) || se.kind != kind {
			t.Errorf("%q: Scan says %v, want a syntax error of kind %d", payload, err, kind)
		}
	}
}
