// Pins prometheus-operator's release whose CRDs (ServiceMonitor, PrometheusRule) test/chart installs into
// its API server, so that the chart's monitoring objects are validated against the real schemas. Nothing is
// built from it: test/chart reads example/prometheus-operator-crd/ from the module cache.
module github.com/llm-d/llm-d/test/tools/promcrds

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.85.0
