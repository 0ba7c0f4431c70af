// Package pool divides an LLMInferencePool's GPU budget among the models that share it. It runs once per
// decision cycle, after each member's own decision: plain structs in, one Grant per member out, no I/O, no
// Kubernetes types and no clock, so the scaler, the simulator and the tests run the same code and the same
// input always yields the same grants (members are worked on in name order, whatever order they come in;
// names are expected to be unique within a pool).
//
// Allocate works in five steps. Steps 1-3 compute a target that only depends on the pool's budget, policy
// and each member's bounds, weight and demand; step 4 limits how fast the pool moves toward it.
//
//  1. Minimums first. Every member gets its Min. If the minimums alone need more GPUs than the budget,
//     minimums are granted in priority order (High first; within a priority, larger weight first; then
//     name) as far as they fit, each member getting as many of its minimum replicas as still fit, possibly
//     none; its Reason says how many GPUs the budget is short. No member then grows beyond its Min except
//     through the leftover filling of step 2 (whole replicas that still fit what the minimums left over).
//  2. Weighted max-min fair share of what is left, for demand above Min. First the continuous water level
//     is computed: every member gets weight×λ GPUs, clamped to [Min, Demand] replicas, with λ chosen so the
//     budget is exactly used; a member whose demand is below its share thereby lends the rest to members
//     that want more. Each member gets the whole replicas of that level (floor). The replicas the floors
//     left over go, one per member with a fractional level, to the lowest GPUs-granted/weight first (ties:
//     higher priority, then name), and finally any GPUs still unallocated go, one replica at a time, to the
//     member with unmet demand whose next replica fits and that has the lowest GPUs-granted/weight (same
//     ties). The result is work-conserving: no member wants more while the unallocated GPUs fit its next
//     replica. Rounding the level rather than handing out every replica greedily by GPUs/weight keeps each
//     saturated member within one replica of budget×weight/Σweight, which the greedy alone does not
//     (weights 55/15/15/15 on 10 replicas would give 4/2/2/2 instead of 5 or 6 for the first).
//  3. Eviction (policy LowPriority only). While some member with unmet demand could fit its next replica
//     into the unallocated GPUs plus everything that members of strictly lower priority hold above their
//     Min, the highest-priority such member (then lowest GPUs/weight, then name) takes it: replicas are
//     removed one at a time from those lower-priority members, lowest priority first and among equals the
//     one with the highest GPUs-granted/weight first, until its replica fits; any GPUs freed beyond it are
//     refilled as in step 2. Hence a higher-priority member is never held below its demand while
//     lower-priority members hold, above their minimums, GPUs that could fit one of its replicas. With
//     policy None (or any other value) priorities only break ties.
//  4. Shrink before grow. GPUs that a member's pods still hold (InUse, counting starting and terminating
//     pods) are not free, so Σ max(InUse, Replicas)×GPUsPerReplica never exceeds the budget as long as
//     Σ InUse×GPUsPerReplica does not. A shrinking member gets its target at once; a growing member starts
//     from its InUse and grows only into the GPUs free now (budget − Σ InUse×GPUsPerReplica), one replica
//     at a time: members below their Min first, then in the order of steps 2-3 (with LowPriority, higher
//     priority first). A member held below its target says what it waits for. Once the terminating pods
//     are gone the next cycle reaches the target (two cycles suffice when nothing else changes).
//  5. Members with GPUsPerReplica 0 use none of the budget and get their demand.
//
// Grants are always within [0, Max] and never above demand; when the minimums fit they are at least
// min(Min, InUse), and exactly the target when no member has to wait. GPU counts (replicas×GPUs, budget,
// weights×GPUs) are assumed to fit in int64; the fair-share arithmetic itself is exact.
package pool

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
	"strings"
)

// Priority orders members of a pool: under eviction policy LowPriority a member takes GPUs from members of
// strictly lower priority; otherwise it only breaks ties. LLMInferencePool's priority: high | normal | low.
type Priority int

const (
	// Low is the priority of a member that gives up GPUs first.
	Low Priority = 0
	// Normal is the default priority.
	Normal Priority = 1
	// High is the priority of a member that takes GPUs from lower priorities under LowPriority.
	High Priority = 2
)

// String spells the priority as the API does, so reasons read like the manifest.
func (p Priority) String() string {
	switch p {
	case Low:
		return "low"
	case Normal:
		return "normal"
	case High:
		return "high"
	}
	return fmt.Sprintf("priority(%d)", int(p))
}

// EvictionPolicy says whether a member may take GPUs from lower-priority members under pressure.
type EvictionPolicy string

