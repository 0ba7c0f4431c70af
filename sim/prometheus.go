package sim

import "time"

// promSum is a per-pod gauge as KEDA's Prometheus scaler reads sum() of it: Prometheus scrapes every ready
// pod every PromScrape, keeping each pod's latest sample, and KEDA's value, the sum of those samples over
// the pods that are ready and not terminating, is refreshed every KEDAPoll. Between refreshes the HPA sees
// the value KEDA last read.
type promSum struct {
	scrape, poll time.Duration
	gauge        func(*pod) float64
	samples      map[*pod]float64
	value        float64
}

func newPromSum(cfg *Config, gauge func(*pod) float64) promSum {
	return promSum{scrape: cfg.PromScrape, poll: cfg.KEDAPoll, gauge: gauge, samples: map[*pod]float64{}}
}

// read is the value KEDA holds at now; it runs at every base tick.
func (s *promSum) read(now time.Duration, c *cluster) float64 {
	if now%s.scrape == 0 {
		for _, p := range c.pods {
			if p.ready && !p.removed {
				s.samples[p] = s.gauge(p)
			}
		}
	}
	if now%s.poll == 0 {
		for p := range s.samples {
			if p.removed {
				delete(s.samples, p) // a target gone from service discovery: its series goes stale
			}
		}
		s.value = 0
		for _, p := range c.pods { // in pod order, so that the float sum is the same on every run
			if v, ok := s.samples[p]; ok && p.ready && !p.removed {
				s.value += v
			}
		}
	}
	return s.value
}
