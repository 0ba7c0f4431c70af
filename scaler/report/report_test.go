package report

import (
	"testing"
	"time"
)

func TestStale(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	busy := written{desired: 3, rule: "QueueAboveTarget", signals: [4]string{"4.00", "30.00", "850.00", "0.60"}, at: t0}
	idle := busy
	idle.signals = [4]string{"0.00", "0.00", "0.00", "0.05"}
	later := func(w written, d time.Duration) written { w.at = t0.Add(d); return w }
	for _, c := range []struct {
		name       string
		prev, now  written
		seen, want bool
	}{
		{"first decision", written{}, busy, false, true},
		{"count changed", busy, written{desired: 4, rule: busy.rule, signals: busy.signals, at: t0.Add(time.Second)}, true, true},
		{"rule changed", busy, written{desired: 3, rule: "ScaleDownStabilizing", signals: busy.signals, at: t0.Add(time.Second)}, true, true},
		{"same signals, long after", busy, later(busy, time.Hour), true, false},
		{"signals moved, within the refresh", busy, later(idle, 29*time.Second), true, false},
		// The case that left an idle service showing its last busy tokens/s.
		{"signals moved, refresh passed", busy, later(idle, 30*time.Second), true, true},
		{"the service cannot be read", busy, written{desired: 3, rule: busy.rule, signals: busy.signals, at: t0.Add(time.Second), failure: "forbidden"}, true, true},
		{"still the same failure", written{desired: 3, rule: busy.rule, failure: "forbidden"}, written{desired: 3, rule: busy.rule, at: t0.Add(time.Hour), failure: "forbidden"}, true, false},
	} {
		if got := stale(c.prev, c.seen, c.now, DefaultSignalRefresh); got != c.want {
			t.Errorf("%s: stale = %v, want %v", c.name, got, c.want)
		}
	}
}