const (
	// EvictLowPriority lets a member with unmet demand take GPUs that lower-priority members hold above
	// their minimums (step 3).
	EvictLowPriority EvictionPolicy = "LowPriority"
	// EvictNone never takes GPUs from anyone: priorities only break ties. Unknown values behave the same,
	// because taking GPUs away is the surprising behaviour and must be asked for.
	EvictNone EvictionPolicy = "None"
)

// Member is one model service of the pool as the decision cycle sees it.
type Member struct {
	// Name identifies the member; it breaks the last ties and is expected to be unique in the pool.
	Name string
	// Priority decides who gives up GPUs first (see EvictionPolicy).
	Priority Priority
	// Weight sets the member's share: weight/Σweights of the budget. Values <= 0 are treated as 1.
	Weight int32
	// GPUsPerReplica is what one replica holds; 0 means the budget never limits the member.
	GPUsPerReplica int64
	// Min and Max are the service's autoscaling bounds, 1 <= Min <= Max.
	Min, Max int32
	// Demand is what the member's own decision wants, already within [Min, Max] (clamped if not).
	Demand int32
	// InUse counts replicas that hold GPUs now: pods existing, starting or terminating. Growth waits for
	// the GPUs of other members' terminating pods (step 4).
	InUse int32
}

// Grant is what one member may run this cycle and why.
type Grant struct {
	// Name is the member's name.
	Name string
	// Replicas is what the member may run this cycle, within [0, Max].
	Replicas int32
	// Share is the member's weighted fair share of the budget in GPUs (floor of budget×weight/Σweights over
	// the members that use GPUs; 0 for members that use none), for the pool's status.
	Share int64
	// Reason says why Replicas differs from Demand in a sentence an SRE can act on; empty when equal.
	Reason string
}

// Allocate divides budgetGPUs among members as described in the package documentation and returns one
// grant per member, in the order of members.
func Allocate(budgetGPUs int64, policy EvictionPolicy, members []Member) []Grant {
	a := newAllocation(max(budgetGPUs, 0), policy, members)
	a.minimums()
	if !a.short {
		a.fairLevel()
	}
	for {
		a.refill()
		if a.policy != EvictLowPriority || !a.evictOnce() {
			break
		}
	}
	a.shrinkBeforeGrow()

	grants := make([]Grant, len(members))
	for _, s := range a.all {
		grants[s.idx] = Grant{Name: s.name, Replicas: int32(s.grant), Share: a.share(s), Reason: a.reason(s)}
	}
	return grants
}

// Shares is each member's weighted fair share of budgetGPUs, in GPUs, in the order of members: Grant.Share
// without the allocation, for a pool's status.
func Shares(budgetGPUs int64, members []Member) []int64 {
	a := newAllocation(max(budgetGPUs, 0), EvictNone, members)
	shares := make([]int64, len(members))
	for _, s := range a.all {
		shares[s.idx] = a.share(s)
	}
	return shares
}

// state is one member during the allocation; replica counts are int64 so GPU products need no conversions.
type state struct {
	name                    string
	idx                     int // position in the input, to return grants in input order
	prio                    Priority
	w, g                    int64
	min, max, demand, inUse int64
	askedDemand             int64 // Demand as given, to explain a clamp
	target                  int64 // steps 1-3
	grant                   int64 // step 4
	fractional              bool  // its continuous fair level is not a whole number of replicas
	takenBy                 []string
}

type allocation struct {
	budget  int64
	policy  EvictionPolicy
	all     []*state // every member, by name
	ms      []*state // members that use GPUs, by name
	weights int64    // Σ weights of ms
	minNeed int64    // GPUs the minimums of ms need
	short   bool     // minNeed > budget
	free    int64    // budget − Σ target×g during steps 1-3
	holders string   // who still holds GPUs that growers wait for, for reasons; computed on first use
}

func newAllocation(budget int64, policy EvictionPolicy, members []Member) *allocation {
	a := &allocation{budget: budget, policy: policy}
	for i, m := range members {
		s := &state{name: m.Name, idx: i, prio: m.Priority, w: int64(m.Weight), g: max(m.GPUsPerReplica, 0),
			max: max(int64(m.Max), 0), inUse: max(int64(m.InUse), 0), askedDemand: int64(m.Demand)}
		if s.w <= 0 {
			s.w = 1
		}
		s.min = min(max(int64(m.Min), 0), s.max)
		s.demand = min(max(s.askedDemand, s.min), s.max)
		a.all = append(a.all, s)
	}
	slices.SortStableFunc(a.all, func(x, y *state) int { return strings.Compare(x.name, y.name) })
	for _, s := range a.all {
		if s.g == 0 {
			s.target, s.grant = s.demand, s.demand // step 5
			continue
		}
		a.ms = append(a.ms, s)
		a.weights += s.w
		a.minNeed += s.min * s.g
	}
	a.short = a.minNeed > budget
	a.free = budget
	return a
}

