// Package gateway is a gateway for one InferencePool of the Gateway API Inference Extension, on loopback: an
// HTTP front that does for each request what a conformant gateway (Envoy's ext_proc filter, as the
// extension configures it) does. It streams the request's headers and body to the pool's endpoint picker
// over Envoy's ext_proc gRPC protocol, takes the endpoint from the picker's answer (header
// x-gateway-destination-endpoint, or the same key in dynamic metadata namespace envoy.lb), forwards the
// request, as the picker rewrote it, to that pod, and streams the response back through the picker. When
// the picker cannot be reached or fails, the pool's endpointPickerRef.failureMode decides: FailClose
// answers 500 (504 on a timeout), Envoy's status_on_error; FailOpen forwards the request to a ready pod of
// the pool of the gateway's own choosing.
//
// It stands in for Envoy, Istio or kgateway in the local cluster, where kwok pods have loopback IPs and
// Services route nowhere, so that tests and demos run the real picker (hack/tools.sh epp) on real
// traffic.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	inferencev1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
)

// Config is the pool a gateway serves and how it reaches its picker.
type Config struct {
	// Pool is the InferencePool the gateway routes to.
	Pool types.NamespacedName
	// ResolvePicker returns the address (host:port) of the picker the pool's endpointPickerRef names. A
	// gateway in a cluster resolves the Service; in the local cluster the picker is a host process.
	ResolvePicker func(namespace string, ref inferencev1.EndpointPickerRef) (string, error)
	// PickerPlaintext talks plain gRPC to the picker (its --secure-serving=false). Otherwise the gateway
	// speaks TLS without verifying the picker's self-signed certificate, as the extension's guides
	// configure gateways.
	PickerPlaintext bool
	// PickerTimeout bounds the wait for each of the picker's answers; a picker that takes longer has
	// failed. Zero means 10s.
	PickerTimeout time.Duration
	// Log receives failures; the zero value discards them.
	Log logr.Logger
}

// Counts says how the gateway routed the requests it has served.
type Counts struct {
	// Picked counts the requests forwarded to the endpoint (ip:port) the picker named, by endpoint.
	Picked map[string]int
	// FailedOpen counts, by endpoint, the requests forwarded to a pod of the gateway's choosing because
	// the picker failed and the pool fails open.
	FailedOpen map[string]int
	// FailedClosed counts the requests refused because the picker failed and the pool fails closed.
	FailedClosed int
	// Rejected counts the requests the picker answered itself: 503 when no endpoint is ready, 429 when
	// it sheds load, 400 for a body it cannot parse.
	Rejected int
}

// Gateway serves one pool. It is an http.Handler; its methods are safe for concurrent use.
type Gateway struct {
	cfg       Config
	cache     cache.Cache
	transport *http.Transport // to the pods

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn // to pickers, by address
	counts Counts
}

// New watches cfg.Pool and its namespace's pods through rc (until ctx ends) and returns a gateway for
// it once the watches have synced. Close releases its connections to pickers.
func New(ctx context.Context, rc *rest.Config, cfg Config) (*Gateway, error) {
	if cfg.Pool.Name == "" || cfg.Pool.Namespace == "" {
		return nil, errors.New("gateway: the pool's namespace and name are required")
	}
	if cfg.ResolvePicker == nil {
		return nil, errors.New("gateway: ResolvePicker is required")
	}
	if cfg.PickerTimeout == 0 {
		cfg.PickerTimeout = 10 * time.Second
	}
	if cfg.Log.GetSink() == nil {
		cfg.Log = logr.Discard()
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(inferencev1.Install(scheme))
	c, err := cache.New(rc, cache.Options{
		Scheme:            scheme,
		DefaultNamespaces: map[string]cache.Config{cfg.Pool.Namespace: {}},
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	for _, obj := range []client.Object{&inferencev1.InferencePool{}, &corev1.Pod{}} {
		if _, err := c.GetInformer(ctx, obj); err != nil {
			return nil, fmt.Errorf("gateway: watching %T: %w", obj, err)
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("gateway: the watches of pool %s did not sync: %w", cfg.Pool, ctx.Err())
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil // the pods are local; an HTTP_PROXY must not see their traffic
	t.MaxIdleConnsPerHost = 256
	return &Gateway{
		cfg: cfg, cache: c, transport: t, conns: map[string]*grpc.ClientConn{},
		counts: Counts{Picked: map[string]int{}, FailedOpen: map[string]int{}},
	}, nil
}

// Close closes the connections to pickers and pods.
func (g *Gateway) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []error
	for addr, c := range g.conns {
		errs = append(errs, c.Close())
		delete(g.conns, addr)
	}
	g.transport.CloseIdleConnections()
	return errors.Join(errs...)
}

// Counts returns a copy of the gateway's counts so far.
func (g *Gateway) Counts() Counts {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.counts
	c.Picked, c.FailedOpen = make(map[string]int, len(c.Picked)), make(map[string]int, len(c.FailedOpen))
	for k, v := range g.counts.Picked {
		c.Picked[k] = v
	}
	for k, v := range g.counts.FailedOpen {
		c.FailedOpen[k] = v
	}
	return c
}

// ResetCounts sets every count back to zero.
func (g *Gateway) ResetCounts() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.counts = Counts{Picked: map[string]int{}, FailedOpen: map[string]int{}}
}

// maxBodyBytes bounds a request body the gateway holds: the pods' own limit (vllmsim/server).
const maxBodyBytes = 32 << 20

// ServeHTTP routes one request through the picker to a pod of the pool.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The body is read whole before the pod sees it, for the reason fleet.Handler gives: an HTTP/1 server
	// closes the request body once the response has begun.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}
	pool := &inferencev1.InferencePool{}
	if err := g.cache.Get(r.Context(), g.cfg.Pool, pool); err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("InferencePool %s: %v", g.cfg.Pool, err))
		return
	}
	if pool.Spec.EndpointPickerRef == nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("InferencePool %s has no endpointPickerRef", g.cfg.Pool))
		return
	}

	ex, dec, err := g.route(r, pool, body)
	if err != nil {
		if ex != nil {
			ex.close()
		}
		g.failed(w, r, pool, body, err)
		return
	}
	defer ex.close()
	if dec.immediate != nil {
		g.count(func(c *Counts) { c.Rejected++ })
		writeImmediate(w, dec.immediate)
		return
	}
	resp, endpoint, err := g.forward(r, dec.endpoints, dec.header, dec.body)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "upstream connect error or disconnect/reset before headers: "+err.Error())
		return
	}
	defer resp.Body.Close()
	g.count(func(c *Counts) { c.Picked[endpoint]++ })
	if err := ex.respond(w, resp); err != nil {
		g.cfg.Log.Error(err, "the picker failed while the response streamed; cutting the response", "endpoint", endpoint)
		panic(http.ErrAbortHandler) // the client sees a truncated response, as Envoy's reset stream
	}
}

