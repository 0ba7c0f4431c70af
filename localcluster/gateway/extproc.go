package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
)

const (
	// DestinationEndpointHeader is where the picker names the endpoint (ip:port, or several separated by
	// commas, to try in order): a header it sets on the request and a key of its dynamic metadata.
	DestinationEndpointHeader = "x-gateway-destination-endpoint"
	// destinationNamespace is the dynamic-metadata namespace of DestinationEndpointHeader, the one Envoy's
	// load balancer reads.
	destinationNamespace = "envoy.lb"
	// chunkBytes is the largest body chunk sent to the picker in one message: what one read of a
	// connection gives Envoy.
	chunkBytes = 16 << 10
)

// errPickerTimeout: the picker did not answer a message within Config.PickerTimeout.
var errPickerTimeout = errors.New("the endpoint picker did not answer in time")

// exchange is one request's ext_proc stream with the picker, in Envoy's FULL_DUPLEX_STREAMED body mode for
// request and response: the gateway sends headers and then the body in chunks without waiting, and the
// picker answers each phase, its answers carrying the body as the upstream (or the client) is to get it.
type exchange struct {
	stream   extprocv3.ExternalProcessor_ProcessClient
	cancel   context.CancelFunc
	timeout  time.Duration
	timedOut atomic.Bool
}

// decision is the picker's answer to a request: where it goes and what it is, or an answer of its own.
type decision struct {
	endpoints []string    // to try in order
	header    http.Header // the request's headers with the picker's mutations
	body      []byte      // the body as the picker passes it on
	immediate *extprocv3.ImmediateResponse
}

func openExchange(ctx context.Context, conn *grpc.ClientConn, timeout time.Duration) (*exchange, error) {
	ctx, cancel := context.WithCancel(ctx)
	s, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("opening an ext_proc stream to the endpoint picker: %w", err)
	}
	return &exchange{stream: s, cancel: cancel, timeout: timeout}, nil
}

// close ends the stream: the picker then runs its end-of-request bookkeeping.
func (e *exchange) close() {
	_ = e.stream.CloseSend()
	e.cancel()
}

func (e *exchange) send(req *extprocv3.ProcessingRequest) error {
	if err := e.stream.Send(req); err != nil {
		return fmt.Errorf("sending to the endpoint picker: %w", err)
	}
	return nil
}

// recv waits for the picker's next answer, for at most the timeout if bounded.
func (e *exchange) recv(bounded bool) (*extprocv3.ProcessingResponse, error) {
	if bounded {
		t := time.AfterFunc(e.timeout, func() { e.timedOut.Store(true); e.cancel() })
		defer t.Stop()
	}
	resp, err := e.stream.Recv()
	switch {
	case e.timedOut.Load():
		return nil, errPickerTimeout
	case err != nil:
		return nil, fmt.Errorf("the endpoint picker: %w", err)
	}
	return resp, nil
}

// request streams r's headers and body to the picker and returns its decision.
func (e *exchange) request(r *http.Request, body []byte) (*decision, error) {
	if err := e.send(&extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: requestHeaders(r, len(body)), EndOfStream: len(body) == 0,
		}},
		ProtocolConfig: &extprocv3.ProtocolConfiguration{
			RequestBodyMode:  extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED,
			ResponseBodyMode: extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED,
		},
	}); err != nil {
		return nil, err
	}
	for off := 0; off < len(body); off += chunkBytes {
		end := min(off+chunkBytes, len(body))
		if err := e.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
			RequestBody: &extprocv3.HttpBody{Body: body[off:end], EndOfStream: end == len(body)},
		}}); err != nil {
			return nil, err
		}
	}

	resp, err := e.recv(true)
	if err != nil {
		return nil, err
	}
	if imm := resp.GetImmediateResponse(); imm != nil {
		return &decision{immediate: imm}, nil
	}
	hr := resp.GetRequestHeaders()
	if hr == nil {
		return nil, fmt.Errorf("the endpoint picker answered the request headers with %T", resp.GetResponse())
	}
	d := &decision{header: r.Header.Clone(), body: body}
	mutate(d.header, hr.GetResponse().GetHeaderMutation())
	if d.endpoints = destination(resp); len(d.endpoints) == 0 {
		return nil, errors.New("the endpoint picker named no endpoint")
	}
	if len(body) == 0 {
		return d, nil
	}
	d.body = nil
	for {
		resp, err := e.recv(true)
		if err != nil {
			return nil, err
		}
		if imm := resp.GetImmediateResponse(); imm != nil {
			return &decision{immediate: imm}, nil
		}
		br := resp.GetRequestBody()
		if br == nil {
			return nil, fmt.Errorf("the endpoint picker answered the request body with %T", resp.GetResponse())
		}
		chunk, done := bodyOf(br.GetResponse())
		d.body = append(d.body, chunk...)
		if done {
			return d, nil
		}
	}
}

