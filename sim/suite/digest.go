package suite

import (
	"fmt"
	"slices"
	"strings"

	"github.com/llm-d/llm-d/sim"
)

// digest is the report's opening summary: the goals in one table, llmd beside each baseline, and the cases
// where something beats llmd.
type digest struct {
	// NotDominatedByFixed counts the cases where no fixed count dominates llmd (baselines aside).
	NotDominatedByFixed int
	Baselines           []baselineDigest
	Dominated           []dominatedCase
	// Totals are llmd's and each baseline's GPU-hours and mean attainment over every case, in Baselines order.
	Totals []total
}

type total struct {
	Policy         string
	GPUHours       float64
	MeanAttainment float64
}

// baselineDigest is llmd against one baseline over the suite: the cases where llmd dominates it, where it
// dominates llmd, and neither.
type baselineDigest struct {
	Policy                      string
	LLMDDominates, DominatesLLM int
	Neither                     int
}

// dominatedCase is a case where llmd is dominated: by which fixed counts (Fixed, cheapest first) and which
// baselines (Others).
type dominatedCase struct {
	Case          string
	LLMD          sim.Result
	Fixed, Others []string
	// Cheapest is the cheapest fixed count that dominates llmd (empty if none does).
	Cheapest sim.Result
	// References are the reference learners on the case.
	References []Variant
}

func newDigest(cases []CaseReport) digest {
	var d digest
	totals := map[string]*total{}
	for _, p := range Baselines {
		totals[p] = &total{Policy: p}
		if p != sim.LLMD {
			d.Baselines = append(d.Baselines, baselineDigest{Policy: p})
		}
	}
	for _, c := range cases {
		for _, p := range Baselines {
			r := find(c.Results, p)
			totals[p].GPUHours += r.GPUHours
			totals[p].MeanAttainment += r.SLOAttainment / float64(len(cases))
		}
		for i := range d.Baselines {
			d.Baselines[i].add(c)
		}
		dc := dominatedCase{Case: c.Case, LLMD: find(c.Results, sim.LLMD), References: c.References}
		for _, by := range c.Goals.DominatedBy {
			if strings.HasPrefix(by, sim.StaticPrefix) {
				dc.Fixed = append(dc.Fixed, by)
			} else {
				dc.Others = append(dc.Others, by)
			}
		}
		if len(dc.Fixed) == 0 {
			d.NotDominatedByFixed++
		} else {
			dc.Cheapest = find(c.Results, dc.Fixed[0]) // fixed counts are listed fewest first
		}
		if len(dc.Fixed)+len(dc.Others) > 0 {
			d.Dominated = append(d.Dominated, dc)
		}
	}
	for _, p := range Baselines {
		d.Totals = append(d.Totals, *totals[p])
	}
	return d
}

func (b *baselineDigest) add(c CaseReport) {
	cmp, _ := c.Frontier.Policy(b.Policy)
	switch {
	case slices.Contains(cmp.DominatedBy, sim.LLMD):
		b.LLMDDominates++
	case slices.Contains(c.Goals.DominatedBy, b.Policy):
		b.DominatesLLM++
	default:
		b.Neither++
	}
}

// digestSection writes the digest: what an SRE reads first.
func (r Report) digestSection(p *printer) {
	d, s := newDigest(r.Cases), r.Suite
	p.f("## Summary\n\n| question | answer |\n|---|---|\n")
	p.f("| cases where no fixed count in [%d, %d] is at least as good on both SLO met and GPU-h and better on one | %d of %d |\n",
		r.MinReplicas, r.MaxReplicas, d.NotDominatedByFixed, s.Cases)
	p.f("| goal *not dominated* (by a fixed count, hpa-queue or token-aware) | %s |\n", count(s.NotDominated, s.Cases, "cases"))
	p.f("| goal *learns*: ≥ %.0f %% outside the first bursts where a fixed count meets %.1f %% | %s |\n",
		100*LearnsTarget, 100*LearnsFixed, count(s.LearnsMet, s.LearnsApplies, "cases"))
	p.f("| goal *pays for itself*: llmd's GPU-h at most %.0f %% of the cheapest fixed count as good | %s |\n\n", 100*PaysShare, pays(s))
	p.f("Over all %d cases:\n\n| policy | GPU-h | mean SLO met | llmd dominates it | it dominates llmd | neither |\n|---|---|---|---|---|---|\n", s.Cases)
	for _, t := range d.Totals {
		p.f("| %s | %.2f | %s |", t.Policy, t.GPUHours, pct(t.MeanAttainment))
		if i := slices.IndexFunc(d.Baselines, func(b baselineDigest) bool { return b.Policy == t.Policy }); i >= 0 {
			b := d.Baselines[i]
			p.f(" %d | %d | %d |\n", b.LLMDDominates, b.DominatesLLM, b.Neither)
		} else {
			p.f(" – | – | – |\n")
		}
	}
	p.f("\n")
	if len(d.Dominated) == 0 {
		p.f("No fixed count or baseline dominates llmd on any case.\n\n")
		return
	}
	p.f("Cases where llmd is dominated (SLO met / GPU-h), and the reference learners there (dominated by what):\n\n" +
		"| case | llmd | cheapest fixed count that dominates | every fixed count that does | baselines that do |")
	for _, ref := range References {
		p.f(" %s |", ref)
	}
	p.f("\n|---|---|---|---|---|%s\n", strings.Repeat("---|", len(References)))
	for _, c := range d.Dominated {
		cheapest := "–"
		if c.Cheapest.Policy != "" {
			cheapest = fmt.Sprintf("%s (%s)", c.Cheapest.Policy, pair(c.Cheapest))
		}
		p.f("| [%s](#%s) | %s | %s | %s | %s |", c.Case, c.Case, pair(c.LLMD), cheapest, orDash(c.Fixed), orDash(c.Others))
		for _, v := range c.References {
			by := "not dominated"
			if len(v.Goals.DominatedBy) > 0 {
				by = "by " + sim.FormatDominated(v.Goals.DominatedBy)
			}
			p.f(" %s, %s |", pair(v.Result), by)
		}
		p.f("\n")
	}
	p.f("\n")
}

func orDash(s []string) string {
	if len(s) == 0 {
		return "–"
	}
	return strings.Join(s, ", ")
}
