package vram

import (
	"strings"
	"testing"

	"github.com/llm-d/llm-d/api/v1alpha1"
)

func svcWith(f func(*v1alpha1.LLMInferenceService)) *v1alpha1.LLMInferenceService {
	s := &v1alpha1.LLMInferenceService{Spec: v1alpha1.LLMInferenceServiceSpec{Model: v1alpha1.ModelSpec{ID: "org/model-8B"}}}
	f(s)
	return s
}

func TestEstimate(t *testing.T) {
	cases := []struct {
		id, params string
		args       []string
		wantParams float64
		wantGiB    float64 // per GPU, within 0.2
		fitsA10G   bool    // 23028 MiB
		fitsA100   bool    // 81920 MiB
	}{
		// The sample llama-3-8b, 8B bf16 with a 32k context on one A10G (22.5 GiB): 14.9 weights + 4.0 KV + 1.0
		// runtime = 19.9 GiB of the 20.2 GiB that --gpu-memory-utilization 0.9 allows. Tight, as in reality.
		{"meta-llama/Meta-Llama-3.1-8B-Instruct", "", []string{"--dtype=bfloat16", "--max-model-len=32768"}, 8e9, 19.9, true, true},
		{"meta-llama/Meta-Llama-3.1-8B-Instruct", "", []string{"--max-model-len=8192"}, 8e9, 16.9, true, true},
		{"meta-llama/Meta-Llama-3.1-70B-Instruct", "", []string{"--max-model-len=8192"}, 70e9, 133.9, false, false},
		{"meta-llama/Meta-Llama-3.1-70B-Instruct", "", []string{"--max-model-len=8192", "--tensor-parallel-size", "4"}, 70e9, 34.2, false, true},
		{"hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", "", []string{"--quantization=awq", "--max-model-len=8192"}, 70e9, 36.1, false, true},
		{"microsoft/Phi-3-mini-4k-instruct", "", []string{"--max-model-len=4096"}, 3.8e9, 9.6, true, true},
		{"org/custom", "13B", nil, 13e9, 26.2, false, true},
	}
	for _, tc := range cases {
		s := svcWith(func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Model.ID, s.Spec.Model.Parameters, s.Spec.Engine.Args = tc.id, tc.params, tc.args
		})
		v, ok := Estimate(s)
		if !ok || v.Parameters != tc.wantParams {
			t.Fatalf("%s: params %v ok %v", tc.id, v.Parameters, ok)
		}
		if got := float64(v.PerGPUBytes) / gib; got < tc.wantGiB-0.2 || got > tc.wantGiB+0.2 {
			t.Errorf("%s %v: %.1f GiB per GPU, want %.1f", tc.id, tc.args, got, tc.wantGiB)
		}
		if ok, msg := v.Fits(23028, "node a"); ok != tc.fitsA10G || (!ok && !strings.Contains(msg, "needs")) {
			t.Errorf("%s on A10G: fits %v (%s)", tc.id, ok, msg)
		}
		if ok, _ := v.Fits(81920, "node b"); ok != tc.fitsA100 {
			t.Errorf("%s on A100 80GB: fits %v", tc.id, ok)
		}
	}
	if _, ok := Estimate(svcWith(func(s *v1alpha1.LLMInferenceService) { s.Spec.Model.ID = "org/mystery" })); ok {
		t.Error("estimated a model of unknown size")
	}
}

// The node affinity's threshold agrees with Fits: the smallest GPU it lets a pod onto holds the model,
// and one MiB less does not.
func TestMinGPUMiBMatchesFits(t *testing.T) {
	for _, args := range [][]string{{"--max-model-len=8192"}, {"--max-model-len=32768", "--gpu-memory-utilization=0.95"}, {"--tensor-parallel-size=4"}} {
		v, ok := Estimate(svcWith(func(s *v1alpha1.LLMInferenceService) { s.Spec.Engine.Args = args }))
		if !ok {
			t.Fatal("no estimate")
		}
		m := v.MinGPUMiB()
		if fits, _ := v.Fits(m, "x"); !fits {
			t.Errorf("%v: %d MiB does not fit", args, m)
		}
		if fits, _ := v.Fits(m-1, "x"); fits {
			t.Errorf("%v: %d MiB fits too", args, m-1)
		}
	}
}
