// Package vllmsim models one vLLM replica serving an LLM with continuous batching, so that the autoscaler
// can be tested, benchmarked and demonstrated without GPUs: the trace simulator runs many replicas in
// simulated time, and cmd/vllm-sim serves one in real time behind vLLM's HTTP API.
//
// The model is pure: no I/O, goroutines or clock. Its caller submits requests with their arrival times
// and advances the replica through simulated time (a time.Duration since an arbitrary origin); the
// replica reports when each request got its first token and when it finished, and keeps vLLM's gauges
// and counters.
//
// What it models, after vLLM V1's scheduler: a fixed number of sequence slots (--max-num-seqs), a
// per-iteration token budget (--max-num-batched-tokens) shared by decodes and chunked prefill, a paged
// KV cache that a request holds for its prompt and output so far, first-come-first-served admission,
// preemption by recomputation of the most recently admitted request when the cache runs out, and an
// iteration time that grows with the batch (Params). What it leaves out: prefix caching, speculative
// decoding, stop tokens (every request generates its max tokens), sampling parameters and multiple
// engines per server.
package vllmsim