// respond streams the pod's response through the picker to w: its headers, then its body chunk by chunk,
// each as the picker returns it.
func (e *exchange) respond(w http.ResponseWriter, resp *http.Response) error {
	empty := resp.ContentLength == 0
	if err := e.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: responseHeaders(resp), EndOfStream: empty},
	}}); err != nil {
		return err
	}
	first, err := e.recv(true)
	if err != nil {
		return err
	}
	if imm := first.GetImmediateResponse(); imm != nil {
		writeImmediate(w, imm)
		return nil
	}
	hr := first.GetResponseHeaders()
	if hr == nil {
		return fmt.Errorf("the endpoint picker answered the response headers with %T", first.GetResponse())
	}
	header := resp.Header.Clone()
	mutate(header, hr.GetResponse().GetHeaderMutation())
	writeHeader(w, header, resp.StatusCode)
	if empty {
		return nil
	}

	sent := make(chan error, 1)
	var allSent atomic.Bool
	go func() {
		err := e.sendBody(resp.Body)
		allSent.Store(true)
		sent <- err
	}()
	flusher, _ := w.(http.Flusher)
	for {
		// The picker holds a buffered (non-streamed) answer until it has the whole body, and a pod may
		// take minutes to generate it: only the answer to the last chunk is bounded.
		msg, err := e.recv(allSent.Load())
		if err != nil {
			return err
		}
		br := msg.GetResponseBody()
		if br == nil {
			return fmt.Errorf("the endpoint picker answered the response body with %T", msg.GetResponse())
		}
		chunk, done := bodyOf(br.GetResponse())
		if _, err := w.Write(chunk); err != nil {
			return nil // the client went away
		}
		if flusher != nil {
			flusher.Flush()
		}
		if done {
			return <-sent
		}
	}
}

// sendBody sends the pod's response body to the picker as it arrives, and then its end.
func (e *exchange) sendBody(body io.Reader) error {
	buf := make([]byte, chunkBytes)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			chunk := append([]byte(nil), buf[:n]...)
			if err := e.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
				ResponseBody: &extprocv3.HttpBody{Body: chunk},
			}}); err != nil {
				return err
			}
		}
		if err != nil {
			// The end of the stream either way, so that the picker answers; a read error still
			// truncates what the client gets.
			endErr := e.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
				ResponseBody: &extprocv3.HttpBody{EndOfStream: true},
			}})
			if errors.Is(err, io.EOF) {
				return endErr
			}
			return fmt.Errorf("reading the pod's response: %w", err)
		}
	}
}

// requestHeaders are r's headers as Envoy hands them to an external processor: lower-case names, the
// HTTP/2 pseudo-headers, one entry per value in raw_value, and x-request-id, which Envoy generates when
// the client sends none.
func requestHeaders(r *http.Request, bodyLen int) *corev3.HeaderMap {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	hs := []*corev3.HeaderValue{
		{Key: ":method", RawValue: []byte(r.Method)},
		{Key: ":path", RawValue: []byte(r.URL.RequestURI())},
		{Key: ":authority", RawValue: []byte(r.Host)},
		{Key: ":scheme", RawValue: []byte(scheme)},
	}
	if bodyLen > 0 {
		hs = append(hs, &corev3.HeaderValue{Key: "content-length", RawValue: []byte(strconv.Itoa(bodyLen))})
	}
	if r.Header.Get("X-Request-Id") == "" {
		hs = append(hs, &corev3.HeaderValue{Key: "x-request-id", RawValue: []byte(newRequestID())})
	}
	return &corev3.HeaderMap{Headers: append(hs, headerValues(r.Header)...)}
}

