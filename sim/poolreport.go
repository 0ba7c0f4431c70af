package sim

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WritePoolTable prints one row per setup and member, and each setup's total: requests, SLO attainment,
// GPU-hours, the most replicas the member ran and, for the total, the most GPUs held at once.
func WritePoolTable(w io.Writer, budget int64, setups []PoolResult, slo time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "setup\tservice\tbudget\trequests\tTTFT<=%s\tGPU-h\tTTFT p99\tmax replicas\tmax GPUs held\t\n", slo)
	for _, s := range setups {
		for i, r := range s.Services {
			cap := budget
			if s.CapsGPUs != nil {
				cap = s.CapsGPUs[i]
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.2f%%\t%.2f\t%.2fs\t%d\t\t\n", s.Setup, r.Policy, cap, r.Requests,
				100*r.SLOAttainment, r.GPUHours, r.TTFTP99, r.MaxReplicas)
		}
		fmt.Fprintf(tw, "%s\ttotal\t%d\t%d\t%.2f%%\t%.2f\t\t\t%d\t\n", s.Setup, budget, s.Requests,
			100*s.SLOAttainment, s.GPUHours, s.MaxGPUsHeld)
	}
	tw.Flush()
}
