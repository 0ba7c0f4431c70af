// Package server implements KEDA's external scaler gRPC contract from the engine's in-memory state.
//
// The metric: one metric per ScaledObject, "desired-replicas", of type AverageValue with target 1. Its
// value is the replica count the decision package chose, so the HPA's ceil(value / target) is exactly that
// count whatever the current size. The ScaledObject the operator writes sets the HPA's tolerance and
// scale-down stabilization to 0, so the HPA applies the number instead of deciding again (its default 10 %
// tolerance would swallow a change from 10 to 11; two stabilization windows would compound); its scale-up
// rate limit (+100 % or +4 pods per 15 s) stays as a guard. On every HPA sync KEDA's metrics adapter asks
// the KEDA operator (a 3 s deadline, pkg/metricsservice/client.go), which calls GetMetricSpec, GetMetrics and
// IsActive in sequence with no deadline of its own; every answer here is a map lookup. KEDA only logs a
// GetMetricSpec error (the ScaledObject then says "got empty metric spec"); our NotFound and InvalidArgument
// messages reach users through GetMetrics.
//
// The HPA's tolerance field is honoured from Kubernetes 1.35 (HPAConfigurableTolerance beta, on by
// default); on older clusters its 10 % default applies and a change from 10 to 11 replicas waits until the
// scaler asks for 12.
//
// Several scaler replicas behind one Service each scrape every pod and keep their own window, so their
// answers agree up to one scrape interval; after a replica restarts, its warm-up (no scale-down for one
// window) keeps it from answering lower than the others did.
package server

import (
	"context"
	"errors"
	"regexp"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"

	"github.com/llm-d/llm-d/api/contract"
	pb "github.com/llm-d/llm-d/proto/externalscaler"
	"github.com/llm-d/llm-d/scaler/discovery"
	"github.com/llm-d/llm-d/scaler/engine"
)

// MetricName is the name of the one metric the scaler reports per ScaledObject.
const MetricName = "desired-replicas"

// Limits on what a caller may send; KEDA sends a few short keys.
const (
	maxMetadataEntries = 32
	maxMetadataBytes   = 8 << 10
)

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Source is where answers come from: the engine.
type Source interface {
	Latest(ctx context.Context, key types.NamespacedName) (engine.Result, error)
}

// Server is the ExternalScaler service.
type Server struct {
	pb.UnimplementedExternalScalerServer
	Source Source
	// StreamInterval is how often the streaming calls re-send their answer. KEDA opens the streams only for
	// `external-push` triggers; the operator writes `external`, so they serve users who choose push.
	StreamInterval time.Duration
}

