package decision

import "strings"

// The capacity prior: what a pod of a given model on a given GPU should do, before its pods show what they do
// (calibration.go). A decode step reads every weight once (memory-bound: weight bytes / bandwidth, plus the
// engine's per-step overhead), each decoding sequence adds its token's matrix work (2 FLOPs per parameter
// at the GPU's achieved decode throughput) and reads its context's keys and values (KV bytes per token /
// bandwidth), and prefill runs at the GPU's achieved prefill throughput. Tensor parallelism divides the
// work over the replica's GPUs. vLLM's scheduler defaults follow the GPU's memory (EngineArgs: 8,192
// batched tokens and 1,024 sequences from 70 GiB, else 2,048 and 256).
//
// The achieved fractions of peak and the per-step overhead come from the two GPUs the simulator's replica
// presets model (vllmsim.A10GLlama8B and vllmsim.H100Llama8B, whose comments give their sources): GDDR
// GPUs take the A10G's, HBM GPUs the H100's. For those two GPUs and Llama 3.1 8B the prior is the preset
// (sim's TestPriorMatchesPresets); for the others it is an extrapolation by their data sheets.

// GPU is one GPU model's data sheet.
type GPU struct {
	// Product is the substring of GPU feature discovery's nvidia.com/gpu.product label that names it.
	Product string
	// Bandwidth is the memory bandwidth in bytes/s, FLOPS the dense bf16 tensor throughput.
	Bandwidth, FLOPS float64
	// MemoryGiB is the memory CUDA sees.
	MemoryGiB float64
	// HBM says whether it is an HBM (datacenter) part; else GDDR.
	HBM bool
}

// gpus lists the GPUs the prior knows, more specific product names first.
var gpus = []GPU{
	{Product: "H100-NVL", Bandwidth: 3.9e12, FLOPS: 835e12, MemoryGiB: 93.0, HBM: true},
	{Product: "H100-PCIE", Bandwidth: 2.0e12, FLOPS: 756e12, MemoryGiB: 79.6, HBM: true},
	{Product: "H100", Bandwidth: 3.35e12, FLOPS: 989e12, MemoryGiB: 79.6, HBM: true},
	{Product: "H200", Bandwidth: 4.8e12, FLOPS: 989e12, MemoryGiB: 139.8, HBM: true},
	{Product: "B200", Bandwidth: 8.0e12, FLOPS: 2250e12, MemoryGiB: 178.4, HBM: true},
	{Product: "A100-SXM4-40GB", Bandwidth: 1.555e12, FLOPS: 312e12, MemoryGiB: 39.4, HBM: true},
	{Product: "A100-PCIE-40GB", Bandwidth: 1.555e12, FLOPS: 312e12, MemoryGiB: 39.4, HBM: true},
	{Product: "A100", Bandwidth: 2.039e12, FLOPS: 312e12, MemoryGiB: 79.2, HBM: true},
	{Product: "L40S", Bandwidth: 864e9, FLOPS: 362e12, MemoryGiB: 44.5},
	{Product: "L4", Bandwidth: 300e9, FLOPS: 121e12, MemoryGiB: 22.0},
	{Product: "A10G", Bandwidth: 600e9, FLOPS: 125e12, MemoryGiB: 22.49},
}

// DefaultGPU is the prior's GPU when the nodes do not say theirs: the slowest common datacenter GPU, so the
// prior errs towards more pods until calibration (from saturated pods) measures the real speed.
var DefaultGPU = gpus[len(gpus)-1]

// LookupGPU finds the GPU a node's nvidia.com/gpu.product label names (for example "NVIDIA-A10G" or
// "NVIDIA-H100-80GB-HBM3"), case-insensitively.
func LookupGPU(product string) (GPU, bool) {
	p := strings.ToUpper(product)
	for _, g := range gpus {
		if strings.Contains(p, g.Product) {
			return g, true
		}
	}
	return GPU{}, false
}

// Model is what the prior needs to know of the served model.
type Model struct {
	// Parameters is the parameter count; BytesPerParameter 2 for bf16.
	Parameters, BytesPerParameter float64
	// KVBytesPerToken is the KV cache one token takes, summed over layers.
	KVBytesPerToken float64
	// GPUs is the GPUs of one replica (tensor parallelism).
	GPUs int
}

// The two calibrated classes (see the presets' comments): per-step overhead and the achieved fractions of
// peak, from A10G 28 ms / 0.3 ms / 6,000 tokens/s and H100 7 ms / 50 µs / 30,000 tokens/s for 8.03e9
// parameters.
var (
	refFLOPsPerToken = 2 * 8.03e9
	gddrClass        = class{overhead: 28e-3 - 2*8.03e9/600e9, decode: refFLOPsPerToken / 300e-6 / 125e12, prefill: 6000 * refFLOPsPerToken / 125e12}
	hbmClass         = class{overhead: 7e-3 - 2*8.03e9/3.35e12, decode: refFLOPsPerToken / 50e-6 / 989e12, prefill: 30000 * refFLOPsPerToken / 989e12}
)

type class struct{ overhead, decode, prefill float64 }

// Prior is the capacity prior of model on gpu; the KV cache's size is an estimate the pods' own report
// replaces.
func Prior(g GPU, m Model) Capacity {
	k := gddrClass
	if g.HBM {
		k = hbmClass
	}
	n := float64(max(m.GPUs, 1))
	bpp := m.BytesPerParameter
	if bpp == 0 {
		bpp = 2
	}
	bw, flops := g.Bandwidth*n, g.FLOPS*n
	weights := m.Parameters * bpp
	c := Capacity{
		PrefillTPS:          flops * k.prefill / (2 * m.Parameters),
		StepBase:            seconds(weights/bw + k.overhead),
		StepPerSeq:          seconds(2 * m.Parameters / (flops * k.decode)),
		StepPerContextToken: seconds(m.KVBytesPerToken / bw),
		StepTokens:          2048, MaxSeqs: 256,
	}
	if g.MemoryGiB >= 70 {
		c.StepTokens, c.MaxSeqs = 8192, 1024
	}
	// vLLM's default --gpu-memory-utilization 0.9, less the weights and ~1.2 GiB of activations and graphs.
	free := n*g.MemoryGiB*0.9*(1<<30) - weights - n*1.2*(1<<30)
	c.KVTokens = max(free/m.KVBytesPerToken, 1)
	return c
}
