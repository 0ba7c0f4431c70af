package server

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/apimachinery/pkg/types"

	pb "github.com/llm-d/llm-d/proto/externalscaler"
	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/engine"
)

// fixed answers every service with the same result, as the engine's map lookup does.
type fixed struct{ r engine.Result }

func (f fixed) Latest(context.Context, types.NamespacedName) (engine.Result, error) { return f.r, nil }

// BenchmarkGetMetrics is one KEDA GetMetrics call over a real loopback gRPC connection, reporting the
// 99th percentile besides the mean.
func BenchmarkGetMetrics(b *testing.B) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterExternalScalerServer(gs, &Server{Source: fixed{engine.Result{Decision: decision.Decision{Desired: 3}}}})
	go gs.Serve(lis)
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := pb.NewExternalScalerClient(conn)
	req := &pb.GetMetricsRequest{MetricName: MetricName, ScaledObjectRef: &pb.ScaledObjectRef{
		Name: "llama-3-8b", Namespace: "inference", ScalerMetadata: map[string]string{"service": "llama-3-8b", "scalerAddress": "llm-d-scaler:9090"}}}
	ctx := context.Background()
	if _, err := c.GetMetrics(ctx, req); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, 1<<16)
	for b.Loop() {
		start := time.Now()
		r, err := c.GetMetrics(ctx, req)
		lat = append(lat, time.Since(start))
		if err != nil || r.MetricValues[0].MetricValue != 3 {
			b.Fatalf("%v %v", r, err)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
