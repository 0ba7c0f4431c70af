// Package scrape fetches vLLM /metrics payloads over HTTP with the limits a scaler needs against a
// misbehaving pod: a per-pod deadline (a slow trickle counts), a cap on the bytes read before and after
// gzip, and errors classified by a fixed set of reasons for metrics and logs.
package scrape

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"
)

// Reason classifies a failed scrape; it is a metric label, so the set is fixed.
type Reason string

const (
	ReasonTimeout           Reason = "timeout"
	ReasonConnectionRefused Reason = "connection_refused"
	ReasonNetwork           Reason = "network"
	ReasonHTTPStatus        Reason = "http_status"
	ReasonTooLarge          Reason = "too_large"
	ReasonBadEncoding       Reason = "bad_encoding"
	ReasonBadPayload        Reason = "bad_payload"
)

// Error is a failed scrape with its reason.
type Error struct {
	Reason Reason
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Reason, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the reason of a scrape error (ReasonNetwork when it has none).
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonNetwork
}

// Fetcher fetches /metrics.
type Fetcher struct {
	Client *http.Client
	// Timeout bounds one scrape, connection to last byte.
	Timeout time.Duration
	// MaxBytes caps the payload, compressed and decompressed alike. A vLLM payload is ~50 KB.
	MaxBytes int64
}

// NewFetcher returns a Fetcher with its own connection pool, keeping connections to pods alive between
// scrapes and never following redirects (a redirect could point anywhere).
func NewFetcher(timeout time.Duration, maxBytes int64) *Fetcher {
	tr := &http.Transport{
		Proxy:               nil, // pods are reached directly, never through an environment proxy
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // we ask for gzip ourselves, to cap the decompressed size
	}
	return &Fetcher{
		Client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		Timeout:  timeout,
		MaxBytes: maxBytes,
	}
}

// Fetch reads http://addr/metrics into buf (reused when large enough) and returns the payload.
func (f *Fetcher) Fetch(ctx context.Context, addr string, buf []byte) ([]byte, error) {
	return f.FetchURL(ctx, "http://"+addr+"/metrics", buf)
}

// FetchURL is Fetch for a whole URL, for tools pointed at one endpoint by a person.
func (f *Fetcher) FetchURL(ctx context.Context, url string, buf []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, &Error{ReasonNetwork, err}
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := f.Client.Do(req)
	if err != nil {
		return nil, classify(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, &Error{ReasonHTTPStatus, fmt.Errorf("GET /metrics: %s", resp.Status)}
	}
	var body io.Reader = io.LimitReader(resp.Body, f.MaxBytes+1)
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, &Error{ReasonBadEncoding, err}
		}
		defer zr.Close()
		body = io.LimitReader(zr, f.MaxBytes+1)
	}
	out, err := readAll(body, buf[:0])
	if err != nil {
		if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
			return nil, &Error{ReasonBadEncoding, err}
		}
		return nil, classify(ctx, err)
	}
	if int64(len(out)) > f.MaxBytes {
		return nil, &Error{ReasonTooLarge, fmt.Errorf("payload exceeds %d bytes", f.MaxBytes)}
	}
	return out, nil
}

func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func classify(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return &Error{ReasonTimeout, err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &Error{ReasonConnectionRefused, err}
	default:
		return &Error{ReasonNetwork, err}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
