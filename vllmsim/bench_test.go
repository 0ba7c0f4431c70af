package vllmsim

import (
	"testing"
	"time"
)

// BenchmarkHourTrace simulates an hour of traffic, 20,000 requests spread round-robin over 10 A10G
// replicas, with latency observations on: the trace simulator's workload, which must take seconds.
func BenchmarkHourTrace(b *testing.B) {
	reqs := workload(7, 20_000, 180*time.Millisecond)
	const replicas = 10
	shares := make([][]Request, replicas)
	for i, q := range reqs {
		shares[i%replicas] = append(shares[i%replicas], q)
	}
	p := A10GLlama8B()
	p.StartupDelay = 0
	for b.Loop() {
		var tokens uint64
		for _, share := range shares {
			r := mustReplica(b, p, WithObserver(&sums{}))
			simulate(b, r, share)
			tokens += r.Metrics().GenerationTokensTotal
		}
		b.ReportMetric(float64(tokens), "tokens")
	}
}

// sums is an Observer that keeps a count and a sum per latency, as a histogram would.
type sums [4]struct {
	n   int
	sum time.Duration
}

func (s *sums) Observe(l Latency, d time.Duration) { s[l].n++; s[l].sum += d }
