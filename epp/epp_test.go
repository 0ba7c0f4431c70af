package epp

import (
	"fmt"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// config is the part of an EndpointPickerConfig the tests read.
type config struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Plugins    []struct {
		Type       string         `json:"type"`
		Parameters map[string]any `json:"parameters"`
	} `json:"plugins"`
	SchedulingProfiles []struct {
		Name    string `json:"name"`
		Plugins []struct {
			PluginRef string  `json:"pluginRef"`
			Weight    float64 `json:"weight"`
		} `json:"plugins"`
	} `json:"schedulingProfiles"`
}

func parse(t *testing.T, s Scoring) config {
	t.Helper()
	var c config
	if err := yaml.UnmarshalStrict([]byte(s.Config()), &c); err != nil {
		t.Fatalf("%v\n%s", err, s.Config())
	}
	return c
}

func TestDefaultConfigHasTheExtensionsScorersAndWeights(t *testing.T) {
	c := parse(t, DefaultScoring())
	if c.APIVersion != "inference.networking.x-k8s.io/v1alpha1" || c.Kind != "EndpointPickerConfig" {
		t.Errorf("%s %s, want the picker's inference.networking.x-k8s.io/v1alpha1 EndpointPickerConfig", c.APIVersion, c.Kind)
	}
	var types []string
	for _, p := range c.Plugins {
		types = append(types, p.Type)
	}
	want := "queue-scorer kv-cache-utilization-scorer prefix-cache-scorer max-score-picker metrics-data-source core-metrics-extractor"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("plugins %s, want %s", got, want)
	}
	if len(c.SchedulingProfiles) != 1 {
		t.Fatalf("%d scheduling profiles, want 1", len(c.SchedulingProfiles))
	}
	var profile []string
	for _, p := range c.SchedulingProfiles[0].Plugins {
		profile = append(profile, fmt.Sprintf("%s:%g", p.PluginRef, p.Weight))
	}
	if got, want := strings.Join(profile, " "), "queue-scorer:2 kv-cache-utilization-scorer:2 prefix-cache-scorer:3 max-score-picker:0"; got != want {
		t.Errorf("profile %s, want %s", got, want)
	}
}

func TestZeroWeightLeavesTheScorerOut(t *testing.T) {
	s := DefaultScoring()
	s.PrefixCache, s.Picker = 0, WeightedRandom
	var types []string
	for _, p := range parse(t, s).Plugins {
		types = append(types, p.Type)
	}
	want := "queue-scorer kv-cache-utilization-scorer weighted-random-picker metrics-data-source core-metrics-extractor"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("plugins %s, want %s", got, want)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Scoring
		want string
	}{
		{"default", DefaultScoring(), ""},
		{"negative", Scoring{Queue: -1, KVCache: 1, Picker: MaxScore}, "the queue weight is -1"},
		{"none", Scoring{Picker: MaxScore}, "every weight is 0"},
		{"unknown picker", Scoring{Queue: 1, Picker: "random-picker"}, `the picker is "random-picker"`},
	} {
		err := tc.s.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.want)
		}
	}
}