// minimums is step 1: Min for everyone, or as much of it as fits in priority order when the budget is short.
func (a *allocation) minimums() {
	order := slices.Clone(a.ms)
	slices.SortStableFunc(order, func(x, y *state) int {
		if x.prio != y.prio {
			return int(y.prio - x.prio)
		}
		if x.w != y.w {
			return int(y.w - x.w)
		}
		return strings.Compare(x.name, y.name)
	})
	for _, s := range order {
		s.target = min(s.min, a.free/s.g)
		a.free -= s.target * s.g
	}
}

// fairLevel is the first part of step 2: the continuous weighted max-min fair level, in whole replicas.
// It solves Σ clamp(λ×w, Min×g, Demand×g) = budget exactly: members whose clamp binds are fixed one group
// at a time (those the level certainly lies beyond), the rest share what remains in proportion to weight.
func (a *allocation) fairLevel() {
	var want int64
	for _, s := range a.ms {
		want += s.demand * s.g
	}
	if want <= a.budget { // everybody gets demand; nothing to share
		for _, s := range a.ms {
			s.target = s.demand
		}
		a.free = a.budget - want
		return
	}
	active := slices.Clone(a.ms)
	rest := a.budget // GPUs for the active members
	for len(active) > 0 {
		var w int64
		for _, s := range active {
			w += s.w
		}
		// λ = rest/w. A member is below its floor when Min×g > λ×w_i, i.e. Min×g×w > rest×w_i, above its
		// ceiling when Demand×g×w < rest×w_i. Clamping them changes the sum by lowBy − highBy (times 1/w).
		var low, high []*state
		var lowBy, highBy u128
		for _, s := range active {
			share := mul(rest, s.w)
			if lo := mul(s.min*s.g, w); lo.cmp(share) > 0 {
				low = append(low, s)
				lowBy = lowBy.add(lo.sub(share))
			} else if hi := mul(s.demand*s.g, w); hi.cmp(share) < 0 {
				high = append(high, s)
				highBy = highBy.add(share.sub(hi))
			}
		}
		c := lowBy.cmp(highBy)
		if c >= 0 { // the level is at or below λ: the members below their floor stay there
			for _, s := range low {
				s.target = s.min
				rest -= s.min * s.g
			}
			active = slices.DeleteFunc(active, func(s *state) bool { return slices.Contains(low, s) })
		}
		if c <= 0 { // the level is at or above λ: the members above their ceiling get their demand
			for _, s := range high {
				s.target = s.demand
				rest -= s.demand * s.g
			}
			active = slices.DeleteFunc(active, func(s *state) bool { return slices.Contains(high, s) })
		}
		if c == 0 { // λ is the level (clamping both sides cancels out): the rest get rest×w_i/w GPUs
			for _, s := range active {
				q, r := divmod(mul(rest, s.w), w) // GPUs, floor; the remainder makes it fractional
				s.target = q / s.g
				s.fractional = r != 0 || q%s.g != 0
			}
			break
		}
	}
	a.free = a.budget
	for _, s := range a.ms {
		a.free -= s.target * s.g
	}
	// The floors leave up to one replica per member unallocated: one each to the fractional levels, lowest
	// GPUs/weight first. Each gets at most one, so one pass in that order is the greedy.
	order := slices.Clone(a.ms)
	slices.SortStableFunc(order, fairOrder)
	for _, s := range order {
		if s.fractional && s.target < s.demand && s.g <= a.free {
			s.target++
			a.free -= s.g
		}
	}
}

// refill hands out GPUs still unallocated, one replica at a time, to the member with unmet demand whose
// next replica fits and that has the lowest GPUs granted per weight, so no GPU idles while it could serve.
func (a *allocation) refill() {
	for {
		var best *state
		for _, s := range a.ms {
			if s.target < s.demand && s.g <= a.free && (best == nil || fairOrder(s, best) < 0) {
				best = s
			}
		}
		if best == nil {
			return
		}
		best.target++
		a.free -= best.g
	}
}

