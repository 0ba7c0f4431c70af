package suite

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/sim"
)

// The short suite end to end: its structure, not the scaling quality (the benchmark's job). Two
// 40-minute traces on the A10G, maxReplicas 3 and one mechanism of the decision ablated, to keep it short.
func TestShortSuite(t *testing.T) {
	var cases []Case
	for _, c := range Cases(Short(1), nil, 1) {
		if c.Preset.Name == "a10g" {
			cases = append(cases, c)
		}
	}
	policy := decision.Policy{MinReplicas: 1, MaxReplicas: 3, TargetQueue: 5, TargetDecodeTPS: 400, ScaleDownWindow: 300 * time.Second}
	mechs := decision.Mechanisms()[:min(1, len(decision.Mechanisms()))]
	rep, err := Run(cases, Options{Config: sim.Config{Policy: policy, Warmup: 5 * time.Minute}, Mechanisms: mechs, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Cases) != 2 || rep.Suite.Cases != 2 || len(rep.Ablations) != len(mechs) || len(rep.References) != len(References) {
		t.Fatalf("%d cases, suite over %d, %d ablations, %d references; want 2, 2, %d, %d",
			len(rep.Cases), rep.Suite.Cases, len(rep.Ablations), len(rep.References), len(mechs), len(References))
	}
	want := []string{"static:1", "static:2", "static:3", sim.LLMD, sim.HPAQueue, sim.TokenAware, sim.TokenAwareShipped}
	for _, c := range rep.Cases {
		var names []string
		for _, r := range c.Results {
			names = append(names, r.Policy)
			if r.Requests != c.Requests || r.GPUHours <= 0 || r.Met != nil {
				t.Errorf("%s %s: %d requests (want %d), %v GPU-h, per-request outcomes kept", c.Case, r.Policy, r.Requests, c.Requests, r.GPUHours)
			}
		}
		if !slices.Equal(names, want) {
			t.Errorf("%s: results %v, want %v", c.Case, names, want)
		}
		if len(c.Frontier.Fixed) != 3 || len(c.Frontier.Policies) != len(Baselines) {
			t.Errorf("%s: frontier of %d counts and %d policies", c.Case, len(c.Frontier.Fixed), len(c.Frontier.Policies))
		}
		// llmd's goals agree with its frontier comparison, and its pays figures with the fixed runs.
		llmd, _ := c.Frontier.Policy(sim.LLMD)
		if c.Goals.NotDominated != (len(c.Goals.DominatedBy) == 0) || (len(llmd.DominatedBy) == 0) != c.Goals.NotDominated {
			t.Errorf("%s: goals %+v against frontier %+v", c.Case, c.Goals, llmd)
		}
		if n := c.Goals.Pays.CheapestFixed; n > 0 && find(c.Results, sim.Static(n)).SLOAttainment < llmd.Attainment {
			t.Errorf("%s: the cheapest fixed count as good, %d, is worse than llmd", c.Case, n)
		}
		if len(c.Bursts) == 0 || c.Goals.Learns.Requests > c.Requests || c.Goals.Learns.Requests == 0 {
			t.Errorf("%s: %d bursts, %d requests outside the first bursts of %d", c.Case, len(c.Bursts), c.Goals.Learns.Requests, c.Requests)
		}
		for _, b := range c.Bursts {
			if len(b.Attainment) != len(Baselines)+1 || b.Requests == 0 {
				t.Errorf("%s: burst %+v", c.Case, b)
			}
		}
		if len(c.Ablation) != len(mechs) || c.Runs != len(want)+len(mechs)+len(References) || len(c.plot) != len(Baselines)+1 {
			t.Errorf("%s: %d ablations, %d runs, %d plotted", c.Case, len(c.Ablation), c.Runs, len(c.plot))
		}
		// The references are scored like llmd, against the fixed counts and baselines only.
		for i, v := range c.References {
			if v.Name != References[i] || v.Result.Policy != References[i] || v.Result.Requests != c.Requests || v.Goals.Learns.Requests == 0 ||
				slices.Contains(c.Goals.DominatedBy, v.Name) {
				t.Errorf("%s: reference %d is %s (%s, %d requests, %d outside the first bursts)", c.Case, i, v.Name,
					v.Result.Policy, v.Result.Requests, v.Goals.Learns.Requests)
			}
		}
	}

	dir := t.TempDir()
	if err := rep.Write(dir, About{Service: "svc.yaml", Command: "test", Seed: 1, RoutingSeed: 1}); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "RESULTS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"## Summary", "## Goals over the suite", "## Per case", "## Ablation", "## References", "## The traces",
		"### short-steps-4x-a10g", "### short-mix-a10g", "| fixed | 1 | 2 | 3 |", "![short-mix-a10g](short-mix-a10g.png)"} {
		if !bytes.Contains(md, []byte(s)) {
			t.Errorf("RESULTS.md lacks %q", s)
		}
	}
	for _, c := range rep.Cases {
		b, err := os.ReadFile(filepath.Join(dir, c.Case+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var back CaseReport
		if err := json.Unmarshal(b, &back); err != nil || back.Case != c.Case || len(back.Results) != len(c.Results) ||
			len(back.Bursts) != len(c.Bursts) || back.Goals.Pays != c.Goals.Pays {
			t.Errorf("%s.json does not read back: %v", c.Case, err)
		}
		png, err := os.ReadFile(filepath.Join(dir, c.Case+".png"))
		if err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
			t.Errorf("%s.png: %v", c.Case, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "suite.json")); err != nil {
		t.Error(err)
	}
}
