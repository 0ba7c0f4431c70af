package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

// Handler is the front door of one service, as its Kubernetes Service would be: each request goes to a
// ready pod of the service (label app.kubernetes.io/instance=service) chosen at random, like kube-proxy's
// default, and its response, streamed tokens included, comes back unbuffered. namespace "" takes the
// service's pods in any namespace.
//
// A pod is ready when its Ready condition is true and its server's simulated startup is over: the
// readiness probe the operator puts on /health would hold it out of the Service until then. With no ready
// pod the answer is 503 in OpenAI's error shape.
func (f *Fleet) Handler(namespace, service string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := f.pick(namespace, service)
		if s == nil {
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("no ready pod of service %q", service))
			return
		}
		// The pod gets the request from memory, not streamed from the client's connection: the HTTP/1
		// server closes a request body once the response has begun, and the transport still reads it
		// after sending it (to check its length) while the pod's answer already streams through; that
		// read then fails and the transport closes the pod's connection, cutting the stream
		// (golang/go#40747). The pods read the whole body before answering anyway. Full duplex would keep
		// the body open, but a transport still reading it once the handler has returned then races the
		// server's read of the next request (golang/go#68560).
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err != nil {
			writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
			return
		}
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		s.proxy.ServeHTTP(w, r)
	})
}

// maxBodyBytes bounds a request body the front door holds: the pods' own limit (vllmsim/server).
const maxBodyBytes = 32 << 20

// pick is a random ready server of the service, or nil.
func (f *Fleet) pick(namespace, service string) *podServer {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	var ready []*podServer
	for _, p := range f.pods {
		if p.srv != nil && p.ready && p.service == service && (namespace == "" || p.namespace == namespace) &&
			!now.Before(p.srv.readyAt) {
			ready = append(ready, p.srv)
		}
	}
	if len(ready) == 0 {
		return nil
	}
	return ready[rand.IntN(len(ready))]
}

// proxyError answers a request whose pod could not be reached (it stopped between the choice and the
// connection), as a Service's dead endpoint would fail it.
func proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client went away; nobody reads an answer
	}
	writeError(w, http.StatusBadGateway, "the pod did not answer: "+err.Error())
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": msg, "type": http.StatusText(code), "code": code,
	}})
}
