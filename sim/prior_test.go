package sim

import (
	"math"
	"testing"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/vllmsim"
)

// The scaler's capacity prior for Llama 3.1 8B on an A10G and an H100 is the replica preset the simulator
// runs, within 3 %: the presets round their derivations, and durations are whole nanoseconds.
func TestPriorMatchesPresets(t *testing.T) {
	llama := decision.Model{Parameters: 8.03e9, BytesPerParameter: 2, KVBytesPerToken: 131072, GPUs: 1}
	for _, tc := range []struct {
		product string
		preset  vllmsim.Params
	}{{"NVIDIA-A10G", vllmsim.A10GLlama8B()}, {"NVIDIA-H100-80GB-HBM3", vllmsim.H100Llama8B()}} {
		g, ok := decision.LookupGPU(tc.product)
		if !ok {
			t.Fatalf("%s unknown", tc.product)
		}
		got, want := decision.Prior(g, llama), Prior(tc.preset)
		for _, f := range []struct {
			name      string
			got, want float64
		}{
			{"prefill tokens/s", got.PrefillTPS, want.PrefillTPS},
			{"step base", got.StepBase.Seconds(), want.StepBase.Seconds()},
			{"step per sequence", got.StepPerSeq.Seconds(), want.StepPerSeq.Seconds()},
			{"step per context token", got.StepPerContextToken.Seconds(), want.StepPerContextToken.Seconds()},
			{"batched tokens", got.StepTokens, want.StepTokens},
			{"sequences", got.MaxSeqs, want.MaxSeqs},
			{"KV tokens", got.KVTokens, want.KVTokens},
		} {
			if math.Abs(f.got-f.want) > 0.03*f.want {
				t.Errorf("%s: %s %.4g, preset %.4g", tc.product, f.name, f.got, f.want)
			}
		}
	}
}
