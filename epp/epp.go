// Package epp holds what llm-d sets when it runs the Gateway API Inference Extension's endpoint picker (EPP,
// cmd/epp of sigs.k8s.io/gateway-api-inference-extension v1.5.0): its scoring configuration, its ports and
// its refresh interval. The operator's picker, the local cluster's and the simulator's model of it all
// read them here.
package epp

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The picker's ports: its defaults (--grpc-port, --grpc-health-port, --metrics-port).
const (
	// PortGRPC serves Envoy's ext_proc protocol: a gateway asks it where each request goes.
	PortGRPC = 9002
	// PortHealth serves the gRPC health protocol, SERVING once the picker has read its InferencePool.
	PortHealth = 9003
	// PortMetrics serves the picker's Prometheus metrics.
	PortMetrics = 9090
)

// RefreshInterval is how often the picker scrapes each pod's metrics (its --refresh-metrics-interval
// default): it scores pods on what it read last.
const RefreshInterval = 50 * time.Millisecond

// The picker's pickers: how it chooses among the scored pods (plugin types).
const (
	// MaxScore takes the pod with the highest score, ties at random: the picker's default.
	MaxScore = "max-score-picker"
	// WeightedRandom takes a pod at random with probability proportional to its score (pods scoring 0
	// never, unless all do).
	WeightedRandom = "weighted-random-picker"
)

// Pickers lists the pickers.
var Pickers = []string{MaxScore, WeightedRandom}

// Scoring is the picker's scoring: the weight of each scorer (0 leaves it out) and how it picks among the
// scored pods. A pod's score is the weighted sum of
//
//	queue        (max waiting - waiting) / (max waiting - min waiting) over the pods, 1 if all equal
//	KV cache     1 - vllm:kv_cache_usage_perc
//	prefix cache the share of the prompt's blocks the picker last sent to the pod
//
// read from the pods' metrics every RefreshInterval: the requests of a burst that arrive between two
// scrapes all see the same queues.
type Scoring struct {
	Queue, KVCache, PrefixCache float64
	// Picker is MaxScore or WeightedRandom.
	Picker string
}

// The extension's defaults (pkg/epp/config/loader/defaults.go): queue 2, KV cache 2, prefix cache 3, the
// highest score wins.
const (
	DefaultQueueWeight       = 2
	DefaultKVCacheWeight     = 2
	DefaultPrefixCacheWeight = 3
	DefaultPicker            = MaxScore
)

// DefaultScoring is the extension's default scoring.
func DefaultScoring() Scoring {
	return Scoring{Queue: DefaultQueueWeight, KVCache: DefaultKVCacheWeight, PrefixCache: DefaultPrefixCacheWeight,
		Picker: DefaultPicker}
}

// Validate says what makes s unusable.
func (s Scoring) Validate() error {
	for _, w := range []struct {
		name   string
		weight float64
	}{{"queue", s.Queue}, {"KV-cache", s.KVCache}, {"prefix-cache", s.PrefixCache}} {
		if w.weight < 0 {
			return fmt.Errorf("the %s weight is %v: weights must not be negative", w.name, w.weight)
		}
	}
	if s.Queue+s.KVCache+s.PrefixCache == 0 {
		return fmt.Errorf("every weight is 0: the picker needs at least one scorer")
	}
	if !slices.Contains(Pickers, s.Picker) {
		return fmt.Errorf("the picker is %q: want one of %q", s.Picker, Pickers)
	}
	return nil
}

// Config is the picker's EndpointPickerConfig (its --config-file) for s: the scorers of positive weight,
// s.Picker, and vLLM's metrics scraped over plain HTTP from each pod's /metrics.
func (s Scoring) Config() string {
	var plugins, profile strings.Builder
	for _, sc := range []struct {
		typ    string
		weight float64
	}{{"queue-scorer", s.Queue}, {"kv-cache-utilization-scorer", s.KVCache}, {"prefix-cache-scorer", s.PrefixCache}} {
		if sc.weight > 0 {
			fmt.Fprintf(&plugins, "- type: %s\n", sc.typ)
			fmt.Fprintf(&profile, "  - pluginRef: %s\n    weight: %g\n", sc.typ, sc.weight)
		}
	}
	fmt.Fprintf(&plugins, "- type: %s\n", s.Picker)
	fmt.Fprintf(&profile, "  - pluginRef: %s\n", s.Picker)
	return `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
` + plugins.String() + `- type: metrics-data-source
  parameters:
    scheme: http
    path: /metrics
- type: core-metrics-extractor
schedulingProfiles:
- name: default
  plugins:
` + profile.String()
}
