package vllmsim

import (
	"slices"
	"time"
)

// Request is one completion request as the engine sees it: token counts only.
type Request struct {
	// ID identifies the request in events and Abort; it must be unique among unfinished requests.
	ID uint64
	// Arrival is when the request reaches the replica, in simulated time.
	Arrival time.Duration
	// PromptTokens is the prompt's length; at least 1.
	PromptTokens int
	// MaxTokens is how many tokens to generate; at least 1. The model has no end-of-sequence token, so
	// every request that is not aborted generates exactly this many (see Submit for the one cap).
	MaxTokens int
}

// EventKind tells what happened to a request.
type EventKind uint8

const (
	// FirstToken: the request's first output token was sampled (the end of its prefill).
	FirstToken EventKind = iota + 1
	// Token: a later output token was sampled. Only reported with WithTokenEvents.
	Token
	// Finished: the request generated its last token and left the replica.
	Finished
)

// String returns the kind's name.
func (k EventKind) String() string {
	switch k {
	case FirstToken:
		return "FirstToken"
	case Token:
		return "Token"
	case Finished:
		return "Finished"
	}
	return "EventKind(?)"
}

// Event is something that happened to a request at the end of an engine iteration.
type Event struct {
	Kind EventKind
	ID   uint64
	// At is the end of the iteration that produced the event.
	At time.Duration
	// Tokens is the number of output tokens the request has generated so far, this event's included.
	Tokens int
	// Queued is, on FirstToken and Finished events, how long the request waited between arriving and
	// first being scheduled; with At and the request's arrival it gives per-request TTFT, queue time and
	// end-to-end latency without an Observer.
	Queued time.Duration
	// Reason is why a Finished request finished.
	Reason FinishReason
}

// FinishReason is why a request finished, with vLLM's finished_reason label values as names.
type FinishReason uint8

const (
	// FinishLength: the request generated its MaxTokens.
	FinishLength FinishReason = iota
	// FinishAbort: the request was aborted (Replica.Abort), as when a client disconnects.
	FinishAbort
	// NumFinishReasons is the number of finish reasons, for arrays indexed by FinishReason.
	NumFinishReasons
)

// String returns vLLM's finished_reason label value: "length" or "abort".
func (f FinishReason) String() string {
	switch f {
	case FinishLength:
		return "length"
	case FinishAbort:
		return "abort"
	}
	return "unknown"
}

// Latency names one of vLLM's per-request latency histograms.
type Latency uint8

const (
	// TimeToFirstToken is arrival to first token (vllm:time_to_first_token_seconds), once per request.
	TimeToFirstToken Latency = iota
	// InterToken is the time between two consecutive output tokens of a request
	// (vllm:inter_token_latency_seconds), once per token after the first.
	InterToken
	// EndToEnd is arrival to last token (vllm:e2e_request_latency_seconds), once per finished request.
	EndToEnd
	// QueueTime is arrival to first being scheduled (vllm:request_queue_time_seconds), once per finished
	// request; time spent waiting again after a preemption is not included, as in vLLM.
	QueueTime
)

// String returns the latency's name.
func (l Latency) String() string {
	switch l {
	case TimeToFirstToken:
		return "TimeToFirstToken"
	case InterToken:
		return "InterToken"
	case EndToEnd:
		return "EndToEnd"
	case QueueTime:
		return "QueueTime"
	}
	return "Latency(?)"
}

// Observer receives latency observations as Advance produces them, to feed histograms. Aborted requests
// produce none at finish. It is called on the goroutine that calls Advance.
type Observer interface {
	Observe(l Latency, d time.Duration)
}

// Metrics is a snapshot of what vLLM's /metrics would report, without the histograms (see Observer).
type Metrics struct {
	// Waiting is vllm:num_requests_waiting: submitted and not running, including preempted requests.
	Waiting int
	// Running is vllm:num_requests_running: requests in the batch, prefilling or decoding.
	Running int
	// KVCacheUsage is vllm:kv_cache_usage_perc: the fraction of KV blocks in use, 0 to 1.
	KVCacheUsage float64
	// PromptTokensTotal is vllm:prompt_tokens_total. As in vLLM, a request's prompt counts once, when its
	// first token is sampled; recomputing it after a preemption does not count again.
	PromptTokensTotal uint64
	// GenerationTokensTotal is vllm:generation_tokens_total: output tokens sampled.
	GenerationTokensTotal uint64
	// FirstTokensTotal counts requests that have sampled their first token: the count of
	// vllm:time_to_first_token_seconds, one per request whose prompt is in PromptTokensTotal.
	FirstTokensTotal uint64
	// PreemptionsTotal is vllm:num_preemptions_total: running requests sent back to the waiting queue
	// because the KV cache ran out.
	PreemptionsTotal uint64
	// RequestSuccessTotal is vllm:request_success_total by finished_reason.
	RequestSuccessTotal [NumFinishReasons]uint64
	// RequestPromptTokens is vllm:request_prompt_tokens, observed as vLLM does when a request finishes or is
	// aborted: slot i counts the requests whose prompt has at most PromptTokenBounds[i] tokens and more than
	// the bound before; the last slot those above every bound. RequestPromptTokensSum is their prompts'
	// tokens.
	RequestPromptTokens    [len(PromptTokenBounds) + 1]uint64
	RequestPromptTokensSum uint64
}

// PromptTokenBounds are vllm:request_prompt_tokens's bucket bounds, vLLM's build_1_2_5_buckets: a server
// exports those up to its --max-model-len.
var PromptTokenBounds = [...]float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5,
	5e5, 1e6, 2e6, 5e6}

// exportedPromptBounds is how many of PromptTokenBounds a server of params p exports: those up to the KV cache's
// size, which stands in for --max-model-len (vLLM does not start with a longer context than its cache holds).
func exportedPromptBounds(p Params) int {
	n := 0
	for n < len(PromptTokenBounds) && PromptTokenBounds[n] <= float64(p.KVCacheTokens) {
		n++
	}
	return n
}

// PromptTokensCumulative is RequestPromptTokens as a server of params p exports it: the cumulative counts at
// its first exportedPromptBounds(p) bounds, then at +Inf.
func (m *Metrics) PromptTokensCumulative(p Params) []uint64 {
	n := exportedPromptBounds(p)
	out := make([]uint64, n+1)
	var below uint64
	for i, c := range m.RequestPromptTokens {
		below += c
		out[min(i, n)] = below
	}
	return out
}

// PromptBucket is the slot of RequestPromptTokens a prompt of tokens tokens counts in: the first bound at or
// above it, len(PromptTokenBounds) above every bound.
func PromptBucket(tokens int) int {
	i, _ := slices.BinarySearch(PromptTokenBounds[:], float64(tokens))
	return i
}

// observePrompt counts a finished or aborted request's prompt in RequestPromptTokens.
func (m *Metrics) observePrompt(tokens int) {
	m.RequestPromptTokens[PromptBucket(tokens)]++
	m.RequestPromptTokensSum += uint64(tokens)
}
