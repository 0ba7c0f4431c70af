package sim

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
)

// WriteTable prints the results as an aligned table.
func WriteTable(w io.Writer, results []Result, slo time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "policy\trequests\tTTFT<=%s\tGPU-h\tTTFT p50\tp95\tp99\twait p95\tups\tdowns\tflips\tmax\t\n", slo)
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.2f%%\t%.2f\t%.2fs\t%.2fs\t%.2fs\t%.2fs\t%d\t%d\t%d\t%d\t\n", r.Policy, r.Requests,
			100*r.SLOAttainment, r.GPUHours, r.TTFTP50, r.TTFTP95, r.TTFTP99, r.QueueWaitP95,
			r.ScaleUps, r.ScaleDowns, r.DirectionChanges, r.MaxReplicas)
	}
	tw.Flush()
}

// WriteSeriesCSV writes every result's time series, one row per policy and step.
func WriteSeriesCSV(w io.Writer, results []Result) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"policy", "t_s", "arrivals_per_s", "replicas", "ready", "starting", "waiting", "decode_tps_per_pod", "slo_misses"})
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	for _, r := range results {
		for _, p := range r.Series {
			cw.Write([]string{r.Policy, f(p.T.Seconds()), f(p.ArrivalsPerSec), strconv.Itoa(int(p.Replicas)),
				strconv.Itoa(p.Ready), strconv.Itoa(p.Starting), strconv.Itoa(p.Waiting), strconv.FormatFloat(p.DecodeTPSPerPod, 'f', 1, 64), strconv.Itoa(p.Misses)})
		}
	}
	cw.Flush()
	return cw.Error()
}