// evictOnce is one round of step 3: the highest-priority member with unmet demand whose next replica would
// fit into the unallocated GPUs plus what lower priorities hold above their minimums takes it. It reports
// whether anything moved. Every round raises the GPUs of some priority while only lower priorities lose,
// so rounds cannot go on forever.
func (a *allocation) evictOnce() bool {
	var taker *state
	for _, s := range a.ms {
		if s.target >= s.demand || taker != nil && (s.prio < taker.prio || s.prio == taker.prio && fairOrder(s, taker) > 0) {
			continue
		}
		if a.free+a.aboveMin(s.prio) >= s.g {
			taker = s
		}
	}
	if taker == nil {
		return false
	}
	for a.free < taker.g {
		var v *state
		for _, s := range a.ms {
			if s.prio >= taker.prio || s.target <= s.min {
				continue
			}
			if v == nil || s.prio < v.prio || s.prio == v.prio && fairOrder(s, v) > 0 {
				v = s
			}
		}
		v.target--
		a.free += v.g
		if !slices.Contains(v.takenBy, taker.name) {
			v.takenBy = append(v.takenBy, taker.name)
		}
	}
	taker.target++
	a.free -= taker.g
	return true
}

// aboveMin is what members of priority below p hold beyond their minimums, in GPUs.
func (a *allocation) aboveMin(p Priority) int64 {
	var n int64
	for _, s := range a.ms {
		if s.prio < p && s.target > s.min {
			n += (s.target - s.min) * s.g
		}
	}
	return n
}

// shrinkBeforeGrow is step 4: shrinkers get their target, growers only the GPUs free right now.
func (a *allocation) shrinkBeforeGrow() {
	free := a.budget
	var growers []*state
	for _, s := range a.ms {
		free -= s.inUse * s.g
		if s.target <= s.inUse {
			s.grant = s.target
		} else {
			s.grant = s.inUse
			growers = append(growers, s)
		}
	}
	var need int64
	for _, s := range growers {
		need += (s.target - s.grant) * s.g
	}
	if need <= free { // the usual case: every grower fits, no order needed
		for _, s := range growers {
			s.grant = s.target
		}
		return
	}
	less := func(x, y *state) bool {
		if bx, by := x.grant < x.min, y.grant < y.min; bx != by {
			return bx
		}
		if a.policy == EvictLowPriority && x.prio != y.prio {
			return x.prio > y.prio
		}
		return ratioCmp(x.grant*x.g, x.w, y.grant*y.g, y.w, x, y) < 0
	}
	for {
		var best *state
		for _, s := range growers {
			if s.grant < s.target && s.g <= free && (best == nil || less(s, best)) {
				best = s
			}
		}
		if best == nil {
			return
		}
		best.grant++
		free -= best.g
	}
}

// fairOrder orders members by GPUs granted (target) per weight, then higher priority, then name: who is
// served next in step 2 (and, reversed, who gives up first among equals in step 3).
func fairOrder(x, y *state) int {
	return ratioCmp(x.target*x.g, x.w, y.target*y.g, y.w, x, y)
}

// ratioCmp compares xg/xw with yg/yw exactly, then breaks ties by priority (higher first) and name.
func ratioCmp(xg, xw, yg, yw int64, x, y *state) int {
	if c := mul(xg, yw).cmp(mul(yg, xw)); c != 0 {
		return c
	}
	if x.prio != y.prio {
		return int(y.prio - x.prio)
	}
	return strings.Compare(x.name, y.name)
}

// share is the member's weighted fair share of the whole budget, in GPUs, for status.
func (a *allocation) share(s *state) int64 {
	if s.g == 0 || a.weights == 0 {
		return 0
	}
	q, _ := divmod(mul(a.budget, s.w), a.weights)
	return q
}

// reason explains a grant that differs from what the member asked for.
func (a *allocation) reason(s *state) string {
	if s.grant == s.askedDemand {
		return ""
	}
	var parts []string
	if s.demand != s.askedDemand {
		parts = append(parts, fmt.Sprintf("its demand of %d replicas is outside its bounds [%d, %d]", s.askedDemand, s.min, s.max))
	}
	if s.grant < s.target {
		parts = append(parts, a.waiting(s))
	}
	if s.target < s.demand {
		parts = append(parts, a.held(s))
	}
	r := strings.Join(parts, "; ")
	return strings.ToUpper(r[:1]) + r[1:]
}

