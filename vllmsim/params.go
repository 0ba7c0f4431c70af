package vllmsim

import (
	"errors"
	"fmt"
	"time"
)

// Params describes one vLLM replica: the scheduler limits vLLM is started with and a cost model of the GPU's
// forward pass. The presets document where each number comes from; the zero value is invalid.
//
// The duration of one engine iteration (one forward pass over the scheduled batch) is
//
//	IterationBase + DecodePerSeq·(decoding sequences) + DecodePerContextToken·(their context tokens)
//	             + (prefill tokens) / PrefillTokensPerSec
//
// IterationBase is what a batch of one costs: every decode step reads all weights from HBM, so small
// batches are memory-bound and cost about the same. The per-sequence term is the compute each extra
// sequence adds, the per-context-token term is attention reading each sequence's KV cache, and prefill is
// compute-bound at a fixed token rate.
type Params struct {
	// MaxNumSeqs is vLLM's --max-num-seqs: at most this many requests run (are in the batch) at once.
	MaxNumSeqs int
	// MaxNumBatchedTokens is vLLM's --max-num-batched-tokens: the token budget of one iteration. Every
	// decoding sequence takes one token of it and prompts are prefilled in chunks of what is left (vLLM V1
	// always uses chunked prefill), so a long prompt takes several iterations. vLLM requires it to be at
	// least MaxNumSeqs.
	MaxNumBatchedTokens int
	// KVCacheTokens is the KV-cache capacity in tokens: the "GPU KV cache size: N tokens" vLLM logs at
	// startup. It is allocated in blocks of BlockSize tokens; a remainder smaller than a block is unused.
	KVCacheTokens int
	// BlockSize is vLLM's --block-size (default 16): the KV cache is allocated per block, so a request
	// holding n tokens occupies ceil(n/BlockSize) blocks and kv_cache_usage_perc counts blocks.
	BlockSize int
	// IterationBase is the fixed cost of one forward pass, whatever the batch.
	IterationBase time.Duration
	// DecodePerSeq is the cost each decoding sequence adds to an iteration.
	DecodePerSeq time.Duration
	// DecodePerContextToken is the attention cost of one token of a decoding sequence's context (prompt and
	// output so far): reading its keys and values from HBM.
	DecodePerContextToken time.Duration
	// PrefillTokensPerSec is the prompt-processing rate; integral so that the model is exact integer math.
	PrefillTokensPerSec int
	// StartupDelay is how long after the replica is created it becomes ready (vLLM's /health turns 200):
	// loading weights, profiling memory, compiling and capturing CUDA graphs. Requests submitted before
	// wait.
	StartupDelay time.Duration
}

// Llama-3.1-8B in bf16: 8.03e9 parameters × 2 bytes ≈ 16.06 GB (14.96 GiB) of weights, and a KV cache of
// 32 layers × 8 KV heads × 128 dims × 2 (K and V) × 2 bytes = 131,072 bytes (128 KiB) per token.
// 2 × 8.03e9 ≈ 16 GFLOP per generated or prefilled token.

// A10GLlama8B models vLLM's OpenAI server with Llama-3.1-8B-Instruct (bf16) on one NVIDIA A10G (AWS g5,
// 24 GB GDDR6, 600 GB/s), --max-model-len=32768 and the default --gpu-memory-utilization=0.9.
//
//   - MaxNumSeqs 256, MaxNumBatchedTokens 2048: vLLM V1's defaults for the OpenAI server on GPUs with
//     less than 70 GiB (EngineArgs.get_batch_defaults); H100-class GPUs get 1024 and 8192.
//   - KVCacheTokens 33,600: the A10G shows 22.49 GiB to CUDA (23,028 MiB); 0.9 of it is 20.24 GiB, less
//     14.96 GiB of weights and ~1.2 GiB of activation peak, CUDA graphs and non-torch memory measured in
//     vLLM's profiling run leaves ~4.1 GiB, i.e. ~33,000 tokens at 128 KiB; we use 2,100 blocks of 16.
//     (The back-of-envelope (24 GB × 0.9 − 16 GB − 1 GB) / 128 KiB ≈ 35–40k uses the nominal 24 GB and
//     no graph memory.) It is above 32,768, as vLLM requires to start with that --max-model-len.
//   - IterationBase 28 ms: a decode step must stream all 16.06 GB of weights, 26.8 ms at 600 GB/s, plus
//     ~1 ms of scheduling, sampling and detokenisation; single-stream decode on an A10G is ~35 tok/s.
//   - DecodePerSeq 0.3 ms: calibrated, not derived. It lumps each token's GEMM work (16 GFLOP, at
//     ~50 TFLOPS achieved) with sampling and per-sequence overhead, and is chosen so that a batch of 64
//     chat requests (~430 tokens of context each, near the cache limit) decodes ~1,200 tok/s between
//     prefills, inside the 1,000–1,500 tok/s that A10G serving benchmarks of 7–8B models report at
//     saturation; 256 short requests reach ~2,400 tok/s. Prefill (and recomputing preempted requests)
//     comes out of that: an overloaded replica serving 500-token prompts and 250-token answers decodes
//     ~650 tok/s overall, 2.8 requests/s.
//   - DecodePerContextToken 220 ns: 128 KiB of keys and values per context token read at 600 GB/s; a
//     full cache (33,600 tokens) adds 7.4 ms per step.
//   - PrefillTokensPerSec 6,000: an assumption in the middle of the 5–8k prompt tok/s usually quoted for
//     7–8B models on an A10G (a 2,048-token prompt alone: TTFT ~0.37 s). Prefill is compute-bound, so it
//     does not depend on the batch.
//   - StartupDelay 90 s: an assumption for a pod whose weights are already in its model cache: ~30 s to
//     read 15 GiB of safetensors, ~40–60 s of torch.compile, memory profiling and CUDA-graph capture.
//     Image pull and scheduling are not included.
func A10GLlama8B() Params {
	return Params{
		MaxNumSeqs:            256,
		MaxNumBatchedTokens:   2048,
		KVCacheTokens:         33_600,
		BlockSize:             16,
		IterationBase:         28 * time.Millisecond,
		DecodePerSeq:          300 * time.Microsecond,
		DecodePerContextToken: 220 * time.Nanosecond,
		PrefillTokensPerSec:   6_000,
		StartupDelay:          90 * time.Second,
	}
}

