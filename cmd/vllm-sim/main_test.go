package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/llm-d/llm-d/vllmsim"
)

func TestBadFlagsExitTwoWithOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"-bogus"},              // neither vllm-sim's nor one of vLLM's short flags
		{"--Bogus"},             // not shaped like a vLLM flag
		{"--served-model-name"}, // no name
		{"--port", "eighty"},
		{"--port", "70000"},
		{"--preset", "tpu"},
		{"--speed", "0"},
		{"--max-num-seqs", "0", "--kv-cache-tokens", "-1"}, // two problems, still one line
		{"--max-num-batched-tokens", "8", "--max-num-seqs", "16"},
		{"model-a", "model-b"}, // one positional argument, the model
	} {
		var stderr bytes.Buffer
		if code := run(context.Background(), args, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		if out := stderr.String(); strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "vllm-sim: ") {
			t.Errorf("%v: stderr %q, want one line starting with vllm-sim:", args, out)
		}
	}
}

func TestHelpExitsZero(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &stderr); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	if !strings.Contains(stderr.String(), "-max-num-seqs") || !strings.Contains(stderr.String(), "a10g: {") {
		t.Fatalf("-h printed %q", stderr.String())
	}
}

func TestFlagsOverrideOnlyWhatIsGiven(t *testing.T) {
	o, _, err := parseFlags([]string{"--preset", "h100", "--max-num-seqs", "8", "--startup-delay", "0s", "--legacy-metrics"})
	if err != nil {
		t.Fatal(err)
	}
	want := vllmsim.H100Llama8B()
	want.MaxNumSeqs = 8
	want.StartupDelay = 0
	if o.server.Params != want || !o.server.LegacyMetrics || o.host != "127.0.0.1" || o.port != 8000 {
		t.Fatalf("options %+v, want H100's params with 8 sequences and no startup delay", o)
	}
}

// TestSIGTERMDrainsInFlightStreams stands in for SIGTERM by cancelling serve's context: a stream that
// started before must still end with [DONE], and new connections must be refused.
func TestSIGTERMDrainsInFlightStreams(t *testing.T) {
	o, _, err := parseFlags([]string{"--startup-delay", "0s", "--iteration-base", "10ms", "--shutdown-timeout", "10s"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, sigterm := context.WithCancel(context.Background())
	defer sigterm()
	served := make(chan error, 1)
	go func() { served <- serve(ctx, o, ln, zap.NewNop()) }()

	// 30 tokens at ~10 ms each: the stream is still going when the signal comes.
	resp, err := http.Post(url+"/v1/completions", "application/json",
		strings.NewReader(`{"prompt":"hello","max_tokens":30,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "data: {") {
		t.Fatalf("first event: %q %v", lines.Text(), lines.Err())
	}
	sigterm()

	var last string
	events := 1
	for lines.Scan() {
		if l := lines.Text(); l != "" {
			last = l
			events++
		}
	}
	if last != "data: [DONE]" || events != 32 {
		t.Fatalf("the stream ended with %q after %d events, want [DONE] after 30 tokens and a finish chunk", last, events)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return after draining")
	}
	if _, err := http.Get(url + "/health"); err == nil {
		t.Fatal("the server still accepts connections after shutdown")
	}
}
