package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"

	pb "github.com/llm-d/llm-d/proto/externalscaler"
	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/discovery"
	"github.com/llm-d/llm-d/scaler/engine"
)

// The gRPC rows of docs/faults.md: KEDA's calls over a real loopback connection against a Source whose
// answers the tests set, as the engine's map lookups would give them.

// table is a Source: one result or error per service; unknown services are discovery.ErrNotFound.
type table struct {
	mu      sync.Mutex
	results map[types.NamespacedName]engine.Result
	errs    map[types.NamespacedName]error
	calls   atomic.Int64
}

func newTable() *table {
	return &table{results: map[types.NamespacedName]engine.Result{}, errs: map[types.NamespacedName]error{}}
}

func (s *table) set(ns, name string, desired int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.results[types.NamespacedName{Namespace: ns, Name: name}] = engine.Result{Decision: decision.Decision{Desired: desired}}
}

func (s *table) Latest(_ context.Context, key types.NamespacedName) (engine.Result, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.errs[key]; err != nil {
		return s.results[key], err
	}
	r, ok := s.results[key]
	if !ok {
		return engine.Result{}, fmt.Errorf("LLMInferenceService %s: %w", key, discovery.ErrNotFound)
	}
	return r, nil
}

// dial serves src on a loopback listener and returns a client.
func dial(t *testing.T, src Source, opts ...grpc.ServerOption) pb.ExternalScalerClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	pb.RegisterExternalScalerServer(gs, &Server{Source: src, StreamInterval: 10 * time.Millisecond})
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return pb.NewExternalScalerClient(conn)
}

func ref(ns, name string, md map[string]string) *pb.ScaledObjectRef {
	return &pb.ScaledObjectRef{Namespace: ns, Name: name, ScalerMetadata: md}
}

// allCalls makes every call KEDA makes for one ref and returns each call's error, by call name.
func allCalls(c pb.ExternalScalerClient, r *pb.ScaledObjectRef) map[string]error {
	ctx := context.Background()
	errs := map[string]error{}
	_, errs["GetMetricSpec"] = c.GetMetricSpec(ctx, r)
	_, errs["GetMetrics"] = c.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: r, MetricName: MetricName})
	_, errs["IsActive"] = c.IsActive(ctx, r)
	if s, err := c.StreamIsActive(ctx, r); err != nil {
		errs["StreamIsActive"] = err
	} else {
		_, errs["StreamIsActive"] = s.Recv()
	}
	if s, err := c.StreamMetricSpec(ctx, r); err != nil {
		errs["StreamMetricSpec"] = err
	} else {
		_, errs["StreamMetricSpec"] = s.Recv()
	}
	return errs
}

func TestFaultUnknownService(t *testing.T) {
	src := newTable()
	c := dial(t, src)
	for call, err := range allCalls(c, ref("inference", "nope", map[string]string{"service": "nope", "scalerAddress": "x:9090"})) {
		if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "autoscaling.enabled") {
			t.Errorf("%s: %v, want NotFound saying what to check", call, err)
		}
	}
}

// A service whose policy is unusable (an invalid CR that slipped past validation) fails every call with
// FailedPrecondition and the policy error: KEDA keeps the last size (its fallback, if configured) and the
// ScaledObject's status carries the message.
func TestFaultServiceWithUnusablePolicy(t *testing.T) {
	src := newTable()
	key := types.NamespacedName{Namespace: "inference", Name: "llama"}
	src.errs[key] = errors.New("LLMInferenceService inference/llama: spec.autoscaling: maxReplicas 1 is below minReplicas 2")
	c := dial(t, src)
	for call, err := range allCalls(c, ref("inference", "llama", map[string]string{"service": "llama"})) {
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "maxReplicas 1 is below minReplicas 2") {
			t.Errorf("%s: %v, want FailedPrecondition with the policy error", call, err)
		}
	}
}

// Right after a (re)start the engine has no decision yet: the answer is the hold it returns, not an error,
// so that KEDA neither fails the ScaledObject nor reads a zero.
func TestFaultNoDecisionYetIsAHold(t *testing.T) {
	src := newTable()
	src.results[types.NamespacedName{Namespace: "inference", Name: "llama"}] = engine.Result{Decision: decision.Decision{Desired: 5, Rule: decision.RuleMissingData}}
	src.errs[types.NamespacedName{Namespace: "inference", Name: "llama"}] = engine.ErrNoDecision
	c := dial(t, src)
	r, err := c.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: ref("inference", "llama", nil), MetricName: MetricName})
	if err != nil || r.MetricValues[0].MetricValue != 5 {
		t.Fatalf("got %v, %v; want the hold of 5", r, err)
	}
	a, err := c.IsActive(context.Background(), ref("inference", "llama", nil))
	if err != nil || !a.Result {
		t.Fatalf("IsActive: %v, %v", a, err)
	}
}

