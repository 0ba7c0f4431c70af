package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/llm-d/llm-d/vllmsim"
)

// runOpts is what differs between a policy's run and the bound's.
type runOpts struct {
	name string
	// warmup is how much of the trace's start is replayed, unmeasured, before it.
	warmup time.Duration
	// zeroStartup makes every pod ready the moment it is created.
	zeroStartup bool
	// chargeDrain charges a removed pod's GPU until it has drained (true for real policies); the bound
	// charges only up to the removal.
	chargeDrain bool
}

// simulate runs reqs through a cluster driven by ctl.
func simulate(cfg Config, ctl controller, measured []Request, o runOpts) (Result, error) {
	res := Result{Policy: o.name}
	w := o.warmup
	var reqs []Request
	for _, r := range measured {
		if r.At >= w {
			break
		}
		reqs = append(reqs, r)
	}
	nWarm := len(reqs)
	for _, r := range measured {
		r.At += w
		reqs = append(reqs, r)
	}
	c := &cluster{rng: rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)), leastLoaded: cfg.LeastLoaded}
	params := cfg.Replica
	instant := params
	instant.StartupDelay = 0
	if o.zeroStartup {
		params = instant
	}
	// The trace starts on a warm Deployment: its initial pods are ready at 0.
	if err := c.scaleTo(0, cfg.initial(), instant); err != nil {
		return res, err
	}
	for _, p := range c.pods {
		p.ready = true
	}
	res.MaxReplicas = c.replicas
	stats := make([]reqStat, len(reqs))
	horizon := w
	if len(reqs) > 0 {
		horizon = reqs[len(reqs)-1].At
	}

	var (
		next      int // next request to arrive
		nextTick  time.Duration
		lastDir   int
		seriesArr int
		lastTok   uint64
		lastSerie time.Duration
	)
	dispatch := func(now time.Duration) error {
		for len(c.pending) > 0 {
			p := c.pick()
			if p == nil {
				return nil
			}
			id := c.pending[0]
			c.pending = c.pending[1:]
			rq := reqs[id]
			stats[id].dispatch = now
			err := p.r.Submit(vllmsim.Request{ID: uint64(id), Arrival: now, PromptTokens: rq.PromptTokens, MaxTokens: rq.OutputTokens})
			switch {
			case errors.Is(err, vllmsim.ErrPromptTooLong):
				stats[id].rejected = true
			case err != nil:
				return fmt.Errorf("request %d: %w", id, err)
			default:
				p.inflight++
			}
		}
		return nil
	}
	done := func() bool {
		if next < len(reqs) || len(c.pending) > 0 {
			return false
		}
		for _, p := range c.pods {
			if p.inflight > 0 {
				return false
			}
		}
		return true
	}

	now := time.Duration(0)
	for {
		t := time.Duration(math.MaxInt64)
		if next < len(reqs) {
			t = reqs[next].At
		}
		if !done() {
			t = min(t, nextTick)
		}
		for _, p := range c.pods {
			if nt, ok := p.r.NextEventTime(); ok {
				t = min(t, nt)
			}
			if !p.ready && p.readyAt > now {
				t = min(t, p.readyAt)
			}
		}
		if t == math.MaxInt64 {
			break
		}
		now = max(now, t)
		for _, p := range c.pods {
			for _, ev := range p.r.Advance(now) {
				s := &stats[ev.ID]
				switch ev.Kind {
				case vllmsim.FirstToken:
					s.firstSeen = true
					s.ttft = ev.At - s.arrival
					s.wait = s.dispatch - s.arrival + ev.Queued
				case vllmsim.Finished:
					p.inflight--
				}
			}
			if !p.ready && p.readyAt <= now {
				p.ready = true
			}
		}
		c.reap(now)
		for next < len(reqs) && reqs[next].At <= now {
			stats[next].arrival = reqs[next].At
			c.pending = append(c.pending, next)
			next++
			seriesArr++
		}
		if err := dispatch(now); err != nil {
			return res, err
		}
		if now == nextTick {
			if now == w {
				res.MaxReplicas = c.replicas
				if r, ok := ctl.(interface{ resetRules() }); ok {
					r.resetRules() // count the measured part's decisions only
				}
			}
			if n, ok := ctl.tick(now, c); ok && n != c.replicas && now < w {
				if err := c.scaleTo(now, n, params); err != nil {
					return res, err
				}
			} else if ok && n != c.replicas {
				dir := 1
				if n < c.replicas {
					dir = -1
					res.ScaleDowns++
				} else {
					res.ScaleUps++
				}
				if lastDir != 0 && dir != lastDir {
					res.DirectionChanges++
				}
				lastDir = dir
				if err := c.scaleTo(now, n, params); err != nil {
					return res, err
				}
				for _, p := range c.pods {
					if !p.ready && p.readyAt <= now {
						p.ready = true
					}
				}
				if err := dispatch(now); err != nil {
					return res, err
				}
				res.MaxReplicas = max(res.MaxReplicas, c.replicas)
			}
			if now == w {
				seriesArr, lastTok, lastSerie = 0, c.tokens(), now
			}
			if now > w && (now-w)%cfg.SeriesStep == 0 {
				step := now - lastSerie
				ready, starting := c.live()
				tok := c.tokens()
				pt := Point{T: now - w, ArrivalsPerSec: float64(seriesArr) / step.Seconds(), Replicas: c.replicas,
					Ready: ready, Starting: starting, Waiting: c.waiting()}
				if ready > 0 {
					pt.DecodeTPSPerPod = float64(tok-lastTok) / step.Seconds() / float64(ready)
				}
				res.Series = append(res.Series, pt)
				seriesArr, lastTok, lastSerie = 0, tok, now
			}
			nextTick += Base
		}
	}
	res.GPUHours = gpuHours(c, w, horizon, now, o.chargeDrain)
	summarize(&res, stats[nWarm:], cfg.SLOTTFT)
	for _, s := range stats[nWarm:] {
		if !s.rejected && s.firstSeen && s.ttft <= cfg.SLOTTFT {
			continue
		}
		if i := int((s.arrival - w) / cfg.SeriesStep); i < len(res.Series) {
			res.Series[i].Misses++
		}
	}
	if r, ok := ctl.(interface{ ruleCounts() map[string]int }); ok {
		res.Rules = r.ruleCounts()
	}
	return res, nil
}

// gpuHours integrates the pods' GPU time over [from, horizon].
func gpuHours(c *cluster, from, horizon, end time.Duration, chargeDrain bool) float64 {
	var total time.Duration
	add := func(p *pod, until time.Duration) {
		a, b := max(p.created, from), min(until, horizon)
		if b > a {
			total += b - a
		}
	}
	for _, p := range c.gone {
		if chargeDrain {
			add(p, p.drained)
		} else {
			add(p, p.removedAt)
		}
	}
	for _, p := range c.pods {
		if p.removed && !chargeDrain {
			add(p, p.removedAt)
		} else {
			add(p, max(end, horizon))
		}
	}
	return total.Hours()
}