// responseHeaders are resp's headers as Envoy hands them over, :status first.
func responseHeaders(resp *http.Response) *corev3.HeaderMap {
	hs := []*corev3.HeaderValue{{Key: ":status", RawValue: []byte(strconv.Itoa(resp.StatusCode))}}
	return &corev3.HeaderMap{Headers: append(hs, headerValues(resp.Header)...)}
}

func headerValues(h http.Header) []*corev3.HeaderValue {
	var hs []*corev3.HeaderValue
	for k, vs := range h {
		name := strings.ToLower(k)
		if hopByHop[name] || name == "content-length" {
			continue
		}
		for _, v := range vs {
			hs = append(hs, &corev3.HeaderValue{Key: name, RawValue: []byte(v)})
		}
	}
	return hs
}

// mutate applies the picker's header mutation to h as Envoy does: pseudo-headers, host and x-envoy-*
// stay, and content-length is the body's own.
func mutate(h http.Header, m *extprocv3.HeaderMutation) {
	protected := func(name string) bool {
		return strings.HasPrefix(name, ":") || name == "host" || strings.HasPrefix(name, "x-envoy-") ||
			name == "content-length" || hopByHop[name]
	}
	for _, o := range m.GetSetHeaders() {
		name := strings.ToLower(o.GetHeader().GetKey())
		if protected(name) {
			continue
		}
		value := headerValue(o.GetHeader())
		// An option without append (the picker's) overwrites: ext_proc defaults append to false. The
		// zero append_action cannot be told from an unset one, so it overwrites too.
		switch {
		case o.GetAppend() != nil && o.GetAppend().GetValue():
			h.Add(name, value)
		case o.GetAppendAction() == corev3.HeaderValueOption_ADD_IF_ABSENT:
			if h.Get(name) == "" {
				h.Set(name, value)
			}
		case o.GetAppendAction() == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if h.Get(name) != "" {
				h.Set(name, value)
			}
		default:
			h.Set(name, value)
		}
	}
	for _, name := range m.GetRemoveHeaders() {
		if name = strings.ToLower(name); !protected(name) {
			h.Del(name)
		}
	}
}

// headerValue is a header's value, which Envoy's API carries in raw_value (bytes) or, formerly, value.
func headerValue(h *corev3.HeaderValue) string {
	if raw := h.GetRawValue(); len(raw) > 0 {
		return string(raw)
	}
	return h.GetValue()
}

// destination is the endpoint list the picker names: in the dynamic metadata Envoy's load balancer reads,
// else in the header it sets.
func destination(resp *extprocv3.ProcessingResponse) []string {
	v := resp.GetDynamicMetadata().GetFields()[destinationNamespace].GetStructValue().GetFields()[DestinationEndpointHeader].GetStringValue()
	if v == "" {
		for _, o := range resp.GetRequestHeaders().GetResponse().GetHeaderMutation().GetSetHeaders() {
			if strings.EqualFold(o.GetHeader().GetKey(), DestinationEndpointHeader) {
				v = headerValue(o.GetHeader())
			}
		}
	}
	var eps []string
	for ep := range strings.SplitSeq(v, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	return eps
}

// bodyOf is the body chunk of a body answer and whether it is the last. In full-duplex mode the picker
// returns every chunk as a streamed response; an answer without a mutation passes nothing on.
func bodyOf(c *extprocv3.CommonResponse) ([]byte, bool) {
	switch m := c.GetBodyMutation().GetMutation().(type) {
	case *extprocv3.BodyMutation_StreamedResponse:
		return m.StreamedResponse.GetBody(), m.StreamedResponse.GetEndOfStream()
	case *extprocv3.BodyMutation_Body:
		return m.Body, true
	default:
		return nil, true
	}
}
