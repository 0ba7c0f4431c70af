package pool

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// productionPool returns the production-pool sample (config/samples): llama-3-8b (high, weight 60) and phi-3-mini (normal, weight 40), one
// GPU per replica, 1..8 replicas each, with the given demands and replicas in use.
func productionPool(llama, phi, llamaInUse, phiInUse int32) []Member {
	return []Member{
		{Name: "llama-3-8b", Priority: High, Weight: 60, GPUsPerReplica: 1, Min: 1, Max: 8, Demand: llama, InUse: llamaInUse},
		{Name: "phi-3-mini", Priority: Normal, Weight: 40, GPUsPerReplica: 1, Min: 1, Max: 8, Demand: phi, InUse: phiInUse},
	}
}

// The production-pool sample, budget 4 GPUs. Shares are 2.4 and 1.6 GPUs (Share reports the floors, 2 and 1).
func TestProductionPool(t *testing.T) {
	cases := []struct {
		name       string
		policy     EvictionPolicy
		members    []Member
		llama, phi int32
		// substrings the reasons must contain ("" = reason must be empty)
		llamaWhy, phiWhy string
	}{
		{"a normal load: both get demand", EvictLowPriority, productionPool(2, 1, 0, 0), 2, 1, "", ""},
		// Water level 2.4 / 1.6 replicas: floors 2 and 1, one GPU left; it goes to the lower GPUs/weight,
		// phi (1/40 < 2/60). 2/2 is also the nearest whole split of 2.4/1.6 (off by 0.4 each, 3/1 by 0.6).
		{"b saturated, policy None: 2/2", EvictNone, productionPool(8, 8, 0, 0), 2, 2,
			"held at 2 of the 8 replicas it wants: its weighted fair share is 2 GPUs (weight 60 of 100)", "its weighted fair share is 1 GPU (weight 40 of 100)"},
		// Same load under LowPriority: llama takes phi's replica above its minimum.
		{"b' saturated, policy LowPriority: 3/1", EvictLowPriority, productionPool(8, 8, 0, 0), 3, 1,
			"held at 3 of the 8 replicas it wants", "gave up GPUs to higher-priority llama-3-8b under eviction policy LowPriority"},
		{"c pressure, LowPriority: phi gives up first", EvictLowPriority, productionPool(4, 3, 0, 0), 3, 1,
			"held at 3 of the 4 replicas it wants: its weighted fair share is 2 GPUs (weight 60 of 100) and 0 of the pool's 4 GPUs are unallocated; lower-priority members hold 0 GPUs above their minimums",
			"held at 1 of the 3 replicas it wants (its minimum): it gave up GPUs to higher-priority llama-3-8b"},
		{"c pressure, None: fair split", EvictNone, productionPool(4, 3, 0, 0), 2, 2, "held at 2 of the 4", "held at 2 of the 3"},
		{"d phi idle: llama borrows its share", EvictNone, productionPool(8, 1, 0, 0), 3, 1, "held at 3 of the 8", ""},
		{"d phi idle, llama wants exactly 3", EvictLowPriority, productionPool(3, 1, 0, 0), 3, 1, "", ""},
		{"e shrink before grow: no GPU free yet", EvictLowPriority, productionPool(3, 1, 1, 3), 1, 1,
			"waiting for 2 GPUs that phi-3-mini's terminating replicas still hold", ""},
		{"e next cycle: phi's pods are gone", EvictLowPriority, productionPool(3, 1, 1, 1), 3, 1, "", ""},
		{"e halfway: one of phi's pods is gone", EvictLowPriority, productionPool(3, 1, 1, 2), 2, 1,
			"grows from 1 toward 3 replicas as GPUs free up: waiting for 1 GPU that phi-3-mini's", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := Allocate(4, c.policy, c.members)
			if g[0].Name != "llama-3-8b" || g[1].Name != "phi-3-mini" {
				t.Fatalf("grants out of order: %+v", g)
			}
			if g[0].Replicas != c.llama || g[1].Replicas != c.phi {
				t.Fatalf("llama %d phi %d, want %d and %d\n%+v", g[0].Replicas, g[1].Replicas, c.llama, c.phi, g)
			}
			if g[0].Share != 2 || g[1].Share != 1 {
				t.Errorf("shares %d and %d, want 2 and 1", g[0].Share, g[1].Share)
			}
			for i, want := range []string{c.llamaWhy, c.phiWhy} {
				got := strings.ToLower(g[i].Reason)
				if want == "" && got != "" || !strings.Contains(got, strings.ToLower(want)) {
					t.Errorf("%s reason %q, want it to contain %q", g[i].Name, g[i].Reason, want)
				}
			}
		})
	}
}

