package pool

import (
	"fmt"
	"testing"
)

// FuzzAllocate decodes a pool from the input (up to 8 members, any budget, both eviction policies, replicas
// in use or not) and checks what the scaler relies on: one grant per member, in [0, Max]; a fresh pool never
// grants more GPUs than the budget; with pods in use, the GPUs held while the pool moves (max(InUse, grant)
// per member) never exceed the budget as long as the pods in use did not already; and the same input gives
// the same grants.
func FuzzAllocate(f *testing.F) {
	f.Add(int64(4), false, []byte{})
	f.Add(int64(4), true, []byte{2, 60, 1, 1, 8, 8, 0, 1, 40, 1, 1, 8, 8, 0})
	f.Add(int64(3), true, []byte{2, 60, 1, 1, 4, 4, 1, 1, 40, 1, 1, 4, 4, 1})
	f.Add(int64(0), false, []byte{0, 1, 8, 3, 3, 3, 3})
	f.Add(int64(17), true, []byte{2, 1, 2, 1, 9, 9, 5, 0, 100, 4, 2, 3, 1, 7, 1, 55, 0, 1, 8, 8, 2})
	f.Add(int64(-5), true, []byte{1, 1, 1, 1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, budget int64, lowPriority bool, data []byte) {
		policy := EvictNone
		if lowPriority {
			policy = EvictLowPriority
		}
		next := func() int32 {
			if len(data) == 0 {
				return 0
			}
			c := data[0]
			data = data[1:]
			return int32(c)
		}
		var ms []Member
		for i := 0; len(data) > 0 && i < 8; i++ {
			m := Member{Name: fmt.Sprintf("m%d", i), Priority: Priority(next() % 3), Weight: next() - 10}
			m.GPUsPerReplica = []int64{0, 1, 1, 2, 4, 8, 1 << 20, 3}[next()%8]
			m.Min = 1 + next()%4
			m.Max = m.Min + next()%12
			m.Demand = next() % (m.Max + 3) // the engine clamps; Allocate must cope either way
			m.InUse = next() % (m.Max + 4)
			ms = append(ms, m)
		}
		budget %= 1 << 40

		check := func(what string, ms []Member) []Grant {
			g := Allocate(budget, policy, ms)
			if len(g) != len(ms) {
				t.Fatalf("%s: %d grants for %d members", what, len(g), len(ms))
			}
			var used, inUse, held int64
			for i, m := range ms {
				if g[i].Name != m.Name || g[i].Replicas < 0 || g[i].Replicas > m.Max {
					t.Fatalf("%s: %s granted %d, outside [0, %d]\nmembers %+v\ngrants %+v", what, m.Name, g[i].Replicas, m.Max, ms, g)
				}
				used += int64(g[i].Replicas) * m.GPUsPerReplica
				inUse += int64(m.InUse) * m.GPUsPerReplica
				held += int64(max(m.InUse, g[i].Replicas)) * m.GPUsPerReplica
			}
			if inUse == 0 && used > max(budget, 0) {
				t.Fatalf("%s: a fresh pool grants %d GPUs of a budget of %d\nmembers %+v\ngrants %+v", what, used, budget, ms, g)
			}
			if inUse <= max(budget, 0) && held > max(budget, 0) {
				t.Fatalf("%s: pods would hold %d GPUs of a budget of %d (%d in use)\nmembers %+v\ngrants %+v", what, held, budget, inUse, ms, g)
			}
			for i, x := range Allocate(budget, policy, ms) {
				if x != g[i] {
					t.Fatalf("%s: a second run gives %+v, the first %+v", what, x, g[i])
				}
			}
			return g
		}
		check("in use", ms)
		fresh := make([]Member, len(ms))
		for i, m := range ms {
			m.InUse = 0
			fresh[i] = m
		}
		check("fresh", fresh)
	})
}
