package fleet

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"
)

// The front door sends a request on to the pod while the pod's answer may already be streaming back to
// the client: the transport reads the request body once more after its last byte, to check its length,
// and by then the front door's response may have begun. That must not fail the sending, which would close
// the pod's connection and cut the stream.
func TestFrontDoorSendsTheRequestWhileAnswering(t *testing.T) {
	f := newFleet(t, testConfig())
	defer f.stopAll()
	must(t, f.sync("ns/a", testPod("ns", "a", "svc", "127.10.251.41", "--model=m")))

	// A busy machine now and then delays the transport's last read until the answer has reached the
	// client; here the writer is held there every time, and the trace reports how its sending ended.
	answered := make(chan struct{})
	dial := f.transport.DialContext
	f.transport.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &holdingConn{Conn: c, answered: answered}, nil
	}
	wrote := make(chan error, 1)
	trace := &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) { wrote <- i.Err }}
	front := httptest.NewUnstartedServer(f.Handler("ns", "svc"))
	front.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return httptrace.WithClientTrace(ctx, trace) // the proxied request's context derives from it
	}
	front.Start()
	defer front.Close()

	// A client that keeps its connection, as loadgen's does: only then does the server, writing the
	// answer's headers, drain and close the request body to read the next request.
	resp, err := front.Client().Post(front.URL+"/v1/completions", "application/json",
		strings.NewReader(`{"model":"m","prompt":"hello","max_tokens":5,"stream":true}`))
	close(answered)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the front door answered %s", resp.Status)
	}
	if err := <-wrote; err != nil {
		t.Errorf("sending the request on to the pod, once the client had the answer's headers: %v", err)
	}
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			events = append(events, data)
		}
	}
	if err := sc.Err(); err != nil || len(events) != 7 || events[6] != "[DONE]" { // 5 tokens, the finish chunk, [DONE]
		t.Errorf("the stream ended with %v after %d events, want 7 ending in [DONE]", err, len(events))
	}
}

// holdingConn holds a write that ends a request, whose JSON body ends in }, until answered is closed.
type holdingConn struct {
	net.Conn
	answered <-chan struct{}
}

func (c *holdingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if bytes.HasSuffix(p, []byte("}")) {
		<-c.answered
	}
	return n, err
}
