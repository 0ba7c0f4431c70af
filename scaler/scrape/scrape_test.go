package scrape

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const payload = "vllm:num_requests_waiting{engine=\"0\"} 3\n"

func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func TestFetch(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(payload))
	zw.Close()
	var bomb bytes.Buffer
	zw = gzip.NewWriter(&bomb)
	zw.Write(bytes.Repeat([]byte("a"), 10<<20)) // 10 MiB that compresses to a few KB
	zw.Close()

	cases := []struct {
		name    string
		h       http.HandlerFunc
		want    string
		reason  Reason
		timeout time.Duration
	}{
		{"plain", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(payload)) }, payload, "", 0},
		{"gzip accepted", func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				t.Error("gzip not offered")
			}
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz.Bytes())
		}, payload, "", 0},
		{"HTTP 500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "engine dead", 500) }, "", ReasonHTTPStatus, 0},
		{"100 MB payload is cut at the cap", func(w http.ResponseWriter, r *http.Request) {
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			for i := 0; i < 100; i++ {
				if _, err := w.Write(chunk); err != nil {
					return // the client hung up, as it should
				}
			}
		}, "", ReasonTooLarge, 0},
		{"gzip bomb is cut at the cap", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(bomb.Bytes())
		}, "", ReasonTooLarge, 0},
		{"garbage gzip", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write([]byte("not gzip at all"))
		}, "", ReasonBadEncoding, 0},
		{"slow trickle hits the deadline", func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i < 100; i++ {
				if _, err := w.Write([]byte("#")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}, "", ReasonTimeout, 300 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			f := NewFetcher(timeout, 1<<20)
			got, err := f.Fetch(context.Background(), serve(t, tc.h), nil)
			if tc.reason == "" {
				if err != nil || string(got) != tc.want {
					t.Fatalf("got %q, %v", got, err)
				}
				return
			}
			if err == nil || ReasonOf(err) != tc.reason {
				t.Fatalf("got %q, %v; want reason %s", got, err, tc.reason)
			}
		})
	}
}

func TestFetchConnectionRefused(t *testing.T) {
	// Port 1 (tcpmux) is never served here; a port just closed could be taken by another test.
	_, err := NewFetcher(10*time.Second, 1<<20).Fetch(context.Background(), "127.0.0.1:1", nil)
	if ReasonOf(err) != ReasonConnectionRefused {
		t.Fatalf("got %v", err)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("not a scrape.Error: %T", err)
	}
}

func TestFetchReusesBuffer(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(payload)) })
	f := NewFetcher(10*time.Second, 1<<20)
	buf := make([]byte, 0, 4096)
	got, err := f.Fetch(context.Background(), addr, buf)
	if err != nil || &got[:1][0] != &buf[:1][0] {
		t.Fatalf("buffer not reused: %v", err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.2:1/metrics", http.StatusFound)
	})
	_, err := NewFetcher(10*time.Second, 1<<20).Fetch(context.Background(), addr, nil)
	if ReasonOf(err) != ReasonHTTPStatus {
		t.Fatalf("redirect followed or misreported: %v", err)
	}
}