func TestShortBudgetGrantsMinimumsByPriority(t *testing.T) {
	members := []Member{
		{Name: "b-low", Priority: Low, Weight: 50, GPUsPerReplica: 1, Min: 1, Max: 4, Demand: 2},
		{Name: "a-normal-light", Priority: Normal, Weight: 10, GPUsPerReplica: 2, Min: 1, Max: 4, Demand: 1},
		{Name: "c-normal-heavy", Priority: Normal, Weight: 90, GPUsPerReplica: 2, Min: 2, Max: 4, Demand: 2},
		{Name: "d-high", Priority: High, Weight: 1, GPUsPerReplica: 1, Min: 2, Max: 4, Demand: 3},
		{Name: "e-cpu", Priority: Low, Weight: 1, GPUsPerReplica: 0, Min: 1, Max: 4, Demand: 4},
	}
	// Minimums need 1 + 2 + 4 + 2 = 9 GPUs of 7: d-high 2, c-normal-heavy (larger weight) 4, then only 1
	// GPU is left: a-normal-light's 2-GPU replica does not fit, b-low's 1-GPU replica does.
	g := Allocate(7, EvictLowPriority, members)
	want := map[string]int32{"b-low": 1, "a-normal-light": 0, "c-normal-heavy": 2, "d-high": 2, "e-cpu": 4}
	for _, x := range g {
		if x.Replicas != want[x.Name] {
			t.Errorf("%s: %d replicas, want %d (%+v)", x.Name, x.Replicas, want[x.Name], g)
		}
	}
	if r := g[1].Reason; !strings.Contains(r, "budget of 7 GPUs is 2 GPUs short of its members' minimums (9 GPUs)") ||
		!strings.Contains(r, "0 of its minimum 1 replicas") {
		t.Errorf("a-normal-light reason %q", r)
	}
	if g[4].Reason != "" || g[4].Share != 0 {
		t.Errorf("e-cpu uses no GPUs: %+v", g[4])
	}
}

// The water level is rounded, not handed out greedily: weights 55/15/15/15 on 10 one-GPU replicas give the
// first member 5 (its share is 5.5); replica-by-replica lowest-GPUs/weight would give it 4.
func TestRoundingStaysWithinOneReplicaOfShare(t *testing.T) {
	var ms []Member
	for i, w := range []int32{55, 15, 15, 15} {
		ms = append(ms, Member{Name: fmt.Sprint("m", i), Priority: Normal, Weight: w, GPUsPerReplica: 1, Min: 1, Max: 10, Demand: 10})
	}
	g := Allocate(10, EvictNone, ms)
	got := []int32{g[0].Replicas, g[1].Replicas, g[2].Replicas, g[3].Replicas}
	if fmt.Sprint(got) != "[5 2 2 1]" {
		t.Errorf("got %v, want [5 2 2 1]", got)
	}
}

func TestDemandOutsideBoundsIsClampedAndSaid(t *testing.T) {
	g := Allocate(10, EvictNone, []Member{{Name: "x", Weight: 1, GPUsPerReplica: 1, Min: 2, Max: 3, Demand: 7}})
	if g[0].Replicas != 3 || !strings.Contains(g[0].Reason, "outside its bounds [2, 3]") {
		t.Errorf("%+v", g[0])
	}
}

// randomPool draws a pool that exercises every rule: mixed priorities, weights and GPU sizes, some members
// that use no GPUs, budgets from far too small to more than enough.
func randomPool(r *rand.Rand) (int64, []Member) {
	n := 1 + r.IntN(7)
	ms := make([]Member, n)
	var maxNeed int64
	for i := range ms {
		g := []int64{0, 1, 1, 1, 2, 2, 4, 8}[r.IntN(8)]
		lo := 1 + r.Int32N(3)
		hi := lo + r.Int32N(8)
		ms[i] = Member{
			Name:           fmt.Sprintf("m%02d", r.IntN(100)*10+i), // unique, in no particular order
			Priority:       Priority(r.IntN(3)),
			Weight:         1 + r.Int32N(100),
			GPUsPerReplica: g,
			Min:            lo, Max: hi,
			Demand: lo + r.Int32N(hi-lo+1),
		}
		maxNeed += int64(hi) * g
	}
	return r.Int64N(maxNeed + 3), ms
}

func sums(ms []Member, g []Grant) (minNeed, used, inUse, held int64) {
	for i, m := range ms {
		minNeed += int64(m.Min) * m.GPUsPerReplica
		used += int64(g[i].Replicas) * m.GPUsPerReplica
		inUse += int64(m.InUse) * m.GPUsPerReplica
		held += int64(max(m.InUse, g[i].Replicas)) * m.GPUsPerReplica
	}
	return
}

