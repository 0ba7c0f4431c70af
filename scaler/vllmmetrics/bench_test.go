package vllmmetrics

import (
	"reflect"
	"testing"
)

// BenchmarkParse and BenchmarkExpfmt compute the same Snapshot from the same vLLM 0.11 payload; see
// docs/benchmarks/parse.md.
func BenchmarkParse(b *testing.B) {
	benchmark(b, Parse)
}

func BenchmarkExpfmt(b *testing.B) {
	benchmark(b, expfmtSnapshot)
}

func benchmark(b *testing.B, parse func([]byte) (Snapshot, error)) {
	data := readFixture(b, "vllm-0.11.txt")
	want := fixtures[0].want
	if got, err := parse(data); err != nil || !reflect.DeepEqual(got, want) {
		b.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
