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
	r, err := newRunner(cfg, ctl, measured, o)
	if err != nil {
		return r.res, err
	}
	now := time.Duration(0)
	for {
		t := r.next(now)
		if t == math.MaxInt64 {
			break
		}
		now = max(now, t)
		if err := r.advance(now); err != nil {
			return r.res, err
		}
		if err := r.control(now); err != nil {
			return r.res, err
		}
	}
	return r.finish(now), nil
}

// runner is one service's cluster, trace and controller on the simulated clock. simulate drives one;
// RunPool drives several on one clock, so that a shared budget sees them all at the same instant.
type runner struct {
	cfg       Config
	ctl       controller
	o         runOpts
	reqs      []Request // warm-up part, then the measured trace shifted by the warm-up
	nWarm     int
	c         *cluster
	params    vllmsim.Params
	stats     []reqStat
	horizon   time.Duration
	res       Result
	arrived   int // next request to arrive
	nextTick  time.Duration
	lastDir   int
	seriesArr int
	lastTok   uint64
	lastSerie time.Duration
}

func newRunner(cfg Config, ctl controller, measured []Request, o runOpts) (*runner, error) {
	r := &runner{cfg: cfg, ctl: ctl, o: o, res: Result{Policy: o.name}}
	w := o.warmup
	for _, q := range measured {
		if q.At >= w {
			break
		}
		r.reqs = append(r.reqs, q)
	}
	r.nWarm = len(r.reqs)
	for _, q := range measured {
		q.At += w
		r.reqs = append(r.reqs, q)
	}
	r.c = &cluster{rng: rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)), routing: cfg.Routing,
		picker: &picker{scoring: cfg.PickerScoring}}
	r.params = cfg.Replica
	instant := r.params
	instant.StartupDelay = 0
	if o.zeroStartup {
		r.params = instant
	}
	// The trace starts on a warm Deployment: its initial pods are ready at 0.
	if err := r.c.scaleTo(0, cfg.initial(), instant); err != nil {
		return r, err
	}
	for _, p := range r.c.pods {
		p.ready = true
	}
	r.res.MaxReplicas = r.c.replicas
	r.stats = make([]reqStat, len(r.reqs))
	r.horizon = w
	if len(r.reqs) > 0 {
		r.horizon = r.reqs[len(r.reqs)-1].At
	}
	return r, nil
}

func (r *runner) dispatch(now time.Duration) error {
	c := r.c
	for len(c.pending) > 0 {
		p := c.pick(now)
		if p == nil {
			return nil
		}
		id := c.pending[0]
		c.pending = c.pending[1:]
		rq := r.reqs[id]
		r.stats[id].dispatch = now
		err := p.r.Submit(vllmsim.Request{ID: uint64(id), Arrival: now, PromptTokens: rq.PromptTokens, MaxTokens: rq.OutputTokens})
		switch {
		case errors.Is(err, vllmsim.ErrPromptTooLong):
			r.stats[id].rejected = true
		case err != nil:
			return fmt.Errorf("request %d: %w", id, err)
		default:
			p.inflight++
			p.inflightPrompt += rq.PromptTokens
		}
	}
	return nil
}

// done says whether every request has arrived and been served.
func (r *runner) done() bool {
	if r.arrived < len(r.reqs) || len(r.c.pending) > 0 {
		return false
	}
	for _, p := range r.c.pods {
		if p.inflight > 0 {
			return false
		}
	}
	return true
}

// next is the time of the runner's next event at or after now (math.MaxInt64 if none): an arrival, a
// control tick while work remains, a replica's next event or a pod becoming ready.
func (r *runner) next(now time.Duration) time.Duration {
	t := time.Duration(math.MaxInt64)
	if r.arrived < len(r.reqs) {
		t = r.reqs[r.arrived].At
	}
	if !r.done() {
		t = min(t, r.nextTick)
	}
	for _, p := range r.c.pods {
		if nt, ok := p.r.NextEventTime(); ok {
			t = min(t, nt)
		}
		if !p.ready && p.readyAt > now {
			t = min(t, p.readyAt)
		}
	}
	return t
}

