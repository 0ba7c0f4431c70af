package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// One short case of the benchmark through the command, on a service of at most three replicas to keep it
// short: the report names the case and its fixed counts.
func TestBenchScaling(t *testing.T) {
	b, err := os.ReadFile(sampleService)
	if err != nil {
		t.Fatal(err)
	}
	svc := filepath.Join(t.TempDir(), "svc.yaml")
	if err := os.WriteFile(svc, bytes.Replace(b, []byte("maxReplicas: 8"), []byte("maxReplicas: 3"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"bench-scaling", "--service", svc, "--short", "--case", "short-steps-4x-a10g", "--warmup", "0s"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	s := out.String()
	for _, want := range []string{"### short-steps-4x-a10g", "| fixed | 1 | 2 | 3 |", "| token-aware |", "## Goals over the suite"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(s, "short-mix") || !strings.Contains(errb.String(), "short-steps-4x-a10g:") {
		t.Errorf("--case ran other cases or reported no progress: %s", errb.String())
	}
}

func TestBenchScalingBadInput(t *testing.T) {
	cases := []struct {
		args []string
		code int
		say  string
	}{
		{[]string{}, 2, "--service"},
		{[]string{"--service", sampleService, "--workers", "0"}, 2, "--workers"},
		{[]string{"--service", sampleService, "--case", "("}, 2, "--case"},
		{[]string{"--service", sampleService, "--warmup", "7s"}, 2, "--warmup"},
		{[]string{"--service", sampleService, "--case", "nonesuch"}, 1, "no case"},
		{[]string{"--service", sampleService, "--traces", t.TempDir()}, 1, "AzureLLMInferenceTrace_conv.csv"},
		{[]string{"--service", "missing.yaml"}, 1, "missing.yaml"},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		code := run(append([]string{"bench-scaling"}, tc.args...), &out, &errb)
		msg := errb.String()
		if code != tc.code || !strings.Contains(msg, tc.say) || strings.Count(msg, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line naming %q", tc.args, code, msg, tc.code, tc.say)
		}
	}
}