// waiting explains step 4: which members' pods still hold the GPUs this one needs to grow.
func (a *allocation) waiting(s *state) string {
	msg := fmt.Sprintf("grows from %d toward %d replicas as GPUs free up: waiting for %s", s.inUse, s.target, gpus((s.target-s.grant)*s.g))
	if a.holders == "" {
		var shrinkers []*state
		for _, o := range a.ms {
			if o.inUse > o.grant {
				shrinkers = append(shrinkers, o)
			}
		}
		// The largest holders first: those are the pods worth looking at when they are slow to go.
		slices.SortStableFunc(shrinkers, func(x, y *state) int {
			return cmp.Compare((y.inUse-y.grant)*y.g, (x.inUse-x.grant)*x.g)
		})
		var names []string
		for i, o := range shrinkers {
			if i == 3 {
				names = append(names, fmt.Sprintf("%d other members'", len(shrinkers)-3))
				break
			}
			names = append(names, o.name+"'s")
		}
		a.holders = strings.Join(names, " and ")
	}
	if a.holders != "" {
		return msg + fmt.Sprintf(" that %s terminating replicas still hold", a.holders)
	}
	return msg + " that the pool's running replicas still hold (they use more than its budget)"
}

// held explains why the target is below demand: a short budget, eviction, or the fair share.
func (a *allocation) held(s *state) string {
	msg := fmt.Sprintf("held at %d of the %d replicas it wants", s.target, s.demand)
	switch {
	case a.short:
		msg += fmt.Sprintf(": the pool's budget of %s is %s short of its members' minimums (%s)",
			gpus(a.budget), gpus(a.minNeed-a.budget), gpus(a.minNeed))
		if s.target < s.min {
			msg += fmt.Sprintf(", so it gets %d of its minimum %d replicas (minimums go by priority, then weight); raise the budget or lower a minimum", s.target, s.min)
		}
		return msg
	case len(s.takenBy) > 0 && s.target == s.min:
		return msg + fmt.Sprintf(" (its minimum): it gave up GPUs to higher-priority %s under eviction policy %s",
			strings.Join(s.takenBy, " and "), EvictLowPriority)
	}
	msg += fmt.Sprintf(": its weighted fair share is %s (weight %d of %d) and %d of the pool's %s are unallocated",
		gpus(a.share(s)), s.w, a.weights, a.free, gpus(a.budget))
	if a.free > 0 {
		msg += fmt.Sprintf(", fewer than the %s its next replica needs", gpus(s.g))
	}
	if len(s.takenBy) > 0 {
		msg += fmt.Sprintf("; it gave up GPUs to higher-priority %s under eviction policy %s", strings.Join(s.takenBy, " and "), EvictLowPriority)
	}
	switch spare := a.aboveMin(s.prio); {
	case a.policy != EvictLowPriority && spare > 0:
		msg += fmt.Sprintf("; eviction policy is %s, so lower-priority members keep their GPUs", EvictNone)
	case a.policy == EvictLowPriority && a.hasLower(s.prio):
		msg += fmt.Sprintf("; lower-priority members hold %s above their minimums, too few for its next replica", gpus(spare))
	}
	return msg
}

// hasLower says whether a member of priority below p uses GPUs in the pool.
func (a *allocation) hasLower(p Priority) bool {
	return slices.ContainsFunc(a.ms, func(s *state) bool { return s.prio < p })
}

// gpus spells a GPU count for a reason.
func gpus(n int64) string {
	if n == 1 {
		return "1 GPU"
	}
	return fmt.Sprintf("%d GPUs", n)
}

// u128 is an unsigned 128-bit integer: products of GPUs and weights can exceed int64 for large pools, and
// the fair level must compare them exactly to stay deterministic.
type u128 struct{ hi, lo uint64 }

// mul multiplies two non-negative int64s.
func mul(x, y int64) u128 {
	hi, lo := bits.Mul64(uint64(x), uint64(y))
	return u128{hi, lo}
}

func (x u128) add(y u128) u128 {
	lo, c := bits.Add64(x.lo, y.lo, 0)
	hi, _ := bits.Add64(x.hi, y.hi, c)
	return u128{hi, lo}
}

// sub assumes x >= y.
func (x u128) sub(y u128) u128 {
	lo, b := bits.Sub64(x.lo, y.lo, 0)
	hi, _ := bits.Sub64(x.hi, y.hi, b)
	return u128{hi, lo}
}

func (x u128) cmp(y u128) int {
	switch {
	case x.hi != y.hi:
		if x.hi < y.hi {
			return -1
		}
		return 1
	case x.lo < y.lo:
		return -1
	case x.lo > y.lo:
		return 1
	}
	return 0
}

// divmod divides by a positive int64 whose quotient fits in int64 (callers divide x×w by a sum ≥ w).
func divmod(x u128, d int64) (q, r int64) {
	uq, ur := bits.Div64(x.hi, x.lo, uint64(d))
	return int64(uq), int64(ur)
}
