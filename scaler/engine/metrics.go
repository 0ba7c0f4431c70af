package engine

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the scaler's own Prometheus metrics: scrapes and their failures by reason, and each
// service's decision with the signals behind it.
type Metrics struct {
	Scrapes        *prometheus.CounterVec
	ScrapeErrors   *prometheus.CounterVec
	ScrapeDuration prometheus.Histogram
	Desired        *prometheus.GaugeVec
	Decisions      *prometheus.CounterVec
	Signals        *prometheus.GaugeVec
	Pods           *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmd_scaler_scrapes_total", Help: "Scrapes of vLLM pods' /metrics, by result (success or error).",
		}, []string{"result"}),
		ScrapeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmd_scaler_scrape_errors_total", Help: "Failed scrapes of vLLM pods, by reason.",
		}, []string{"reason"}),
		ScrapeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "llmd_scaler_scrape_duration_seconds", Help: "Time to fetch and parse one pod's /metrics.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		Desired: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "llmd_scaler_desired_replicas", Help: "Replica count the scaler asks the HPA for.",
		}, []string{"namespace", "service"}),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmd_scaler_decisions_total", Help: "Decisions, by the rule that decided.",
		}, []string{"namespace", "service", "rule"}),
		Signals: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "llmd_scaler_signal", Help: "Signals behind the latest decision, per ready pod with data.",
		}, []string{"namespace", "service", "signal"}),
		Pods: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "llmd_scaler_pods", Help: "Pods seen by the latest decision, by state (ready, starting, missing).",
		}, []string{"namespace", "service", "state"}),
	}
	reg.MustRegister(m.Scrapes, m.ScrapeErrors, m.ScrapeDuration, m.Desired, m.Decisions, m.Signals, m.Pods)
	return m
}

func (m *Metrics) forget(namespace, service string) {
	l := map[string]string{"namespace": namespace, "service": service}
	m.Desired.DeletePartialMatch(l)
	m.Decisions.DeletePartialMatch(l)
	m.Signals.DeletePartialMatch(l)
	m.Pods.DeletePartialMatch(l)
}
