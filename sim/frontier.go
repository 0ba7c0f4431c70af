package sim

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// The frontier of fixed counts is what an SRE gets without autoscaling: each count from minReplicas to
// maxReplicas, ready the whole trace, is one point (SLO attainment, GPU-hours). Between two neighbouring
// counts on the frontier the line is a blend of the two (running the larger count for part of the time), so
// a policy is judged against the frontier linearly interpolated between them:
//
//   - at equal GPU-hours, the attainment the frontier reaches with the policy's GPU-hours; beyond the most
//     expensive frontier count the frontier is flat (more GPU-hours buy nothing within maxReplicas), and
//     below the cheapest there is nothing to compare with (no policy spends less than minReplicas does);
//   - at equal attainment, the GPU-hours the frontier needs for the policy's attainment; below the cheapest
//     count's attainment that is the cheapest count's GPU-hours (it already does better), and above the
//     best count's there is no fixed count within maxReplicas that reaches it.

// FixedPoint is one fixed count's run.
type FixedPoint struct {
	Replicas   int32   `json:"replicas"`
	Attainment float64 `json:"slo_attainment"`
	GPUHours   float64 `json:"gpu_hours"`
	// OnFrontier says that no other fixed count is at least as good on both and better on one.
	OnFrontier bool `json:"on_frontier"`
}

// Comparison is one policy against the fixed counts and the other policies.
type Comparison struct {
	Policy     string  `json:"policy"`
	Attainment float64 `json:"slo_attainment"`
	GPUHours   float64 `json:"gpu_hours"`
	// DominatedBy lists the fixed counts and other policies at least as good on both SLO attainment and
	// GPU-hours and better on one.
	DominatedBy []string `json:"dominated_by"`
	// FrontierAttainment is the frontier's attainment at the policy's GPU-hours and AttainmentGain the
	// policy's attainment minus it; nil below the cheapest count.
	FrontierAttainment *float64 `json:"frontier_attainment_at_equal_gpu_hours"`
	AttainmentGain     *float64 `json:"attainment_gain"`
	// FrontierGPUHours is the frontier's GPU-hours at the policy's attainment and GPUHourSaving the share of
	// them the policy saves (1 − GPUHours / FrontierGPUHours; negative when it spends more); nil when no fixed
	// count within maxReplicas reaches the policy's attainment.
	FrontierGPUHours *float64 `json:"frontier_gpu_hours_at_equal_attainment"`
	GPUHourSaving    *float64 `json:"gpu_hour_saving"`
	// CheapestFixed is the fewest fixed replicas whose attainment is at least the policy's (0 if none within
	// maxReplicas), and CheapestFixedGPUHours their GPU-hours.
	CheapestFixed         int32   `json:"cheapest_fixed"`
	CheapestFixedGPUHours float64 `json:"cheapest_fixed_gpu_hours"`
}

// Frontier is the fixed counts' frontier and every other policy against it.
type Frontier struct {
	Fixed    []FixedPoint `json:"fixed"`
	Policies []Comparison `json:"policies"`
}

// NewFrontier sorts results into fixed counts (policies static:N) and the others, and compares each other
// policy with every fixed count and with the other policies.
func NewFrontier(results []Result) Frontier {
	var f Frontier
	var others []Result
	for _, r := range results {
		if n, ok, err := ParseStatic(r.Policy); ok && err == nil {
			f.Fixed = append(f.Fixed, FixedPoint{Replicas: n, Attainment: r.SLOAttainment, GPUHours: r.GPUHours})
		} else {
			others = append(others, r)
		}
	}
	slices.SortFunc(f.Fixed, func(a, b FixedPoint) int { return int(a.Replicas - b.Replicas) })
	for i := range f.Fixed {
		f.Fixed[i].OnFrontier = true
		for j := range f.Fixed {
			if dominates(f.Fixed[j].Attainment, f.Fixed[j].GPUHours, f.Fixed[i].Attainment, f.Fixed[i].GPUHours) {
				f.Fixed[i].OnFrontier = false
			}
		}
	}
	front := f.frontier()
	for _, r := range others {
		c := Comparison{Policy: r.Policy, Attainment: r.SLOAttainment, GPUHours: r.GPUHours, DominatedBy: []string{}}
		for _, p := range f.Fixed {
			if dominates(p.Attainment, p.GPUHours, c.Attainment, c.GPUHours) {
				c.DominatedBy = append(c.DominatedBy, Static(p.Replicas))
			}
			if c.CheapestFixed == 0 && p.Attainment >= c.Attainment {
				c.CheapestFixed, c.CheapestFixedGPUHours = p.Replicas, p.GPUHours
			}
		}
		for _, o := range others {
			if o.Policy != r.Policy && dominates(o.SLOAttainment, o.GPUHours, c.Attainment, c.GPUHours) {
				c.DominatedBy = append(c.DominatedBy, o.Policy)
			}
		}
		if a, ok := attainmentAt(front, c.GPUHours); ok {
			gain := c.Attainment - a
			c.FrontierAttainment, c.AttainmentGain = &a, &gain
		}
		if g, ok := gpuHoursAt(front, c.Attainment); ok {
			saving := 1 - c.GPUHours/g
			c.FrontierGPUHours, c.GPUHourSaving = &g, &saving
		}
		f.Policies = append(f.Policies, c)
	}
	return f
}

