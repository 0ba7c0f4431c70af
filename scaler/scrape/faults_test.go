package scrape

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// The scraping rows of docs/faults.md that TestFetch does not already cover. Every failure is a *Error with
// a reason from the fixed set; the engine turns it into missing data for the pod.

func TestFaultNoAnswerHitsTheDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		select { // headers never come
		case <-r.Context().Done():
		case <-release:
		}
	})
	_, err := NewFetcher(200*time.Millisecond, 1<<20).Fetch(context.Background(), addr, nil)
	if ReasonOf(err) != ReasonTimeout {
		t.Fatalf("got %v, want reason %s", err, ReasonTimeout)
	}
}

// A listener that accepts and never speaks HTTP (a wedged process, a port that is not vLLM's).
func TestFaultSilentListenerHitsTheDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	_, err = NewFetcher(200*time.Millisecond, 1<<20).Fetch(context.Background(), l.Addr().String(), nil)
	if ReasonOf(err) != ReasonTimeout {
		t.Fatalf("got %v, want reason %s", err, ReasonTimeout)
	}
}

func TestFaultHTTPStatuses(t *testing.T) {
	for _, code := range []int{http.StatusNotFound, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusNoContent} {
		addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			_, _ = w.Write(bytes.Repeat([]byte("x"), 1<<16)) // a large error page is drained only up to 4 KB
		})
		_, err := NewFetcher(5*time.Second, 1<<20).Fetch(context.Background(), addr, nil)
		if ReasonOf(err) != ReasonHTTPStatus {
			t.Errorf("HTTP %d: got %v, want reason %s", code, err, ReasonHTTPStatus)
		}
	}
}

// A 100 MB payload: the scraper stops reading at the cap, so the pod cannot make it buffer 100 MB. The
// server counts what it managed to send before the scraper hung up: far less than 100 MB (what is left is
// the kernel's socket buffers, a few MB on loopback).
func TestFaultHundredMegabytesIsABoundedRead(t *testing.T) {
	var sent atomic.Int64
	done := make(chan struct{})
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		chunk := bytes.Repeat([]byte("vllm:num_requests_waiting 1\n"), 1<<15) // ~900 KB
		for sent.Load() < 100<<20 {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	_, err := NewFetcher(30*time.Second, 1<<20).Fetch(context.Background(), addr, nil)
	if ReasonOf(err) != ReasonTooLarge {
		t.Fatalf("got %v, want reason %s", err, ReasonTooLarge)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the server still writes: the scraper did not hang up")
	}
	if n := sent.Load(); n >= 64<<20 {
		t.Fatalf("the server sent %d bytes before the scraper hung up", n)
	}
}

// The pod dies in the middle of the body: a network error, not a short payload taken as complete.
func TestFaultConnectionCutMidBody(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		_, _ = w.Write([]byte("vllm:num_requests_waiting 1\nvllm:num_requests_running 2\n"))
		w.(http.Flusher).Flush()
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	})
	got, err := NewFetcher(5*time.Second, 1<<20).Fetch(context.Background(), addr, nil)
	if ReasonOf(err) != ReasonNetwork {
		t.Fatalf("got %q, %v; want reason %s", got, err, ReasonNetwork)
	}
}

// The pod closes the connection without any response.
func TestFaultConnectionClosedWithoutResponse(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	})
	_, err := NewFetcher(5*time.Second, 1<<20).Fetch(context.Background(), addr, nil)
	if ReasonOf(err) != ReasonNetwork {
		t.Fatalf("got %v, want reason %s", err, ReasonNetwork)
	}
}
