package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sampleService = "../../config/samples/llama-3-8b-autoscaling.yaml"

// shortTrace writes a three-minute trace in the Azure format: a ramp to about 8 requests/s.
func shortTrace(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("TIMESTAMP,ContextTokens,GeneratedTokens\n")
	start := time.Date(2023, 11, 16, 18, 15, 0, 0, time.UTC)
	x := uint64(42)
	for at := time.Duration(0); at < 3*time.Minute; {
		x = x*6364136223846793005 + 1442695040888963407
		rate := 1 + 7*at.Seconds()/180
		at += time.Duration(float64(time.Second) / rate * float64(x>>40%200+1) / 100)
		fmt.Fprintf(&b, "%s,%d,%d\n", start.Add(at).Format("2006-01-02 15:04:05.0000000"), 100+x>>20%1500, 10+x>>30%250)
	}
	p := filepath.Join(t.TempDir(), "trace.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSimulateJSON(t *testing.T) {
	dir := t.TempDir()
	tr := shortTrace(t)
	png, csv := filepath.Join(dir, "out.png"), filepath.Join(dir, "out.csv")
	var out, errb bytes.Buffer
	code := run([]string{"simulate", "--service", sampleService, "--trace", tr, "--policy", "all", "--json",
		"--warmup", "1m", "--plot", png, "--csv", csv}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	want := []string{"llmd", "hpa-queue", "token-aware", "token-aware-shipped", "static-peak", "lower-bound", "ideal-learner", "reactive-learner"}
	if len(got.Results) != len(want) {
		t.Fatalf("%d results, want %d", len(got.Results), len(want))
	}
	keys := []string{"policy", "requests", "slo_attainment", "gpu_hours", "ttft_p50_s", "ttft_p95_s", "ttft_p99_s",
		"queue_wait_p95_s", "scale_ups", "scale_downs", "direction_changes", "max_replicas"}
	for i, r := range got.Results {
		if r["policy"] != want[i] {
			t.Errorf("result %d is %v, want %s", i, r["policy"], want[i])
		}
		for _, k := range keys {
			if _, ok := r[k]; !ok {
				t.Errorf("%s: no key %q", want[i], k)
			}
		}
		if a := r["slo_attainment"].(float64); a < 0 || a > 1 {
			t.Errorf("%s: slo_attainment %v", want[i], a)
		}
		if r["requests"].(float64) < 100 || r["gpu_hours"].(float64) <= 0 {
			t.Errorf("%s: %v", want[i], r)
		}
	}
	for _, f := range []string{png, csv} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	b, _ := os.ReadFile(png)
	if !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Error("plot is not a PNG")
	}
}

func TestSimulateTable(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"simulate", "--service", sampleService, "--trace", shortTrace(t), "--policy", "llmd", "--gpu", "h100"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "llmd") || strings.Contains(out.String(), "hpa-queue") {
		t.Fatalf("table: %s", out.String())
	}
}