// Malformed and oversized metadata is refused with InvalidArgument before the Source is asked; metadata can
// never move a call to another namespace.
func TestFaultMalformedAndOversizedMetadata(t *testing.T) {
	src := newTable()
	src.set("inference", "llama", 3)
	c := dial(t, src)
	long := strings.Repeat("a", 254)
	manyKeys := map[string]string{"service": "llama"}
	for i := range maxMetadataEntries {
		manyKeys[fmt.Sprint("k", i)] = "v"
	}
	cases := []struct {
		name string
		ref  *pb.ScaledObjectRef
	}{
		{"empty ref", &pb.ScaledObjectRef{}},
		{"no namespace", ref("", "llama", map[string]string{"service": "llama"})},
		{"namespace not a name", ref("Inference", "llama", map[string]string{"service": "llama"})},
		{"namespace too long", ref(strings.Repeat("n", 64), "llama", map[string]string{"service": "llama"})},
		{"service with upper case", ref("inference", "llama", map[string]string{"service": "Llama"})},
		{"service with underscore", ref("inference", "llama", map[string]string{"service": "llama_3"})},
		{"service naming another namespace", ref("inference", "llama", map[string]string{"service": "other/llama"})},
		{"service path traversal", ref("inference", "llama", map[string]string{"service": "../llama"})},
		{"service empty", ref("inference", "llama", map[string]string{"service": ""})},
		{"service too long", ref("inference", "llama", map[string]string{"service": long})},
		{"service with a newline (log injection)", ref("inference", "llama", map[string]string{"service": "llama\nlevel=error"})},
		{"no service and a bad ScaledObject name", ref("inference", "Llama.3", nil)},
		{"too many entries", ref("inference", "llama", manyKeys)},
		{"too many bytes", ref("inference", "llama", map[string]string{"service": "llama", "x": strings.Repeat("v", maxMetadataBytes)})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := src.calls.Load()
			for call, err := range allCalls(c, tc.ref) {
				if status.Code(err) != codes.InvalidArgument {
					t.Errorf("%s: %v, want InvalidArgument", call, err)
				}
			}
			if n := src.calls.Load() - before; n != 0 {
				t.Errorf("the Source was asked %d times for a refused ref", n)
			}
		})
	}

	// Invalid UTF-8 never reaches key: proto3 strings must be UTF-8, so gRPC's codec refuses such a message
	// on both sides (FuzzScaledObjectRefWire feeds key whatever decodes).

	// At the limits, and with keys the scaler does not read (KEDA passes the whole trigger metadata): accepted.
	atLimit := map[string]string{"service": "llama", "scalerAddress": "x:9090", "namespace": "kube-system"}
	for i := len(atLimit); i < maxMetadataEntries; i++ {
		atLimit[fmt.Sprint("k", i)] = "v"
	}
	r, err := c.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: ref("inference", "llama", atLimit), MetricName: MetricName})
	if err != nil || r.MetricValues[0].MetricValue != 3 {
		t.Fatalf("at the limits: %v, %v", r, err)
	}
	// A message beyond gRPC's own 4 MiB receive limit never reaches the handler.
	huge := map[string]string{"service": "llama", "x": strings.Repeat("v", 5<<20)}
	before := src.calls.Load()
	if _, err := c.GetMetricSpec(context.Background(), ref("inference", "llama", huge)); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("5 MiB of metadata: %v, want ResourceExhausted", err)
	}
	if src.calls.Load() != before {
		t.Fatal("the Source was asked for a 5 MiB ref")
	}
}

// Many KEDA calls at once (the race detector watches) while the answers change: every answer is one that
// was set, never a torn or zero value, and the streams keep up.
func TestFaultManyConcurrentCalls(t *testing.T) {
	src := newTable()
	services := []string{"a", "b", "c", "d"}
	for _, s := range services {
		src.set("inference", s, 1)
	}
	c := dial(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var writer sync.WaitGroup
	writer.Go(func() {
		// Paced, so that the writer does not take a whole core from the other packages' tests.
		tick := time.NewTicker(100 * time.Microsecond)
		defer tick.Stop()
		for i := 0; ctx.Err() == nil; i++ {
			src.set("inference", services[i%4], int32(1+i%8)) // answers always in 1..8
			<-tick.C
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 32 {
		wg.Go(func() {
			name := services[g%4]
			r := ref("inference", name, map[string]string{"service": name, "scalerAddress": "x:9090"})
			for range 50 {
				m, err := c.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: r, MetricName: MetricName})
				if err != nil {
					errs <- err
					return
				}
				if v := m.MetricValues[0]; v.MetricValue < 1 || v.MetricValue > 8 || v.MetricValueFloat != float64(v.MetricValue) || v.MetricName != MetricName {
					errs <- fmt.Errorf("%s: answer %+v was never set", name, v)
					return
				}
				a, err := c.IsActive(ctx, r)
				if err != nil || !a.Result {
					errs <- fmt.Errorf("IsActive: %v %v", a, err)
					return
				}
				if _, err := c.GetMetricSpec(ctx, r); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for g := range 8 {
		wg.Go(func() {
			s, err := c.StreamIsActive(ctx, ref("inference", services[g%4], nil))
			if err != nil {
				errs <- err
				return
			}
			for range 5 {
				if a, err := s.Recv(); err != nil || !a.Result {
					errs <- fmt.Errorf("stream: %v %v", a, err)
					return
				}
			}
		})
	}
	wg.Wait()
	cancel()
	writer.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A stream whose service disappears ends with NotFound instead of repeating a stale answer.
func TestFaultStreamEndsWhenServiceGoes(t *testing.T) {
	src := newTable()
	src.set("inference", "llama", 2)
	c := dial(t, src)
	s, err := c.StreamIsActive(context.Background(), ref("inference", "llama", nil))
	if err != nil {
		t.Fatal(err)
	}
	if a, err := s.Recv(); err != nil || !a.Result {
		t.Fatalf("first answer: %v %v", a, err)
	}
	src.mu.Lock()
	delete(src.results, types.NamespacedName{Namespace: "inference", Name: "llama"})
	src.mu.Unlock()
	for {
		_, err := s.Recv()
		if err == nil {
			continue // answers sent before the deletion
		}
		if status.Code(err) != codes.NotFound {
			t.Fatalf("stream ended with %v, want NotFound", err)
		}
		return
	}
}