// H100Llama8B models the same server on one NVIDIA H100 SXM (80 GB HBM3, 3.35 TB/s, ~990 TFLOPS dense
// bf16) with --max-model-len=32768 and --gpu-memory-utilization=0.9.
//
//   - MaxNumSeqs 1024, MaxNumBatchedTokens 8192: vLLM V1's OpenAI-server defaults for GPUs with at least
//     70 GiB that are not A100s.
//   - KVCacheTokens 450,000: 79.6 GiB visible × 0.9 = 71.6 GiB, less 14.96 GiB of weights and ~2.5 GiB of
//     profiling peak at 8,192 batched tokens and CUDA graphs, leaves ~54 GiB ≈ 440–460k tokens at
//     128 KiB; 28,125 blocks of 16.
//   - IterationBase 7 ms: 16.06 GB of weights at 3.35 TB/s is 4.8 ms, plus ~2 ms of per-step CPU
//     overhead, which no longer hides behind the GPU; single-stream decode is ~140 tok/s.
//   - DecodePerSeq 50 µs: 16 GFLOP per token at ~320 TFLOPS achieved (a third of peak, typical of decode
//     GEMMs), plus sampling.
//   - DecodePerContextToken 40 ns: 128 KiB per context token at 3.35 TB/s.
//   - PrefillTokensPerSec 30,000: 16 GFLOP per token at ~50% of peak.
//   - StartupDelay 60 s: as for the A10G, with faster local disks and compilation.
//
// With these, 512 sequences of 700-token prompts decode ~10,700 tok/s between prefills and 1,024 short
// ones ~17,000 tok/s; an overloaded replica serving 500-token prompts and 250-token answers decodes
// ~5,900 tok/s overall, 24 requests/s. These H100 figures are extrapolated from the hardware's ratios to
// the A10G, not calibrated against measurements.
func H100Llama8B() Params {
	return Params{
		MaxNumSeqs:            1024,
		MaxNumBatchedTokens:   8192,
		KVCacheTokens:         450_000,
		BlockSize:             16,
		IterationBase:         7 * time.Millisecond,
		DecodePerSeq:          50 * time.Microsecond,
		DecodePerContextToken: 40 * time.Nanosecond,
		PrefillTokensPerSec:   30_000,
		StartupDelay:          60 * time.Second,
	}
}

// Validate reports every parameter that cannot describe a replica, joined into one error.
func (p Params) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if p.MaxNumSeqs < 1 {
		bad("MaxNumSeqs must be at least 1, got %d", p.MaxNumSeqs)
	}
	if p.MaxNumBatchedTokens < p.MaxNumSeqs || p.MaxNumBatchedTokens < 1 {
		// vLLM refuses this too: a full batch of decodes must fit in one iteration's budget.
		bad("MaxNumBatchedTokens must be at least MaxNumSeqs (%d) and 1, got %d", p.MaxNumSeqs, p.MaxNumBatchedTokens)
	}
	if p.BlockSize < 1 {
		bad("BlockSize must be at least 1, got %d", p.BlockSize)
	}
	if p.KVCacheTokens < 2 || (p.BlockSize >= 1 && p.KVCacheTokens < p.BlockSize) {
		bad("KVCacheTokens must hold at least one block and two tokens, got %d", p.KVCacheTokens)
	}
	if p.IterationBase <= 0 {
		// A zero-cost iteration would let a decode loop run forever at one instant.
		bad("IterationBase must be positive, got %v", p.IterationBase)
	}
	if p.DecodePerSeq < 0 {
		bad("DecodePerSeq must not be negative, got %v", p.DecodePerSeq)
	}
	if p.DecodePerContextToken < 0 {
		bad("DecodePerContextToken must not be negative, got %v", p.DecodePerContextToken)
	}
	if p.PrefillTokensPerSec < 1 {
		bad("PrefillTokensPerSec must be at least 1, got %d", p.PrefillTokensPerSec)
	}
	if p.StartupDelay < 0 {
		bad("StartupDelay must not be negative, got %v", p.StartupDelay)
	}
	return errors.Join(errs...)
}

// GPUBlocks is the number of KV blocks the replica has: vLLM's num_gpu_blocks.
func (p Params) GPUBlocks() int { return p.KVCacheTokens / p.BlockSize }

// blocksFor is the number of blocks that hold n tokens.
func (p Params) blocksFor(n int) int { return (n + p.BlockSize - 1) / p.BlockSize }

// prefillTime is how long prefilling n tokens takes, rounded down to the nanosecond.
func (p Params) prefillTime(n int) time.Duration {
	return time.Duration(int64(n) * int64(time.Second) / int64(p.PrefillTokensPerSec))
}
