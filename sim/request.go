package sim

import "time"

// Request is one request of a trace.
type Request struct {
	// At is the arrival time since the trace's start.
	At           time.Duration
	PromptTokens int
	OutputTokens int
}

// Reshape compresses a trace's time axis by speedup (2 plays it twice as fast) and then keeps the requests
// arriving before duration (0 keeps all). It returns a new slice.
func Reshape(reqs []Request, speedup float64, duration time.Duration) []Request {
	if speedup <= 0 {
		speedup = 1
	}
	out := make([]Request, 0, len(reqs))
	for _, r := range reqs {
		r.At = time.Duration(float64(r.At) / speedup)
		if duration > 0 && r.At >= duration {
			break
		}
		out = append(out, r)
	}
	return out
}
