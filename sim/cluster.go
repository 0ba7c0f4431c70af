package sim

import (
	"math/rand/v2"
	"time"

	"github.com/llm-d/llm-d/scaler/signals"
	"github.com/llm-d/llm-d/vllmsim"
)

// pod is one replica of the Deployment.
type pod struct {
	r       *vllmsim.Replica
	created time.Duration
	readyAt time.Duration
	ready   bool // readiness seen: the pod is an endpoint and is scraped
	// removedAt is when the Deployment let go of the pod; it then takes no new request and drains what it
	// has (a preStop hook waiting for in-flight requests), holding its GPU until drainedAt.
	removed            bool
	removedAt, drained time.Duration
	inflight           int
	sig                signals.Pod // the llm-d scaler's view of the pod
	// inflightPrompt is the prompt tokens of the requests dispatched to the pod that have no first token
	// yet: what the endpoint picker's in-flight token count holds for it.
	inflightPrompt int
}

// cluster is the Deployment, its pods and the Service in front of them.
type cluster struct {
	params   vllmsim.Params
	replicas int32 // spec.replicas
	pods     []*pod
	gone     []*pod // drained and deleted, kept for GPU-hours
	rng      *rand.Rand
	routing  string // Config.Routing
	picker   *picker
	// pending holds requests that arrived while no pod was ready; the gateway retries them.
	pending []int
	// goneTokens counts the output tokens of deleted pods, so the cluster's token counter never goes back.
	goneTokens uint64
}

func (c *cluster) addPod(now time.Duration, p vllmsim.Params) error {
	r, err := vllmsim.NewReplica(p, vllmsim.WithStart(now))
	if err != nil {
		return err
	}
	c.pods = append(c.pods, &pod{r: r, created: now, readyAt: r.ReadyAt()})
	return nil
}

// live is the pods the Deployment counts: not removed.
func (c *cluster) live() (ready, starting int) {
	for _, p := range c.pods {
		switch {
		case p.removed:
		case p.ready:
			ready++
		default:
			starting++
		}
	}
	return
}

// scaleTo sets spec.replicas and creates or removes pods as the ReplicaSet controller would: new pods start
// now; removal takes pods that are not ready first, then the most recently ready.
func (c *cluster) scaleTo(now time.Duration, n int32, p vllmsim.Params) error {
	c.replicas = n
	ready, starting := c.live()
	have := int32(ready + starting)
	for ; have < n; have++ {
		if err := c.addPod(now, p); err != nil {
			return err
		}
	}
	for ; have > n; have-- {
		victim := -1
		for i, q := range c.pods {
			if q.removed {
				continue
			}
			if victim < 0 {
				victim = i
				continue
			}
			v := c.pods[victim]
			// not ready before ready; among equals, the newest (later readyAt).
			if (!q.ready && v.ready) || (q.ready == v.ready && q.readyAt >= v.readyAt) {
				victim = i
			}
		}
		v := c.pods[victim]
		v.removed, v.removedAt = true, now
	}
	c.reap(now)
	return nil
}

// reap deletes removed pods that have drained.
func (c *cluster) reap(now time.Duration) {
	keep := c.pods[:0]
	for _, p := range c.pods {
		if p.removed && p.inflight == 0 {
			p.drained = max(now, p.removedAt)
			c.goneTokens += p.r.Metrics().GenerationTokensTotal
			c.gone = append(c.gone, p)
			continue
		}
		keep = append(keep, p)
	}
	clear(c.pods[len(keep):])
	c.pods = keep
}

// pick is the choice of endpoint for a request arriving at now, or nil if no pod is ready: kube-proxy's
// uniformly random ready endpoint, or with RoutingPicker the endpoint picker's.
func (c *cluster) pick(now time.Duration) *pod {
	var cands []*pod
	for _, p := range c.pods {
		if p.ready && !p.removed {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	if c.routing == RoutingPicker {
		return c.picker.pick(now, cands, c.rng)
	}
	return cands[c.rng.IntN(len(cands))]
}

// tokens is the cluster's total of generated tokens so far.
func (c *cluster) tokens() uint64 {
	t := c.goneTokens
	for _, p := range c.pods {
		t += p.r.Metrics().GenerationTokensTotal
	}
	return t
}

// waiting is the requests queued in pods plus those the gateway holds.
func (c *cluster) waiting() int {
	w := len(c.pending)
	for _, p := range c.pods {
		w += p.r.Metrics().Waiting
	}
	return w
}
