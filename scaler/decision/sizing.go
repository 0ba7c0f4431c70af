package decision

import "fmt"

// model applies the capacity model and the burst headroom to a decision the queue rules made: it raises a
// scale-up or a hold to the count the model asks for, and replaces the throughput floor's count when the
// queue is under its target. It does nothing without a capacity prior or without the pods' token counters,
// and reports whether it ran.
func (a *Autoscaler) model(p Policy, s Snapshot, d *Decision) bool {
	if p.Capacity == (Capacity{}) || !a.on(MechanismCapacity) || s.Ready == 0 {
		return false
	}
	m := a.measure(s, p.Capacity)
	if !m.ok {
		return false
	}
	c := a.capacity(p.Capacity)
	if a.on(MechanismCalibration) {
		a.calib.observe(s.Now, s.Pods, c.Saturation(m.Demand), p.TargetQueue, a.window)
		c = c.Scaled(a.calib.factor())
	}
	base := a.growth.base
	if !m.partial {
		base = a.growth.observe(s.Now, m.Arrivals, m.count, m.recent, m.recentCount, Horizon(s.StartupDelay))
	}
	target, grewBy := base, ""
	if a.on(MechanismHeadroom) {
		target, grewBy = a.growth.target(s.Now)
	}
	b := p.budget()
	limit := p.MaxReplicas + 1 // a count above maxReplicas says demand exceeds it
	var r float64
	if a.on(MechanismKVHeadroom) {
		r = a.sizes.kvDispersion(c, s, m.Demand)
	}
	now := c.Fewest(m.Demand, b, r, limit)
	grown := m.Demand
	grown.Arrivals = max(m.Arrivals, target)
	need := now
	if grown.Arrivals > m.Arrivals {
		need = c.Fewest(grown, b, r, limit)
	}
	why := explain(m, now, b)
	nowPods, needPods := now.Pods, need.Pods
	d.Capacity, d.Headroom = nowPods, 1
	if base > 0 {
		d.Headroom = target / base
	}
	if needPods > nowPods {
		why += fmt.Sprintf("; headroom: %.2f requests/s (the %s median)%s asks for %d", base, baseSpan, grewBy, needPods)
	}
	count := max(needPods, 1)
	switch d.Rule {
	case RuleScaleUpQueue, RuleStartingPodsAbsorbDemand, RuleQueueAboveTarget:
		a.drain(s, m, c, count, d)
		return true
	case RuleMissingData:
		// The size holds on missing data: the model can only raise the count.
		if count <= max(d.Recommendation, s.Current) {
			return true
		}
	case RuleScaleUpHotPod:
		// The model sizes each pod's queue under random routing: a hot pod is that queue's variation. Only
		// on partial data, a lower bound of demand, does the rule's count stand.
		if m.partial && count <= d.Recommendation {
			return true
		}
		why += "; a pod's own queue above the target is random routing's variation, which this count allows for"
	default:
		if m.partial && count <= s.Current {
			// Some pods' rates are missing: what was measured is a lower bound of demand.
			return true
		}
	}
	d.Recommendation = count
	switch {
	case count > s.Current && nowPods > s.Current:
		d.Rule = RuleScaleUpCapacity
	case count > s.Current:
		d.Rule = RuleScaleUpHeadroom
	case count == s.Current && needPods > nowPods:
		d.Rule = RuleHeadroom
	case count == s.Current:
		d.Rule = RuleSteady
	default:
		d.Rule = RuleScaleDown
	}
	d.Reason = why
	return true
}

// explain says what the capacity model saw and concluded, in numbers an SRE can check against the pods'
// metrics.
func explain(m measured, pl PodLoad, b Budget) string {
	s := fmt.Sprintf("demand %.2f requests/s of %.0f uncached prompt and %.0f output tokens", m.Arrivals, m.PromptPerRequest, m.DecodePerRequest)
	if pl.Pods == 0 {
		return s + ": no pod needed"
	}
	goal := fmt.Sprintf("%.0f %% of requests get a first token within %s and %.1f wait per pod on average (target %g)",
		100*b.Attainment, b.TTFT, pl.QueueMean, b.QueueDepth)
	s += fmt.Sprintf(": %d pods (batch %.0f, prefill %.0f tokens/s, %.0f %% of the time prefilling, KV cache %.0f %% full; late: %.2g queue + %.2g KV)",
		pl.Pods, pl.Batch, pl.PrefillTPS, 100*pl.Utilization, 100*pl.KVFill, pl.QueueLate, pl.KVLate)
	if !pl.Fits {
		return s + fmt.Sprintf(" do not keep %s: %s is the limit", goal, pl.Limit)
	}
	return s + " keep " + goal
}

// drain decides when requests queue above the target: the pods needed are those that clear the backlog
// within one horizon (a pod started now helps no earlier) while serving the arrivals, each at the rate a
// saturated pod serves this mix, and at least the capacity model's count. A backlog the current pods clear
// before new ones could start adds none: a short burst is over before they are ready.
func (a *Autoscaler) drain(s Snapshot, m measured, c Capacity, count int32, d *Decision) {
	var waiting float64
	for _, p := range s.Pods {
		waiting += p.Waiting
	}
	h := Horizon(s.StartupDelay)
	sat := c.Saturation(m.Demand)
	drain := replicasFor(waiting/h.Seconds()+m.Arrivals, sat)
	if n := max(drain, count); n > s.Current {
		d.Recommendation, d.Rule = n, RuleScaleUpQueue
		d.Reason = fmt.Sprintf("%.0f requests wait (%.1f per ready pod, target %g); a pod serves at most %.2f requests/s of this mix: %d pods clear them within one startup (%s) while serving %.2f requests/s",
			waiting, d.WaitingPerPod, a.policy.TargetQueue, sat, drain, h, m.Arrivals)
		if count > drain {
			d.Reason += fmt.Sprintf("; the capacity model asks for %d", count)
		}
		return
	}
	d.Recommendation = s.Current
	if d.Rule == RuleScaleUpQueue {
		d.Rule = RuleQueueAboveTarget
	}
	d.Reason = fmt.Sprintf("%.0f requests wait (%.1f per ready pod, target %g), but the %d pods (%d starting) clear them within one startup (%s), before more could start: holding %d",
		waiting, d.WaitingPerPod, a.policy.TargetQueue, s.Current, s.Starting, h, s.Current)
}