// --frontier runs every fixed count and compares the other policies with them; suite:NAME is a trace of
// the benchmark suite; static:N is one fixed count.
func TestSimulateFrontier(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"simulate", "--service", sampleService, "--trace", "suite:steps-4x", "--duration", "20m",
		"--policy", "all", "--frontier", "--warmup", "1m", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got struct {
		Results  []struct{ Policy string }
		Frontier struct {
			Fixed    []struct{ Replicas int32 }
			Policies []struct {
				Policy      string
				DominatedBy []string `json:"dominated_by"`
			}
		}
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	var policies []string
	for _, p := range got.Frontier.Policies {
		policies = append(policies, p.Policy)
	}
	if len(got.Results) != 15 || len(got.Frontier.Fixed) != 8 ||
		strings.Join(policies, ",") != "llmd,hpa-queue,token-aware,token-aware-shipped,lower-bound,ideal-learner,reactive-learner" {
		t.Fatalf("%d results, %d fixed counts, policies %v: want 15, 8 (static-peak is one of them), and the other seven",
			len(got.Results), len(got.Frontier.Fixed), policies)
	}

	out.Reset()
	if code := run([]string{"simulate", "--service", sampleService, "--trace", shortTrace(t), "--policy", "static:2", "--frontier"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if s := out.String(); !strings.Contains(s, "static:2") || !strings.Contains(s, "static:8") || !strings.Contains(s, "dominated by") {
		t.Fatalf("table: %s", s)
	}
}

func TestSimulateBadInput(t *testing.T) {
	dir := t.TempDir()
	tr := shortTrace(t)
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("TIMESTAMP,ContextTokens,GeneratedTokens\nnot a time,1,2\n"), 0o644)
	off := filepath.Join(dir, "off.yaml")
	os.WriteFile(off, []byte("apiVersion: inference.llm-d.ai/v1alpha1\nkind: LLMInferenceService\nmetadata: {name: x}\nspec: {autoscaling: {enabled: false}}\n"), 0o644)
	cases := []struct {
		args []string
		code int
		say  string
	}{
		{[]string{"--trace", tr}, 2, "--service"},
		{[]string{"--service", sampleService}, 2, "--trace"},
		{[]string{"--service", sampleService, "--trace", tr, "--policy", "magic"}, 2, "--policy"},
		{[]string{"--service", sampleService, "--trace", tr, "--policy", "static:0"}, 2, "--policy"},
		{[]string{"--service", sampleService, "--trace", "suite:nonesuch"}, 1, "steps-4x"},
		{[]string{"--service", sampleService, "--trace", tr, "--gpu", "tpu"}, 2, "--gpu"},
		{[]string{"--service", sampleService, "--trace", tr, "--routing", "least-loaded"}, 2, "--routing"},
		{[]string{"--service", sampleService, "--trace", tr, "--slo-ttft", "0s"}, 2, "--slo-ttft"},
		{[]string{"--service", sampleService, "--trace", tr, "--bogus"}, 2, "bogus"},
		{[]string{"--service", sampleService, "--trace", filepath.Join(dir, "missing.csv")}, 1, "missing.csv"},
		{[]string{"--service", sampleService, "--trace", bad}, 1, "line 2"},
		{[]string{"--service", off, "--trace", tr}, 1, "autoscaling is not enabled"},
		{[]string{"--service", tr, "--trace", tr}, 1, "LLMInferenceService"},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		code := run(append([]string{"simulate"}, tc.args...), &out, &errb)
		msg := errb.String()
		if code != tc.code || !strings.Contains(msg, tc.say) || strings.Count(msg, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line naming %q", tc.args, code, msg, tc.code, tc.say)
		}
	}
}

const (
	samplePool = "../../config/samples/production-pool.yaml"
	samplePhi  = "../../config/samples/phi-3-mini.yaml"
)

func TestSimulatePool(t *testing.T) {
	tr := shortTrace(t)
	var out, errb bytes.Buffer
	code := run([]string{"simulate", "--pool", samplePool, "--service", sampleService, "--trace", tr,
		"--service", samplePhi, "--trace", tr, "--warmup", "1m", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got struct {
		BudgetGPUs int64 `json:"budget_gpus"`
		Setups     []struct {
			Setup       string           `json:"setup"`
			Services    []map[string]any `json:"services"`
			CapsGPUs    []int64          `json:"caps_gpus"`
			MaxGPUsHeld int64            `json:"max_gpus_held"`
			Requests    int              `json:"requests"`
		} `json:"setups"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if got.BudgetGPUs != 4 || len(got.Setups) != 2 || got.Setups[0].Setup != "shared" || got.Setups[1].Setup != "split" {
		t.Fatalf("got %+v", got)
	}
	for _, s := range got.Setups {
		if s.MaxGPUsHeld > 4 || len(s.Services) != 2 || s.Services[0]["policy"] != "llama-3-8b" || s.Requests < 200 {
			t.Errorf("%s: %+v", s.Setup, s)
		}
	}
	if caps := got.Setups[1].CapsGPUs; len(caps) != 2 || caps[0] != 2 || caps[1] != 2 {
		t.Errorf("split caps %v, want 2/2 (60/40 of 4 by largest remainder)", caps)
	}

	out.Reset()
	if code := run([]string{"simulate", "--pool", samplePool, "--service", samplePhi, "--trace", tr,
		"--service", sampleService, "--trace", tr, "--duration", "1m", "--warmup", "0s"}, &out, &errb); code != 0 {
		t.Fatalf("table: exit %d: %s", code, errb.String())
	}
	if s := out.String(); !strings.Contains(s, "shared") || !strings.Contains(s, "split") || !strings.Contains(s, "phi-3-mini") {
		t.Fatalf("table: %s", s)
	}
}

func TestSimulatePoolBadInput(t *testing.T) {
	tr := shortTrace(t)
	cases := []struct {
		args []string
		code int
		say  string
	}{
		{[]string{"--service", sampleService, "--trace", tr, "--service", samplePhi, "--trace", tr}, 2, "--pool"},
		{[]string{"--pool", samplePool, "--service", sampleService, "--trace", tr, "--service", samplePhi}, 2, "paired"},
		{[]string{"--pool", samplePool, "--service", sampleService, "--trace", tr, "--service", samplePhi, "--trace", tr,
			"--policy", "hpa-queue"}, 2, "llmd only"},
		{[]string{"--pool", samplePool, "--service", sampleService, "--trace", tr, "--service", samplePhi, "--trace", tr,
			"--frontier"}, 2, "--frontier"},
		{[]string{"--pool", samplePool, "--service", sampleService, "--trace", tr}, 1, "phi-3-mini"},
		{[]string{"--pool", samplePool, "--service", sampleService, "--trace", tr, "--service", sampleService, "--trace", tr}, 1, "twice"},
		{[]string{"--pool", sampleService, "--service", sampleService, "--trace", tr}, 1, "LLMInferencePool"},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		code := run(append([]string{"simulate"}, tc.args...), &out, &errb)
		msg := errb.String()
		if code != tc.code || !strings.Contains(msg, tc.say) || strings.Count(msg, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line naming %q", tc.args, code, msg, tc.code, tc.say)
		}
	}
}
