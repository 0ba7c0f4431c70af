package vllmsim

import "time"

// startIteration plans the iteration starting at start the way vLLM V1's scheduler plans a step, and
// puts it in flight.
//
// Running requests come first, in admission order, each taking what it needs from the token budget: one
// token to decode, or the next chunk of its prompt. A request about to sample a token must hold KV blocks
// for its prompt, its output so far and that token; when the cache has no block left the most recently
// admitted running request is preempted (its blocks freed, back to the front of the waiting queue, to be
// recomputed), possibly the request itself. Only if nobody was preempted are waiting requests admitted,
// first come first served, while a sequence slot, budget and blocks for the whole prompt plus the first
// output token are free; the head of the queue blocks those behind it.
func (r *Replica) startIteration(start time.Duration) {
	budget := r.p.MaxNumBatchedTokens
	var decodes, contextTokens, prefillTokens int
	preempted := false

	for i := 0; i < len(r.running) && budget > 0; i++ {
		s := r.running[i]
		need := r.p.blocksFor(s.prompt+s.generated+1) - s.blocks
		for need > r.freeBlocks && r.running[len(r.running)-1] != s {
			r.preempt(r.running[len(r.running)-1])
			preempted = true
		}
		if need > r.freeBlocks {
			// s is the last one running and still does not fit. Submit's cap makes this unreachable for a
			// request alone; with others ahead of it, it waits for them as vLLM's would.
			r.preempt(s)
			preempted = true
			break
		}
		r.freeBlocks -= need
		s.blocks += need
		if s.computed < s.target {
			s.chunk = min(s.target-s.computed, budget)
			prefillTokens += s.chunk
		} else {
			s.chunk = 1
			decodes++
			contextTokens += s.prompt + s.generated
		}
		budget -= s.chunk
	}

	for !preempted && budget > 0 && len(r.running) < r.p.MaxNumSeqs && r.waiting.len() > 0 {
		s := r.waiting.front()
		if s.arrival > start {
			break
		}
		target := s.prompt + s.generated
		need := r.p.blocksFor(target + 1)
		if need > r.freeBlocks {
			break
		}
		r.waiting.popFront()
		r.freeBlocks -= need
		s.blocks = need
		s.computed, s.target = 0, target
		if !s.admitted {
			s.admitted, s.queued = true, start-s.arrival
		}
		s.chunk = min(target, budget)
		prefillTokens += s.chunk
		budget -= s.chunk
		r.running = append(r.running, s)
	}

	r.inflight = true
	r.iterEnd = start + r.p.IterationBase +
		time.Duration(decodes)*r.p.DecodePerSeq +
		time.Duration(contextTokens)*r.p.DecodePerContextToken +
		r.p.prefillTime(prefillTokens)
}

// preempt sends the last running request s back to the front of the waiting queue. Its output so far is
// kept (a client has already seen it); its KV cache is not, so it will be prefilled again.
func (r *Replica) preempt(s *seq) {
	r.running[len(r.running)-1] = nil
	r.running = r.running[:len(r.running)-1]
	r.freeBlocks += s.blocks
	s.blocks, s.computed, s.target, s.chunk = 0, 0, 0, 0
	r.waiting.pushFront(s)
	r.m.PreemptionsTotal++
}

// finishIteration completes the iteration in flight: prefill chunks advance, and every request that
// finished its prefill or was decoding samples one token. It appends the events to out.
func (r *Replica) finishIteration(out []Event) []Event {
	at := r.iterEnd
	r.inflight, r.lastEnd = false, at
	kept := r.running[:0]
	for _, s := range r.running {
		if s.chunk == 0 {
			kept = append(kept, s)
			continue
		}
		if s.computed < s.target {
			s.computed += s.chunk
		}
		s.chunk = 0
		if s.computed < s.target {
			kept = append(kept, s)
			continue
		}
		out = r.sample(s, at, out)
		if s.generated < s.maxTokens {
			kept = append(kept, s)
			continue
		}
		out = r.finish(s, at, out)
	}
	clear(r.running[len(kept):])
	r.running = kept
	return out
}

// sample gives s its next output token at time at.
func (r *Replica) sample(s *seq, at time.Duration, out []Event) []Event {
	s.generated++
	r.m.GenerationTokensTotal++
	if s.generated == 1 {
		r.m.PromptTokensTotal += uint64(s.prompt)
		r.m.FirstTokensTotal++
		r.observe(TimeToFirstToken, at-s.arrival)
		out = append(out, Event{Kind: FirstToken, ID: s.id, At: at, Tokens: 1, Queued: s.queued})
	} else {
		r.observe(InterToken, at-s.lastToken)
		if r.tokenEvents {
			out = append(out, Event{Kind: Token, ID: s.id, At: at, Tokens: s.generated})
		}
	}
	s.lastToken = at
	return out
}

// finish releases s, which generated its last token at time at.
func (r *Replica) finish(s *seq, at time.Duration, out []Event) []Event {
	r.freeBlocks += s.blocks
	s.blocks = 0
	delete(r.byID, s.id)
	r.m.RequestSuccessTotal[FinishLength]++
	r.m.observePrompt(s.prompt)
	r.observe(EndToEnd, at-s.arrival)
	r.observe(QueueTime, s.queued)
	return append(out, Event{Kind: Finished, ID: s.id, At: at, Tokens: s.generated, Queued: s.queued, Reason: FinishLength})
}

func (r *Replica) observe(l Latency, d time.Duration) {
	if r.obs != nil {
		r.obs.Observe(l, d)
	}
}
