package promtext

import (
	"bytes"
	"errors"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// FuzzScan checks Scan against expfmt: whatever expfmt accepts, Scan accepts with the same samples, except
// for the departures listed at errKind. Scan never panics, and a selective want yields exactly the
// selected subset of what a nil want yields.
func FuzzScan(f *testing.F) {
	for _, p := range trickyPayloads {
		f.Add([]byte(p))
	}
	for _, p := range realisticPayloads(f) {
		// A whole 50 KB fixture makes every execution slow; the first lines carry all its forms.
		cut := bytes.LastIndexByte(p[:min(len(p), 3000)], '\n')
		f.Add(p[:cut+1])
	}
	for _, p := range []string{"a 1", "a{b=\"c\\\"\"} 1 2\r\n", "{a} 1\n", "a 1\n{b=\"c\"} 2\n", "a\"b\" 1\n", "# TYPE h histogram\nh_bucket{le=\"1\",le=\"2\"} 1\n"} {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := scanAll(data, nil)
		if err == nil {
			checkSelection(t, data, got)
		}
		fams, oerr := oracleParseSafely(data)
		if oerr != nil {
			return // Scan is more lenient (see the package doc) and may accept what expfmt rejects.
		}
		if err != nil {
			var se *SyntaxError
			if errors.As(err, &se) && se.kind != kindOther {
				return // A deliberate departure from expfmt, documented at errKind.
			}
			t.Fatalf("expfmt accepts the payload, Scan says: %v", err)
		}
		folded, err := mimic(fams, got)
		if err != nil {
			t.Fatal(err)
		}
		sameSamples(t, oracleFlat(fams), folded)
		// expfmt accepts neither CRLF nor a last line without newline; Scan must read the same samples.
		lenient := bytes.TrimSuffix(bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n")), []byte("\r\n"))
		again, err := scanAll(lenient, nil)
		if err != nil {
			t.Fatalf("with CRLF and no final newline: %v", err)
		}
		if len(again) != len(got) {
			t.Fatalf("with CRLF and no final newline: %d samples, want %d", len(again), len(got))
		}
		for i := range got {
			if a, b := flatOf(again[i]), flatOf(got[i]); cmpFlat(a, b) != 0 {
				t.Fatalf("with CRLF and no final newline: sample %d is %v, want %v", i, a, b)
			}
		}
	})
}

// checkSelection scans again selecting names of even length only.
func checkSelection(t *testing.T, data []byte, all []scanned) {
	t.Helper()
	even := func(name []byte) bool { return len(name)%2 == 0 }
	sel, err := scanAll(data, even)
	if err != nil {
		t.Fatalf("Scan accepts the payload with want == nil, not with a selective want: %v", err)
	}
	var want []scanned
	for _, s := range all {
		if even([]byte(s.name)) {
			want = append(want, s)
		}
	}
	if len(sel) != len(want) {
		t.Fatalf("selective want: %d samples, want %d", len(sel), len(want))
	}
	for i := range sel {
		if a, b := flatOf(sel[i]), flatOf(want[i]); cmpFlat(a, b) != 0 {
			t.Fatalf("selective want: sample %d is %v, want %v", i, a, b)
		}
	}
}

// oracleParseSafely treats a panic of expfmt as a rejection: the oracle's bugs are not Scan's.
func oracleParseSafely(data []byte) (fams map[string]*dto.MetricFamily, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("expfmt panicked")
		}
	}()
	return oracleParse(data)
}