// key validates a ScaledObjectRef and names the service it refers to: metadata.service in the ref's
// namespace (the ScaledObject's own name when metadata has no service). The namespace always comes from
// KEDA's ref, so a trigger cannot name a service of another namespace.
func key(ref *pb.ScaledObjectRef) (types.NamespacedName, error) {
	if ref == nil {
		return types.NamespacedName{}, status.Error(codes.InvalidArgument, "missing ScaledObjectRef")
	}
	md := ref.GetScalerMetadata()
	size := 0
	for k, v := range md {
		size += len(k) + len(v)
	}
	if len(md) > maxMetadataEntries || size > maxMetadataBytes {
		return types.NamespacedName{}, status.Errorf(codes.InvalidArgument,
			"trigger metadata has %d entries and %d bytes; the llm-d scaler needs only %q and %q (limits %d entries, %d bytes)",
			len(md), size, contract.MetadataScalerAddress, contract.MetadataService, maxMetadataEntries, maxMetadataBytes)
	}
	ns := ref.GetNamespace()
	if !dns1123.MatchString(ns) || len(ns) > 63 {
		return types.NamespacedName{}, status.Errorf(codes.InvalidArgument, "ScaledObjectRef.namespace %q is not a namespace name", ns)
	}
	name, ok := md[contract.MetadataService]
	if !ok {
		name = ref.GetName()
	}
	if !dns1123.MatchString(name) || len(name) > 253 {
		return types.NamespacedName{}, status.Errorf(codes.InvalidArgument,
			"trigger metadata %s=%q is not an LLMInferenceService name: set it to the service's metadata.name (lowercase letters, digits and '-')",
			contract.MetadataService, name)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

func (s *Server) latest(ctx context.Context, ref *pb.ScaledObjectRef) (engine.Result, error) {
	k, err := key(ref)
	if err != nil {
		return engine.Result{}, err
	}
	r, err := s.Source.Latest(ctx, k)
	switch {
	case err == nil, errors.Is(err, engine.ErrNoDecision):
		return r, nil
	case errors.Is(err, discovery.ErrNotFound):
		return r, status.Errorf(codes.NotFound, "%v: check the trigger's metadata.%s and that the service has autoscaling.enabled: true",
			err, contract.MetadataService)
	case errors.Is(err, engine.ErrCannotRead):
		return r, status.Errorf(codes.Unavailable, "%v: check the scaler's RBAC (the chart's llm-d-scaler ClusterRole) and its log", err)
	default:
		return r, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
}

// GetMetricSpec returns the one metric and its target of 1 replica.
func (s *Server) GetMetricSpec(ctx context.Context, ref *pb.ScaledObjectRef) (*pb.GetMetricSpecResponse, error) {
	if _, err := s.latest(ctx, ref); err != nil {
		return nil, err
	}
	return metricSpec(), nil
}

func metricSpec() *pb.GetMetricSpecResponse {
	return &pb.GetMetricSpecResponse{MetricSpecs: []*pb.MetricSpec{{MetricName: MetricName, TargetSize: 1, TargetSizeFloat: 1}}}
}

// GetMetrics returns the desired replica count as the metric's value.
func (s *Server) GetMetrics(ctx context.Context, req *pb.GetMetricsRequest) (*pb.GetMetricsResponse, error) {
	r, err := s.latest(ctx, req.GetScaledObjectRef())
	if err != nil {
		return nil, err
	}
	n := r.Decision.Desired
	return &pb.GetMetricsResponse{MetricValues: []*pb.MetricValue{{MetricName: MetricName, MetricValue: int64(n), MetricValueFloat: float64(n)}}}, nil
}

// IsActive is true for every autoscaled service: minReplicas is at least 1, so KEDA never scales to zero.
func (s *Server) IsActive(ctx context.Context, ref *pb.ScaledObjectRef) (*pb.IsActiveResponse, error) {
	r, err := s.latest(ctx, ref)
	if err != nil {
		return nil, err
	}
	return &pb.IsActiveResponse{Result: r.Decision.Desired > 0}, nil
}

// StreamIsActive sends the activity at once and then every StreamInterval until the caller leaves.
func (s *Server) StreamIsActive(ref *pb.ScaledObjectRef, stream pb.ExternalScaler_StreamIsActiveServer) error {
	return s.stream(stream.Context(), func() error {
		r, err := s.IsActive(stream.Context(), ref)
		if err != nil {
			return err
		}
		return stream.Send(r)
	})
}

// StreamMetricSpec sends the metric spec at once, as the contract requires, and again every
// StreamInterval; the target never changes, so GetMetricSpec always agrees with it.
func (s *Server) StreamMetricSpec(ref *pb.ScaledObjectRef, stream pb.ExternalScaler_StreamMetricSpecServer) error {
	return s.stream(stream.Context(), func() error {
		if _, err := s.latest(stream.Context(), ref); err != nil {
			return err
		}
		return stream.Send(metricSpec())
	})
}

func (s *Server) stream(ctx context.Context, send func() error) error {
	every := s.StreamInterval
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := send(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// compile-time check that Server implements the contract.
var _ pb.ExternalScalerServer = (*Server)(nil)
