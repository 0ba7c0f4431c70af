package sim

import (
	"math/rand/v2"
	"time"

	"github.com/llm-d/llm-d/epp"
	"github.com/llm-d/llm-d/vllmsim"
)

// Routings, as Config.Routing and the CLI take them.
const (
	// RoutingRandom is a Kubernetes Service: kube-proxy sends each request to a ready pod at random.
	RoutingRandom = "random"
	// RoutingPicker is a gateway that asks the Gateway API Inference Extension's endpoint picker which pod
	// takes each request.
	RoutingPicker = "picker"
)

// Routings lists the routings.
var Routings = []string{RoutingRandom, RoutingPicker}

// picker models the endpoint picker's choice (epp.Scoring): its scorers' formulas on the pods' metrics as
// of its last scrape, epp.RefreshInterval ago at most. The prefix-cache scorer scores every pod 0: the
// traces carry no prompt text or prefix hashes (and vllmsim no prefix cache for a hit to save).
type picker struct {
	scoring   epp.Scoring
	refreshed bool
	at        time.Duration            // the scrape the view is from
	view      map[*pod]vllmsim.Metrics // what each pod exported then; a pod not scraped yet reads as zeros
	scores    []float64
}

// pick is the picker's choice among cands at now: the highest score, ties at random (the max-score
// picker shuffles before a stable sort), or a draw in proportion to the scores (the weighted-random
// picker's A-Res sampling with one key).
func (k *picker) pick(now time.Duration, cands []*pod, rng *rand.Rand) *pod {
	if tick := now - now%epp.RefreshInterval; !k.refreshed || tick > k.at {
		k.refreshed, k.at = true, tick
		k.view = make(map[*pod]vllmsim.Metrics, len(cands))
		for _, p := range cands {
			k.view[p] = p.r.Metrics()
		}
	}
	k.score(cands)
	if k.scoring.Picker == epp.WeightedRandom {
		return weightedDraw(cands, k.scores, rng)
	}
	var best []*pod
	bestScore := -1.0
	for i, p := range cands {
		switch s := k.scores[i]; {
		case s > bestScore:
			best, bestScore = append(best[:0], p), s
		case s == bestScore:
			best = append(best, p)
		}
	}
	return best[rng.IntN(len(best))]
}

// score sets k.scores to the candidates' weighted sums of the queue and KV-cache scores (epp.Scoring).
func (k *picker) score(cands []*pod) {
	minQ, maxQ := k.view[cands[0]].Waiting, k.view[cands[0]].Waiting
	for _, p := range cands[1:] {
		minQ, maxQ = min(minQ, k.view[p].Waiting), max(maxQ, k.view[p].Waiting)
	}
	k.scores = k.scores[:0]
	for _, p := range cands {
		m := k.view[p]
		queue := 1.0
		if maxQ > minQ {
			queue = float64(maxQ-m.Waiting) / float64(maxQ-minQ)
		}
		k.scores = append(k.scores, k.scoring.Queue*queue+k.scoring.KVCache*(1-m.KVCacheUsage))
	}
}

// weightedDraw is a candidate drawn with probability proportional to its score; uniformly if every score
// is 0.
func weightedDraw(cands []*pod, scores []float64, rng *rand.Rand) *pod {
	var total float64
	for _, s := range scores {
		total += max(s, 0)
	}
	if total == 0 {
		return cands[rng.IntN(len(cands))]
	}
	x, last := rng.Float64()*total, 0
	for i, s := range scores {
		if s <= 0 {
			continue
		}
		if x -= s; x < 0 {
			return cands[i]
		}
		last = i
	}
	return cands[last] // rounding

}
