// Package vram estimates what a served model needs of a GPU: its parameter count, weights and KV cache per
// token from the model id and vLLM's flags. The operator checks the need against the nodes' GPU memory; the
// scaler's capacity prior reads the same estimate.
package vram

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/llm-d/llm-d/api/v1alpha1"
)

const (
	gib = 1 << 30
	kib = 1 << 10
	// runtimeOverhead is what vLLM holds per GPU besides weights and KV cache: the peak activation of its
	// profiling run and CUDA graphs, ~1 GiB for an 8B model (vllmsim's A10G preset derives the same figure:
	// Llama 3.1 8B with --max-model-len=32768, as config/samples/llama-3-8b.yaml runs it, just fits a 24 GB A10G).
	runtimeOverhead = 1 * gib
	// defaultContext is assumed when --max-model-len is unset; the model's real window is usually larger,
	// which is why ConfigurationWarning asks for the flag.
	defaultContext = 8192
)

// VRAM is a service's estimated GPU memory need, per GPU of one replica.
type VRAM struct {
	Parameters      float64 // parameter count
	WeightsBytes    int64
	KVBytesPerToken int64
	ContextTokens   int64
	TensorParallel  int64
	// PerGPUBytes is (weights + KV cache of one --max-model-len sequence) / tensor parallel + overhead:
	// vLLM refuses to start when it cannot hold one full-length sequence.
	PerGPUBytes int64
	// Utilization is vLLM's --gpu-memory-utilization: the share of a GPU it may use.
	Utilization float64
}

var paramsInID = regexp.MustCompile(`(?i)(?:^|[-_/.])(\d+(?:\.\d+)?)([mbt])(?:$|[-_.])`)

// knownParameters covers popular models whose ids do not carry their size.
var knownParameters = map[string]float64{"phi-3-mini": 3.8e9, "phi-3.5-mini": 3.8e9, "phi-3-small": 7e9, "phi-3-medium": 14e9}

// parseParameters reads "8B", "3.8B", "70B", "500M".
func parseParameters(s string) (float64, bool) {
	m := paramsInID.FindStringSubmatch("-" + s + "-")
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	switch strings.ToLower(m[2]) {
	case "m":
		return v * 1e6, true
	case "b":
		return v * 1e9, true
	default:
		return v * 1e12, true
	}
}

// Estimate estimates a service's GPU memory from its parameter count (spec.model.parameters or the model
// id), dtype and quantization, --max-model-len and --tensor-parallel-size. ok is false when the parameter
// count is unknown.
func Estimate(svc *v1alpha1.LLMInferenceService) (v VRAM, ok bool) {
	id := strings.ToLower(svc.Spec.Model.ID)
	switch {
	case svc.Spec.Model.Parameters != "":
		v.Parameters, ok = parseParameters(svc.Spec.Model.Parameters)
	default:
		v.Parameters, ok = parseParameters(id)
		for name, p := range knownParameters {
			if !ok && strings.Contains(id, name) {
				v.Parameters, ok = p, true
			}
		}
	}
	if !ok {
		return v, false
	}
	args := svc.Spec.Engine.Args
	bytesPerParam := 2.0 // bf16 / fp16, vLLM's "auto" for these models
	switch ArgValue(args, "--dtype") {
	case "float32", "float":
		bytesPerParam = 4
	}
	switch q := ArgValue(args, "--quantization"); {
	case q == "fp8":
		bytesPerParam = 1
	case q != "": // awq, gptq, marlin and bitsandbytes variants are 4-bit
		bytesPerParam = 0.5
	}
	v.WeightsBytes = int64(v.Parameters * bytesPerParam)
	// KV cache per token = 2 (K and V) x layers x KV heads x head dim x bytes. Grouped-query models of
	// 7-13B (Llama 3 8B, Mistral 7B, Qwen 2.5 7B) hold 128 KiB in bf16, 70B ones 320 KiB; Phi-3-mini has no
	// GQA: 32 layers x 32 heads x 96 x 2 x 2 = 384 KiB.
	switch {
	case strings.Contains(id, "phi-3-mini") || strings.Contains(id, "phi-3.5-mini"):
		v.KVBytesPerToken = 384 * kib
	case v.Parameters >= 20e9:
		v.KVBytesPerToken = 320 * kib
	default:
		v.KVBytesPerToken = 128 * kib
	}
	if ArgValue(args, "--kv-cache-dtype") == "fp8" || strings.HasPrefix(ArgValue(args, "--kv-cache-dtype"), "fp8") {
		v.KVBytesPerToken /= 2
	}
	v.ContextTokens = defaultContext
	if n, err := strconv.ParseInt(ArgValue(args, "--max-model-len"), 10, 64); err == nil && n > 0 {
		v.ContextTokens = n
	}
	v.TensorParallel = 1
	if n, err := strconv.ParseInt(ArgValue(args, "--tensor-parallel-size"), 10, 64); err == nil && n > 0 {
		v.TensorParallel = n
	}
	v.Utilization = 0.9
	if u, err := strconv.ParseFloat(ArgValue(args, "--gpu-memory-utilization"), 64); err == nil && u > 0 && u <= 1 {
		v.Utilization = u
	}
	v.PerGPUBytes = (v.WeightsBytes+v.KVBytesPerToken*v.ContextTokens)/v.TensorParallel + runtimeOverhead
	return v, true
}

