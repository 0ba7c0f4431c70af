// Package servertest runs simulated vLLM servers (vllmsim/server) for the tests of programs that talk to
// vLLM: the scaler scraping a pod, llmd burst and loadgen streaming completions, the chart's PromQL check.
package servertest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/llm-d/llm-d/vllmsim/server"
)

// Start serves a simulated vLLM of cfg on a fresh loopback port until the test ends, and returns its base
// URL (http://127.0.0.1:port).
func Start(t testing.TB, cfg server.Config) string {
	t.Helper()
	s, run := newServer(t, cfg)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); run() })
	return ts.URL
}

// Listen serves a simulated vLLM of cfg on addr, such as a fake pod's IP and port, until the test ends or
// stop is called, and returns its base URL. stop closes the listener and every connection at once, as a
// pod that dies would.
func Listen(t testing.TB, cfg server.Config, addr string) (base string, stop func()) {
	t.Helper()
	s, run := newServer(t, cfg)
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s.Handler()}
	go func() { _ = hs.Serve(lis) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			_ = hs.Close()
			run()
		}
	}
	t.Cleanup(stop)
	return "http://" + lis.Addr().String(), stop
}

// newServer creates the server and runs its engine; stop ends the engine and reports its error.
func newServer(t testing.TB, cfg server.Config) (s *server.Server, stop func()) {
	t.Helper()
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	return s, func() {
		cancel()
		if err := <-ran; err != nil {
			t.Error(err)
		}
	}
}
