package gateway

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// hopByHop are the headers that belong to one connection, never forwarded (RFC 9110, 7.6.1).
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "proxy-authenticate": true,
	"proxy-authorization": true, "te": true, "trailer": true, "transfer-encoding": true, "upgrade": true,
}

// forward sends the request, with header and body, to the first endpoint that takes it.
func (g *Gateway) forward(r *http.Request, endpoints []string, header http.Header, body []byte) (*http.Response, string, error) {
	var errs []error
	for _, ep := range endpoints {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+ep+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			return nil, "", err
		}
		for k, vs := range header {
			if !hopByHop[strings.ToLower(k)] {
				req.Header[http.CanonicalHeaderKey(k)] = vs
			}
		}
		req.Host = r.Host
		resp, err := g.transport.RoundTrip(req)
		if err == nil {
			return resp, ep, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
	}
	return nil, "", errors.Join(errs...)
}

// copyResponse writes resp to w unchanged, each chunk flushed as it arrives (streamed tokens).
func copyResponse(w http.ResponseWriter, resp *http.Response) {
	writeHeader(w, resp.Header, resp.StatusCode)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, chunkBytes)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				panic(http.ErrAbortHandler) // the pod's stream broke: so does the client's
			}
			return
		}
	}
}

// writeHeader sends header and status to the client, without hop-by-hop headers and the length (the
// body may differ from the pod's once the picker has passed it on).
func writeHeader(w http.ResponseWriter, header http.Header, status int) {
	for k, vs := range header {
		if name := strings.ToLower(k); !hopByHop[name] && name != "content-length" {
			w.Header()[http.CanonicalHeaderKey(k)] = vs
		}
	}
	w.WriteHeader(status)
}

// writeImmediate sends the picker's own answer (a rejection) to the client.
func writeImmediate(w http.ResponseWriter, imm *extprocv3.ImmediateResponse) {
	h := http.Header{}
	mutate(h, imm.GetHeaders())
	code := int(imm.GetStatus().GetCode())
	if code == 0 {
		code = http.StatusInternalServerError // the status is required: the picker misbehaved
	}
	writeHeader(w, h, code)
	_, _ = w.Write(imm.GetBody())
}

// writeError is a local reply, plain text as Envoy's.
func writeError(w http.ResponseWriter, code int, msg string) {
	http.Error(w, msg, code)
}

// newRequestID is a random UUID (version 4), the form of Envoy's x-request-id.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
