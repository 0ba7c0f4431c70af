package promtext

import (
	"os"
	"testing"
)

// BenchmarkScan measures the scanner alone on the vLLM 0.11 fixture: "few" selects the five series a
// scaler reads (the rest of the lines cost only their name), "all" parses and validates every sample.
func BenchmarkScan(b *testing.B) {
	data, err := os.ReadFile("../vllmmetrics/testdata/vllm-0.11.txt")
	if err != nil {
		b.Fatal(err)
	}
	few := func(name []byte) bool {
		switch string(name) {
		case "vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
			"vllm:generation_tokens_total", "vllm:prompt_tokens_total":
			return true
		}
		return false
	}
	for _, bc := range []struct {
		name string
		want func([]byte) bool
		n    int
	}{{"few", few, 5}, {"all", nil, 402}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				err := Scan(data, bc.want, func(*Sample) error { n++; return nil })
				if err != nil || n != bc.n {
					b.Fatalf("%d samples, %v", n, err)
				}
			}
		})
	}
}