// With nothing in use (a fresh pool) the grants are the targets of steps 1-3.
func TestPropertiesOfTargets(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 5000 {
		budget, ms := randomPool(r)
		for _, policy := range []EvictionPolicy{EvictNone, EvictLowPriority} {
			g := Allocate(budget, policy, ms)
			minNeed, used, _, _ := sums(ms, g)
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("iter %d budget %d policy %s: %s\nmembers %+v\ngrants %+v", iter, budget, policy, fmt.Sprintf(format, args...), ms, g)
			}
			if used > budget {
				fail("%d GPUs granted", used)
			}
			for i, m := range ms {
				x := g[i]
				if x.Name != m.Name || x.Replicas < 0 || x.Replicas > m.Max || x.Replicas > m.Demand {
					fail("%s: %d replicas outside [0, min(Max, Demand)]", m.Name, x.Replicas)
				}
				if minNeed <= budget && x.Replicas < m.Min {
					fail("%s below its minimum though minimums fit", m.Name)
				}
				if m.GPUsPerReplica == 0 && x.Replicas != m.Demand {
					fail("%s uses no GPUs but did not get its demand", m.Name)
				}
				if (x.Reason == "") != (x.Replicas == m.Demand) {
					fail("%s: reason %q for %d of %d", m.Name, x.Reason, x.Replicas, m.Demand)
				}
				if x.Replicas >= m.Demand {
					continue
				}
				// Work-conserving: what is left does not fit its next replica.
				if budget-used >= m.GPUsPerReplica {
					fail("%s wants more and %d GPUs idle", m.Name, budget-used)
				}
				// Priority: lower priorities' GPUs above their minimums could not fit its next replica either.
				if policy == EvictLowPriority {
					spare := budget - used
					for j, o := range ms {
						if o.Priority < m.Priority && g[j].Replicas > o.Min {
							spare += int64(g[j].Replicas-o.Min) * o.GPUsPerReplica
						}
					}
					if spare >= m.GPUsPerReplica {
						fail("%s (%s) held below demand while %d GPUs are idle or above lower priorities' minimums", m.Name, m.Priority, spare)
					}
				}
			}
			// Determinism: same input, same output; permuted input, same grants by name.
			again := Allocate(budget, policy, ms)
			for i := range g {
				if g[i] != again[i] {
					fail("second run differs: %+v", again)
				}
			}
			perm := r.Perm(len(ms))
			shuffled := make([]Member, len(ms))
			for i, p := range perm {
				shuffled[i] = ms[p]
			}
			for i, x := range Allocate(budget, policy, shuffled) {
				if x != g[perm[i]] {
					fail("permuted input gives %+v for %s", x, ms[perm[i]].Name)
				}
			}
		}
	}
}

// Saturated members of one priority and one GPU size split the budget by weight, each within one replica
// of budget×w/Σw/g.
func TestPropertyProportionalWhenSaturated(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for iter := range 3000 {
		n := 2 + r.IntN(7)
		g := []int64{1, 2, 4, 8}[r.IntN(4)]
		prio := Priority(r.IntN(3))
		weights := make([]int64, n)
		var sum, least int64 = 0, 101
		for i := range weights {
			weights[i] = 1 + r.Int64N(100)
			sum += weights[i]
			least = min(least, weights[i])
		}
		// Every share at least one replica (the minimum), so minimums never distort the split.
		budget := g*((sum+least-1)/least) + r.Int64N(60*g)
		ms := make([]Member, n)
		for i := range ms {
			ms[i] = Member{Name: fmt.Sprint("m", i), Priority: prio, Weight: int32(weights[i]), GPUsPerReplica: g,
				Min: 1, Max: int32(budget/g + 1), Demand: int32(budget/g + 1)}
		}
		policy := []EvictionPolicy{EvictNone, EvictLowPriority}[iter%2]
		grants := Allocate(budget, policy, ms)
		for i, x := range grants {
			// |replicas − budget×w/(sum×g)| < 1, in integers.
			dev := int64(x.Replicas)*sum*g - budget*weights[i]
			if dev <= -sum*g || dev >= sum*g {
				t.Fatalf("iter %d budget %d g %d weights %v: %s got %d, share %.2f replicas\n%+v",
					iter, budget, g, weights, x.Name, x.Replicas, float64(budget*weights[i])/float64(sum*g), grants)
			}
		}
	}
}