// Fits says whether the need fits a GPU of memMiB, and if not, a message with the numbers and what to do.
func (v VRAM) Fits(memMiB int64, where string) (bool, string) {
	if v.fitsBytes(memMiB) {
		return true, ""
	}
	usable := int64(float64(memMiB<<20) * v.Utilization)
	return false, fmt.Sprintf("needs %s per GPU (weights %s / tensor parallel %d + KV cache %s for %d tokens + %s runtime) "+
		"but %s offers %s (%d MiB x --gpu-memory-utilization %g): use a larger GPU, quantize, lower --max-model-len "+
		"or raise --tensor-parallel-size", GiB(v.PerGPUBytes), GiB(v.WeightsBytes), v.TensorParallel,
		GiB(v.KVBytesPerToken*v.ContextTokens/v.TensorParallel), v.ContextTokens, GiB(runtimeOverhead), where, GiB(usable), memMiB, v.Utilization)
}

// MinGPUMiB is the smallest nvidia.com/gpu.memory (MiB per GPU) that holds the need: Fits is true from
// there up.
func (v VRAM) MinGPUMiB() int64 {
	n := int64(float64(v.PerGPUBytes)/v.Utilization) >> 20
	for n > 0 && v.fitsBytes(n-1) {
		n--
	}
	for !v.fitsBytes(n) {
		n++
	}
	return n
}

func (v VRAM) fitsBytes(memMiB int64) bool {
	return v.PerGPUBytes <= int64(float64(memMiB<<20)*v.Utilization)
}

// GiB formats bytes as GiB with one decimal, as status shows them.
func GiB(b int64) string { return strconv.FormatFloat(float64(b)/gib, 'f', 1, 64) + "Gi" }

// ArgValue returns the value of a flag in either spelling (--flag=v or --flag v), "" when absent.
func ArgValue(args []string, name string) string {
	for i, a := range args {
		n, inline := FlagName(a)
		if n != name {
			continue
		}
		if inline {
			_, v, _ := strings.Cut(a, "=")
			return v
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// FlagName is a command-line token's flag name in vLLM's canonical spelling ("--max_model_len=8" is
// "--max-model-len"), and whether the token carries its value after "="; "" for a token that is no flag.
func FlagName(tok string) (name string, inline bool) {
	if !strings.HasPrefix(tok, "--") {
		return "", false
	}
	name, _, inline = strings.Cut(tok, "=")
	return "--" + strings.ReplaceAll(name[2:], "_", "-"), inline
}
