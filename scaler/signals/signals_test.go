package signals

import (
	"errors"
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func TestDecodeRateAndCounterReset(t *testing.T) {
	var p Pod
	steps := []struct {
		at      time.Duration
		tokens  float64
		wantTPS float64
		hasTPS  bool
	}{
		{0, 1000, 0, false}, // one scrape: no rate yet
		{5 * time.Second, 3000, 400, true},
		{10 * time.Second, 3000, 0, true}, // idle is a real zero
		{15 * time.Second, 200, 0, false}, // reset: vLLM restarted, no rate this round
		{20 * time.Second, 1200, 200, true},
	}
	for _, st := range steps {
		p.Observe(t0.Add(st.at), Sample{GenerationTokens: st.tokens, Waiting: 1, Running: 2})
		s, err := p.Signals(t0.Add(st.at), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if s.HasDecodeTPS != st.hasTPS || math.Abs(s.DecodeTPS-st.wantTPS) > 1e-9 && st.hasTPS {
			t.Fatalf("at %s: tps %v (has %v), want %v (has %v)", st.at, s.DecodeTPS, s.HasDecodeTPS, st.wantTPS, st.hasTPS)
		}
	}
}

func TestMissingAndStaleData(t *testing.T) {
	var p Pod
	if _, err := p.Signals(t0, time.Second); err == nil {
		t.Fatal("a pod never scraped has signals")
	}
	p.Observe(t0, Sample{Waiting: 3})
	if _, err := p.Signals(t0.Add(11*time.Second), 10*time.Second); err == nil {
		t.Fatal("stale data accepted")
	}
	boom := errors.New("connection refused")
	p.Fail(t0.Add(time.Second), boom)
	if _, err := p.Signals(t0.Add(time.Second), 10*time.Second); !errors.Is(err, boom) {
		t.Fatalf("failed scrape not reported: %v", err)
	}
	p.Observe(t0.Add(2*time.Second), Sample{Waiting: 4})
	if s, err := p.Signals(t0.Add(2*time.Second), 10*time.Second); err != nil || s.Waiting != 4 {
		t.Fatalf("recovered pod: %+v %v", s, err)
	}
}