// Shrink before grow: growth never needs GPUs that pods still hold; shrinkers get their target at once;
// and once the pods have settled, a second cycle reaches the fresh pool's grants.
func TestPropertyShrinkBeforeGrow(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for iter := range 5000 {
		budget, ms := randomPool(r)
		policy := []EvictionPolicy{EvictNone, EvictLowPriority}[iter%2]
		fresh := Allocate(budget, policy, ms)
		for i := range ms {
			ms[i].InUse = r.Int32N(ms[i].Max + 3)
		}
		g := Allocate(budget, policy, ms)
		minNeed, used, inUse, held := sums(ms, g)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("iter %d budget %d policy %s: %s\nmembers %+v\nfresh %+v\ngrants %+v", iter, budget, policy, fmt.Sprintf(format, args...), ms, fresh, g)
		}
		if inUse <= budget && held > budget {
			fail("pods would hold %d GPUs", held)
		}
		if minNeed <= budget && used > budget {
			fail("%d GPUs granted", used)
		}
		for i, m := range ms {
			x, target := g[i].Replicas, fresh[i].Replicas
			switch {
			case x < 0 || x > m.Max:
				fail("%s: %d outside [0, Max]", m.Name, x)
			case target <= m.InUse && x != target:
				fail("%s shrinks to %d, not its target %d", m.Name, x, target)
			case target > m.InUse && (x < m.InUse || x > target):
				fail("%s grows to %d, outside [InUse %d, target %d]", m.Name, x, m.InUse, target)
			case x < target && !strings.Contains(g[i].Reason, "waiting for"):
				fail("%s waits without saying so: %q", m.Name, g[i].Reason)
			case minNeed <= budget && x < min(m.Min, m.InUse):
				fail("%s below min(Min, InUse)", m.Name)
			}
		}
		for i := range ms {
			ms[i].InUse = g[i].Replicas
		}
		for i, x := range Allocate(budget, policy, ms) {
			if x != fresh[i] {
				fail("second cycle gives %+v, fresh pool %+v", x, fresh[i])
			}
		}
	}
}

func BenchmarkAllocate(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprint(n, "members"), func(b *testing.B) {
			r := rand.New(rand.NewPCG(7, 8))
			ms := make([]Member, n)
			var budget int64
			for i := range ms {
				ms[i] = Member{Name: fmt.Sprintf("model-%03d", i), Priority: Priority(r.IntN(3)), Weight: 1 + r.Int32N(100),
					GPUsPerReplica: 1 + r.Int64N(4), Min: 1, Max: 16, Demand: 1 + r.Int32N(16), InUse: 1 + r.Int32N(8)}
				budget += ms[i].GPUsPerReplica * 4 // pressure: about half of the demand fits
			}
			for b.Loop() {
				Allocate(budget, EvictLowPriority, ms)
			}
		})
	}
}

// Huge pools need products beyond int64 (GPUs × weights); the arithmetic stays exact.
func TestLargeNumbers(t *testing.T) {
	const g = 1 << 20
	budget := int64(1) << 50 // 2^30 replicas
	ms := []Member{
		{Name: "a", Priority: Normal, Weight: 1<<31 - 1, GPUsPerReplica: g, Min: 1, Max: 1<<31 - 1, Demand: 1<<31 - 1},
		{Name: "b", Priority: Normal, Weight: 1<<30 - 1, GPUsPerReplica: g, Min: 1, Max: 1<<31 - 1, Demand: 1<<31 - 1},
	}
	got := Allocate(budget, EvictNone, ms)
	// Shares: 2^30 × (2^31−1)/(3×2^30−2) = 715827882.67 and 357913941.33 replicas; the floors leave one
	// replica, which goes to a (715827882/(2^31−1) < 357913941/(2^30−1)).
	if got[0].Replicas != 715827883 || got[1].Replicas != 357913941 {
		t.Errorf("%+v", got)
	}
	if got[0].Share != 750599938011591 || got[1].Share != 375299968831032 || Low.String() != "low" || High.String() != "high" || Priority(7).String() != "priority(7)" {
		t.Errorf("share %d, %s %s", got[0].Share, Normal, Priority(7))
	}
}

// A member that needs no GPUs takes no share: the budget is split among the members that use GPUs, as the
// allocation (Grant.Share) splits it.
func TestSharesLeaveOutMembersWithoutGPUs(t *testing.T) {
	members := []Member{
		{Name: "llama", Weight: 60, GPUsPerReplica: 1, Min: 1, Max: 8, Demand: 1},
		{Name: "cpu-embedder", Weight: 40, GPUsPerReplica: 0, Min: 1, Max: 8, Demand: 1},
		{Name: "phi", Weight: 20, GPUsPerReplica: 2, Min: 1, Max: 8, Demand: 1},
	}
	shares := Shares(8, members)
	if want := []int64{6, 0, 2}; fmt.Sprint(shares) != fmt.Sprint(want) { // 8×60/80 and 8×20/80
		t.Errorf("shares %v, want %v", shares, want)
	}
	for i, g := range Allocate(8, EvictNone, members) {
		if g.Share != shares[i] {
			t.Errorf("%s: Allocate's share %d, Shares %d", g.Name, g.Share, shares[i])
		}
	}
	if got := Shares(8, members[1:2]); got[0] != 0 {
		t.Errorf("a pool of one member without GPUs: share %d, want 0", got[0])
	}
}