// advance moves the replicas to now, records their events, deletes drained pods and dispatches what
// arrived.
func (r *runner) advance(now time.Duration) error {
	c := r.c
	for _, p := range c.pods {
		for _, ev := range p.r.Advance(now) {
			s := &r.stats[ev.ID]
			switch ev.Kind {
			case vllmsim.FirstToken:
				s.firstSeen = true
				s.ttft = ev.At - s.arrival
				s.wait = s.dispatch - s.arrival + ev.Queued
				p.inflightPrompt -= r.reqs[ev.ID].PromptTokens
			case vllmsim.Finished:
				p.inflight--
			}
		}
		if !p.ready && p.readyAt <= now {
			p.ready = true
		}
	}
	c.reap(now)
	for r.arrived < len(r.reqs) && r.reqs[r.arrived].At <= now {
		r.stats[r.arrived].arrival = r.reqs[r.arrived].At
		c.pending = append(c.pending, r.arrived)
		r.arrived++
		r.seriesArr++
	}
	return r.dispatch(now)
}

// control runs the controller if now is the runner's next tick, applies its answer and records the time
// series.
func (r *runner) control(now time.Duration) error {
	if now != r.nextTick {
		return nil
	}
	c, w, res := r.c, r.o.warmup, &r.res
	if now == w {
		res.MaxReplicas = c.replicas
		if rr, ok := r.ctl.(interface{ resetRules() }); ok {
			rr.resetRules() // count the measured part's decisions only
		}
	}
	if n, ok := r.ctl.tick(now, c); ok && n != c.replicas && now < w {
		if err := c.scaleTo(now, n, r.params); err != nil {
			return err
		}
	} else if ok && n != c.replicas {
		dir := 1
		if n < c.replicas {
			dir = -1
			res.ScaleDowns++
		} else {
			res.ScaleUps++
		}
		if r.lastDir != 0 && dir != r.lastDir {
			res.DirectionChanges++
		}
		r.lastDir = dir
		if err := c.scaleTo(now, n, r.params); err != nil {
			return err
		}
		for _, p := range c.pods {
			if !p.ready && p.readyAt <= now {
				p.ready = true
			}
		}
		if err := r.dispatch(now); err != nil {
			return err
		}
		res.MaxReplicas = max(res.MaxReplicas, c.replicas)
	}
	if now == w {
		r.seriesArr, r.lastTok, r.lastSerie = 0, c.tokens(), now
	}
	if now > w && (now-w)%r.cfg.SeriesStep == 0 {
		step := now - r.lastSerie
		ready, starting := c.live()
		tok := c.tokens()
		pt := Point{T: now - w, ArrivalsPerSec: float64(r.seriesArr) / step.Seconds(), Replicas: c.replicas,
			Ready: ready, Starting: starting, Waiting: c.waiting()}
		if ready > 0 {
			pt.DecodeTPSPerPod = float64(tok-r.lastTok) / step.Seconds() / float64(ready)
		}
		res.Series = append(res.Series, pt)
		r.seriesArr, r.lastTok, r.lastSerie = 0, tok, now
	}
	r.nextTick += Base
	return nil
}

// finish computes the result once the clock has stopped at end.
func (r *runner) finish(end time.Duration) Result {
	res, w, slo := r.res, r.o.warmup, r.cfg.SLOTTFT
	res.GPUHours = gpuHours(r.c, w, r.horizon, end, r.o.chargeDrain)
	summarize(&res, r.stats[r.nWarm:], slo)
	for i, s := range r.stats[r.nWarm:] {
		if res.Met[i] {
			continue
		}
		if k := int((s.arrival - w) / r.cfg.SeriesStep); k < len(res.Series) {
			res.Series[k].Misses++
		}
	}
	if rr, ok := r.ctl.(interface{ ruleCounts() map[string]int }); ok {
		res.Rules = rr.ruleCounts()
	}
	if tc, ok := r.ctl.(interface{ calibration() TokenAwareCalibration }); ok {
		cal := tc.calibration()
		res.TokenAware = &cal
	}
	return res
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