// route opens an exchange with the pool's picker and has it route the request. On error the picker
// failed, and ex, if not nil, must be closed.
func (g *Gateway) route(r *http.Request, pool *inferencev1.InferencePool, body []byte) (ex *exchange, dec *decision, err error) {
	addr, err := g.cfg.ResolvePicker(pool.Namespace, *pool.Spec.EndpointPickerRef)
	if err != nil {
		return nil, nil, fmt.Errorf("resolving the endpoint picker: %w", err)
	}
	conn, err := g.conn(addr)
	if err != nil {
		return nil, nil, err
	}
	ex, err = openExchange(r.Context(), conn, g.cfg.PickerTimeout)
	if err != nil {
		return nil, nil, err
	}
	dec, err = ex.request(r, body)
	return ex, dec, err
}

// failed answers a request whose picker failed, as the pool's failure mode says.
func (g *Gateway) failed(w http.ResponseWriter, r *http.Request, pool *inferencev1.InferencePool, body []byte, cause error) {
	if pool.Spec.EndpointPickerRef.FailureMode != inferencev1.EndpointPickerFailOpen {
		g.count(func(c *Counts) { c.FailedClosed++ })
		code := http.StatusInternalServerError
		if errors.Is(cause, errPickerTimeout) {
			code = http.StatusGatewayTimeout
		}
		writeError(w, code, "endpoint picker failed and the pool fails closed: "+cause.Error())
		return
	}
	endpoint, err := g.anyEndpoint(r.Context(), pool)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "no healthy upstream: "+err.Error())
		return
	}
	resp, _, err := g.forward(r, []string{endpoint}, r.Header.Clone(), body)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "upstream connect error or disconnect/reset before headers: "+err.Error())
		return
	}
	defer resp.Body.Close()
	g.count(func(c *Counts) { c.FailedOpen[endpoint]++ })
	copyResponse(w, resp)
}

// anyEndpoint is a random ready pod of the pool at its first target port: where a gateway sends a request
// without the picker.
func (g *Gateway) anyEndpoint(ctx context.Context, pool *inferencev1.InferencePool) (string, error) {
	sel := client.MatchingLabels{}
	for k, v := range pool.Spec.Selector.MatchLabels {
		sel[string(k)] = string(v)
	}
	var pods corev1.PodList
	if err := g.cache.List(ctx, &pods, client.InNamespace(pool.Namespace), sel); err != nil {
		return "", err
	}
	var ready []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.PodIP != "" && podReady(&p) {
			ready = append(ready, p.Status.PodIP)
		}
	}
	if len(ready) == 0 || len(pool.Spec.TargetPorts) == 0 {
		return "", fmt.Errorf("pool %s has no ready pod", g.cfg.Pool)
	}
	return fmt.Sprintf("%s:%d", ready[rand.IntN(len(ready))], pool.Spec.TargetPorts[0].Number), nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// conn is the gateway's connection to the picker at addr.
func (g *Gateway) conn(addr string) (*grpc.ClientConn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.conns[addr]; ok {
		return c, nil
	}
	creds := insecure.NewCredentials()
	if !g.cfg.PickerPlaintext {
		// The picker's certificate is self-signed (it makes one at startup); the extension's guides
		// configure gateways not to verify it.
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // see above
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("connecting to the endpoint picker at %s: %w", addr, err)
	}
	g.conns[addr] = c
	return c, nil
}

func (g *Gateway) count(f func(*Counts)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(&g.counts)
}
