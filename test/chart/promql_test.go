package chart

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/llm-d/llm-d/controllers"
	"github.com/llm-d/llm-d/scaler/engine"
	"github.com/llm-d/llm-d/vllmsim/server"
	"github.com/llm-d/llm-d/vllmsim/server/servertest"
)

// TestPromQLNamesExist checks that every metric an alert, a recording rule or a dashboard panel queries is
// one that something exports: vLLM (as the simulator serves vLLM's names, current and pre-0.12), the
// scaler, the operator, or a recording rule of the chart itself. A renamed metric fails here, not in a
// silent, empty panel.
func TestPromQLNamesExist(t *testing.T) {
	known := exportedMetrics(t)
	objs := render(t, monitoring)

	var exprs []string
	rule := find(t, objs, "PrometheusRule", "llm-d-mon")
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	for _, g := range groups {
		rs, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rs {
			rm := r.(map[string]any)
			if rec, ok := rm["record"].(string); ok {
				known[rec] = true
			}
			exprs = append(exprs, rm["expr"].(string))
		}
	}
	js, _, _ := unstructured.NestedString(find(t, objs, "ConfigMap", "llm-d-mon-dashboard").Object, "data", "llm-d.json")
	var dash any
	if err := json.Unmarshal([]byte(js), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	exprs = append(exprs, collectExprs(dash)...)
	if len(exprs) < 8 {
		t.Fatalf("only %d expressions found", len(exprs))
	}
	for _, e := range exprs {
		names := metricNames(e)
		if len(names) == 0 {
			t.Errorf("no metric in %q", e)
		}
		for _, n := range names {
			if !known[n] {
				t.Errorf("%q queries %s, which nothing exports", e, n)
			}
		}
	}
}

// exportedMetrics lists the series names the project and vLLM export, histograms with their suffixes.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	// vLLM's names, as the simulator serves them (both generations of names).
	for _, legacy := range []bool{false, true} {
		cfg := server.DefaultConfig()
		cfg.LegacyMetrics = legacy
		cfg.Speed = 1000
		url := servertest.Start(t, cfg)
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(body), "\n") {
			if line != "" && !strings.HasPrefix(line, "#") {
				known[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
			}
		}
	}
	// The scaler's and the operator's, from their collectors' descriptions (a vector with no series yet
	// would not show in a scrape).
	reg := prometheus.NewRegistry()
	engine.NewMetrics(reg)
	if _, err := controllers.NewPodTimings(nil, reg, time.Now()); err != nil {
		t.Fatal(err)
	}
	descs := make(chan *prometheus.Desc, 100)
	go func() {
		for _, c := range []prometheus.Collector{reg} {
			c.Describe(descs)
		}
		close(descs)
	}()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range descs {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
				known[m[1]+suffix] = true
			}
		}
	}
	for _, want := range []string{"vllm:num_requests_waiting", "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc",
		"llmd_scaler_scrape_errors_total", controllers.MetricPodStartup + "_bucket"} {
		if !known[want] {
			t.Fatalf("%s missing from the exported names: the collection above is broken", want)
		}
	}
	return known
}

func collectExprs(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		if e, ok := x["expr"].(string); ok {
			out = append(out, e)
		}
		for _, c := range x {
			out = append(out, collectExprs(c)...)
		}
	case []any:
		for _, c := range x {
			out = append(out, collectExprs(c)...)
		}
	}
	return out
}

var (
	// Removed before looking for names: label matchers and lists, strings, ranges, and Grafana variables.
	promNoise = regexp.MustCompile(`\{[^}]*\}|"[^"]*"|\[[^\]]*\]|\$\{?\w+\}?|\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	// Functions are followed by "("; these words are operators and keywords.
	promWords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "e"}
)

// metricNames returns the metric names in a PromQL expression: identifiers that are not functions,
// keywords, label names or numbers.
func metricNames(expr string) []string {
	clean := promNoise.ReplaceAllString(expr, " ")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(clean, -1) {
		word := clean[loc[0]:loc[1]]
		rest := strings.TrimLeft(clean[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || slices.Contains(promWords, strings.ToLower(word)) {
			continue
		}
		if loc[0] > 0 && (clean[loc[0]-1] >= '0' && clean[loc[0]-1] <= '9' || clean[loc[0]-1] == '.') {
			continue // the unit of a number such as 1e3
		}
		out = append(out, word)
	}
	return out
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`max by (namespace, pod) (vllm:kv_cache_usage_perc) > 0.8`:                          {"vllm:kv_cache_usage_perc"},
		`sum by (namespace, pod) (rate(vllm:generation_tokens_total{namespace="$ns"}[1m]))`: {"vllm:generation_tokens_total"},
		`histogram_quantile(0.95, sum by (le) (rate(llmd:pod_startup_seconds_bucket[1h])))`: {"llmd:pod_startup_seconds_bucket"},
		`a / on(pod) group_left b or c unless d`:                                            {"a", "b", "c", "d"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", expr, got, want)
		}
	}
}