// Policy returns the comparison of the named policy.
func (f Frontier) Policy(name string) (Comparison, bool) {
	i := slices.IndexFunc(f.Policies, func(c Comparison) bool { return c.Policy == name })
	if i < 0 {
		return Comparison{}, false
	}
	return f.Policies[i], true
}

// frontier is the fixed counts on the frontier by GPU-hours; their attainments strictly increase, or one
// would dominate the other.
func (f Frontier) frontier() []FixedPoint {
	var pts []FixedPoint
	for _, p := range f.Fixed {
		if p.OnFrontier {
			pts = append(pts, p)
		}
	}
	slices.SortFunc(pts, func(a, b FixedPoint) int { return cmp.Compare(a.GPUHours, b.GPUHours) })
	return pts
}

// gpuTol is the relative tolerance under which two GPU-hour figures are equal: runs that hold the same pods
// can differ in the last bits of a float sum.
const gpuTol = 1e-9

// dominates says whether (a1, g1) is at least as good as (a2, g2) on attainment (higher) and GPU-hours
// (lower) and better on one.
func dominates(a1, g1, a2, g2 float64) bool {
	lessG := g1 < g2*(1-gpuTol)
	sameG := !lessG && g1 <= g2*(1+gpuTol)
	return (a1 >= a2 && lessG) || (a1 > a2 && sameG)
}

// attainmentAt is the frontier's attainment at GPU-hours g.
func attainmentAt(pts []FixedPoint, g float64) (float64, bool) {
	if len(pts) == 0 || g < pts[0].GPUHours*(1-gpuTol) {
		return 0, false
	}
	for i := 1; i < len(pts); i++ {
		lo, hi := pts[i-1], pts[i]
		if g <= hi.GPUHours {
			return lo.Attainment + (hi.Attainment-lo.Attainment)*max(g-lo.GPUHours, 0)/(hi.GPUHours-lo.GPUHours), true
		}
	}
	return pts[len(pts)-1].Attainment, true
}

// gpuHoursAt is the frontier's GPU-hours at attainment a.
func gpuHoursAt(pts []FixedPoint, a float64) (float64, bool) {
	if len(pts) == 0 || a > pts[len(pts)-1].Attainment {
		return 0, false
	}
	if a <= pts[0].Attainment {
		return pts[0].GPUHours, true
	}
	for i := 1; i < len(pts); i++ {
		lo, hi := pts[i-1], pts[i]
		if a <= hi.Attainment {
			return lo.GPUHours + (hi.GPUHours-lo.GPUHours)*(a-lo.Attainment)/(hi.Attainment-lo.Attainment), true
		}
	}
	return pts[len(pts)-1].GPUHours, true
}

// WriteFrontier prints the frontier as two aligned tables: the fixed counts, then each other policy.
func WriteFrontier(w io.Writer, f Frontier) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "fixed\tSLO met\tGPU-h\tfrontier\t\n")
	for _, p := range f.Fixed {
		mark := ""
		if p.OnFrontier {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s\t%.2f%%\t%.2f\t%s\t\n", Static(p.Replicas), 100*p.Attainment, p.GPUHours, mark)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "policy\tSLO met\tGPU-h\tdominated by\tgain at equal GPU-h\tsaving at equal SLO\tcheapest fixed as good\t\n")
	for _, c := range f.Policies {
		fmt.Fprintf(tw, "%s\t%.2f%%\t%.2f\t%s\t%s\t%s\t%s\t\n", c.Policy, 100*c.Attainment, c.GPUHours, FormatDominated(c.DominatedBy),
			FormatGain(c.AttainmentGain), FormatSaving(c.GPUHourSaving, c.FrontierGPUHours), FormatCheapest(c))
	}
	tw.Flush()
}

// FormatDominated lists the dominating policies, or "no".
func FormatDominated(by []string) string {
	if len(by) == 0 {
		return "no"
	}
	return strings.Join(by, ",")
}

// FormatGain prints an attainment gain in percentage points ("–" when undefined).
func FormatGain(g *float64) string {
	if g == nil {
		return "–"
	}
	return fmt.Sprintf("%+.2f pts", 100**g)
}

// FormatSaving prints a GPU-hour saving and the frontier's GPU-hours it is measured against ("above the
// frontier" when no fixed count reaches the attainment).
func FormatSaving(s, frontier *float64) string {
	if s == nil {
		return "above every count"
	}
	return fmt.Sprintf("%+.1f%% of %.2f", 100**s, *frontier)
}

// FormatCheapest prints the cheapest fixed count at least as good as the policy, and its GPU-hours.
func FormatCheapest(c Comparison) string {
	if c.CheapestFixed == 0 {
		return "none"
	}
	return fmt.Sprintf("%s (%.2f)", Static(c.CheapestFixed), c.CheapestFixedGPUHours)
}
