// Package kedacontract checks that the llm-d scaler's gRPC server speaks KEDA's external scaler contract, using
// KEDA's own client (github.com/kedacore/keda/v2/pkg/scalers) configured the way KEDA's operator configures it
// for the ScaledObject our operator writes. See README.md for why this is a module of its own.
package kedacontract

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/kedacore/keda/v2/pkg/scalers"
	kpb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/kedacore/keda/v2/pkg/scalers/scalersconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	v2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/metrics/pkg/apis/external_metrics"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
	pb "github.com/llm-d/llm-d/proto/externalscaler"
	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/discovery"
	"github.com/llm-d/llm-d/scaler/engine"
	"github.com/llm-d/llm-d/scaler/server"
	"github.com/llm-d/llm-d/test/kedacontract/internal/protoconflict"
)

const (
	namespace = "team-a"
	// kedaHTTPTimeout is the KEDA operator's default KEDA_HTTP_DEFAULT_TIMEOUT, its GlobalHTTPTimeout.
	kedaHTTPTimeout = 3 * time.Second
	// wait bounds every poll; nothing here should take more than a fraction of it.
	wait = 10 * time.Second
	// never is a StreamInterval no test outlives: a message seen under it was sent at stream start.
	never = time.Hour
)

// kedaLog collects what KEDA's scalers log; GetMetricSpecForScaling reports a failed call only there.
var kedaLog logLines

type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, prefix+" "+args)
}

// find returns the first line holding every one of subs.
func (l *logLines) find(subs ...string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, line := range l.lines {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		return line, true
	}
	return "", false
}

func (l *logLines) dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func TestMain(m *testing.M) {
	// KEDA's scalers log through controller-runtime's global logger, as in the KEDA operator.
	logf.SetLogger(funcr.New(kedaLog.add, funcr.Options{Verbosity: 1}))
	os.Exit(m.Run())
}

// memSource is an in-memory server.Source: desired replicas per service, like the engine's latest results.
type memSource struct {
	mu      sync.Mutex
	desired map[types.NamespacedName]int32
	// pending services exist but have no decision yet: the engine answers a hold and ErrNoDecision.
	pending map[types.NamespacedName]int32
	asked   map[types.NamespacedName]int
}

func newSource() *memSource {
	return &memSource{
		desired: map[types.NamespacedName]int32{},
		pending: map[types.NamespacedName]int32{},
		asked:   map[types.NamespacedName]int{},
	}
}

func (s *memSource) set(name string, n int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.desired[types.NamespacedName{Namespace: namespace, Name: name}] = n
}

func (s *memSource) hold(name string, n int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending[types.NamespacedName{Namespace: namespace, Name: name}] = n
}

func (s *memSource) timesAsked(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked[types.NamespacedName{Namespace: namespace, Name: name}]
}

func (s *memSource) Latest(_ context.Context, key types.NamespacedName) (engine.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked[key]++
	if n, ok := s.desired[key]; ok {
		return engine.Result{Decision: decision.Decision{Desired: n, Reason: "test"}, At: time.Now()}, nil
	}
	if n, ok := s.pending[key]; ok {
		return engine.Result{Decision: decision.Decision{Desired: n, Reason: fmt.Sprintf("no decision yet: holding %d replicas", n)}},
			engine.ErrNoDecision
	}
	return engine.Result{}, fmt.Errorf("LLMInferenceService %s: %w", key, discovery.ErrNotFound)
}

// startServer serves our ExternalScaler on a real TCP listener, registered as cmd/scaler registers it.
func startServer(t *testing.T, src server.Source, every time.Duration) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterExternalScalerServer(gs, &server.Server{Source: src, StreamInterval: every})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return lis.Addr().String()
}

// scaledObject is the ScaledObject our operator writes for service name, pointing at addr.
func scaledObject(name, addr string) *kedav1alpha1.ScaledObject {
	svc := &v1alpha1.LLMInferenceService{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: v1alpha1.LLMInferenceServiceSpec{
			Autoscaling: &v1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: 1, MaxReplicas: 20},
		},
	}
	so := controllers.BuildScaledObject(svc, controllers.Config{ScalerAddress: addr})
	so.TypeMeta = metav1.TypeMeta{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject"}
	return so
}

// kedaConfig builds the ScalerConfig for trigger 0 of so exactly as KEDA v2.21's operator does in
// pkg/scaling/scalers_builder.go (buildScalers), with no pod env and no TriggerAuthentication.
func kedaConfig(t *testing.T, so *kedav1alpha1.ScaledObject) *scalersconfig.ScalerConfig {
	t.Helper()
	wt, err := kedav1alpha1.AsDuckWithTriggers(so)
	if err != nil {
		t.Fatal(err)
	}
	if len(wt.Spec.Triggers) != 1 {
		t.Fatalf("our ScaledObject has %d triggers, want 1", len(wt.Spec.Triggers))
	}
	triggerIndex, trigger := 0, wt.Spec.Triggers[0]
	return &scalersconfig.ScalerConfig{
		ScalableObjectName:      wt.Name,
		ScalableObjectNamespace: wt.Namespace,
		ScalableObjectType:      wt.Kind,
		TriggerName:             trigger.Name,
		TriggerMetadata:         trigger.Metadata,
		TriggerType:             trigger.Type,
		TriggerUseCachedMetrics: trigger.UseCachedMetrics,
		ResolvedEnv:             map[string]string{},
		AuthParams:              map[string]string{},
		GlobalHTTPTimeout:       kedaHTTPTimeout,
		TriggerIndex:            triggerIndex,
		MetricType:              trigger.MetricType,
		AsMetricSource:          false,
		ScaledObject:            wt,
		TriggerUniqueKey:        fmt.Sprintf("%s-%s-%s-%d", wt.Kind, wt.Namespace, wt.Name, triggerIndex),
	}
}

// newKEDAScaler is KEDA's buildScaler for the trigger types our ScaledObject can carry.
func newKEDAScaler(t *testing.T, cfg *scalersconfig.ScalerConfig) scalers.Scaler {
	t.Helper()
	var s scalers.Scaler
	var err error
	switch cfg.TriggerType {
	case "external":
		s, err = scalers.NewExternalScaler(cfg)
	case "external-push":
		s, err = scalers.NewExternalPushScaler(cfg)
	default:
		t.Fatalf("our ScaledObject's trigger type is %q, not a KEDA external scaler", cfg.TriggerType)
	}
	if err != nil {
		t.Fatalf("KEDA refused the trigger our operator writes: %v", err)
	}
	// KEDA pools gRPC connections per scalerAddress, process-wide; Close releases this scaler's share.
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("closing KEDA's scaler: %v", err)
		}
	})
	return s
}

func kedaCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kedaHTTPTimeout)
	t.Cleanup(cancel)
	return ctx
}

// oneMetric calls KEDA's GetMetricSpecForScaling and returns the one External metric it must build.
func oneMetric(t *testing.T, s scalers.Scaler) v2.MetricSpec {
	t.Helper()
	specs := s.GetMetricSpecForScaling(kedaCtx(t))
	if len(specs) != 1 {
		t.Fatalf("KEDA built %d metric specs, want 1: %+v", len(specs), specs)
	}
	return specs[0]
}

// value calls KEDA's GetMetricsAndActivity for metricName and returns its one value and the activity.
func value(t *testing.T, s scalers.Scaler, metricName string) (external_metrics.ExternalMetricValue, bool) {
	t.Helper()
	vals, active, err := s.GetMetricsAndActivity(kedaCtx(t), metricName)
	if err != nil {
		t.Fatalf("GetMetricsAndActivity(%q): %v", metricName, err)
	}
	if len(vals) != 1 {
		t.Fatalf("GetMetricsAndActivity(%q) returned %d values, want 1: %+v", metricName, len(vals), vals)
	}
	return vals[0], active
}

func wantMetricName() string { return "s0-" + server.MetricName }

func TestOperatorTriggerIsAnExternalAverageValueTrigger(t *testing.T) {
	cfg := kedaConfig(t, scaledObject("llama", "scaler.llm-d-system.svc:9090"))
	if cfg.TriggerType != "external" {
		t.Errorf("trigger type %q, want external", cfg.TriggerType)
	}
	if cfg.MetricType != v2.AverageValueMetricType {
		t.Errorf("trigger metricType %q, want AverageValue", cfg.MetricType)
	}
	if got := cfg.TriggerMetadata[contract.MetadataScalerAddress]; got != "scaler.llm-d-system.svc:9090" {
		t.Errorf("metadata %s=%q", contract.MetadataScalerAddress, got)
	}
	if got := cfg.TriggerMetadata[contract.MetadataService]; got != "llama" {
		t.Errorf("metadata %s=%q, want llama", contract.MetadataService, got)
	}
}

// 1. GetMetricSpecForScaling: one External metric, AverageValue target 1.
func TestMetricSpec(t *testing.T) {
	src := newSource()
	src.set("llama", 3)
	s := newKEDAScaler(t, kedaConfig(t, scaledObject("llama", startServer(t, src, never))))

	spec := oneMetric(t, s)
	if spec.Type != v2.ExternalMetricSourceType {
		t.Errorf("type %q, want %q", spec.Type, v2.ExternalMetricSourceType)
	}
	if spec.Object != nil || spec.Pods != nil || spec.Resource != nil || spec.ContainerResource != nil {
		t.Errorf("only External may be set: %+v", spec)
	}
	if spec.External == nil {
		t.Fatal("External is nil")
	}
	if got := spec.External.Metric.Name; got != wantMetricName() {
		t.Errorf("metric name %q, want %q", got, wantMetricName())
	}
	if spec.External.Metric.Selector != nil {
		// KEDA's HPA builder adds the scaledobject.keda.sh/name selector later, not the scaler.
		t.Errorf("selector %v, want none from the scaler", spec.External.Metric.Selector)
	}
	tgt := spec.External.Target
	if tgt.Type != v2.AverageValueMetricType {
		t.Errorf("target type %q, want AverageValue", tgt.Type)
	}
	if tgt.Value != nil || tgt.AverageUtilization != nil {
		t.Errorf("target sets Value %v / AverageUtilization %v, want only AverageValue", tgt.Value, tgt.AverageUtilization)
	}
	if tgt.AverageValue == nil {
		t.Fatal("target AverageValue is nil")
	}
	if tgt.AverageValue.Cmp(resource.MustParse("1")) != 0 || tgt.AverageValue.MilliValue() != 1000 {
		t.Errorf("target AverageValue %s (%dm), want 1 (1000m)", tgt.AverageValue, tgt.AverageValue.MilliValue())
	}
	if got := tgt.AverageValue.String(); got != "1" {
		t.Errorf("target AverageValue renders %q, want \"1\"", got)
	}
	if n := src.timesAsked("llama"); n == 0 {
		t.Errorf("the server never looked up %s/llama: KEDA's ref did not map to metadata.service in the ref's namespace", namespace)
	}
}

// 2. GetMetricsAndActivity: the desired count, and active.
func TestMetricsAndActivity(t *testing.T) {
	src := newSource()
	src.set("llama", 3)
	s := newKEDAScaler(t, kedaConfig(t, scaledObject("llama", startServer(t, src, never))))
	metricName := oneMetric(t, s).External.Metric.Name

	for _, n := range []int32{3, 7, 1} {
		src.set("llama", n)
		v, active := value(t, s, metricName)
		if v.MetricName != wantMetricName() {
			t.Errorf("desired %d: metric name %q, want %q", n, v.MetricName, wantMetricName())
		}
		if v.Value.Cmp(*resource.NewQuantity(int64(n), resource.DecimalSI)) != 0 {
			t.Errorf("desired %d: KEDA reports %s", n, v.Value.String())
		}
		if !active {
			t.Errorf("desired %d: isActive false, want true", n)
		}
		if v.Timestamp.IsZero() {
			t.Errorf("desired %d: no timestamp", n)
		}
	}
}

// ErrNoDecision: the service exists but no round has finished; the server answers the engine's hold.
func TestNoDecisionYetAnswersTheHold(t *testing.T) {
	src := newSource()
	src.hold("fresh", 4)
	s := newKEDAScaler(t, kedaConfig(t, scaledObject("fresh", startServer(t, src, never))))
	v, active := value(t, s, oneMetric(t, s).External.Metric.Name)
	if v.Value.Cmp(resource.MustParse("4")) != 0 || !active {
		t.Errorf("hold of 4: KEDA reports %s active=%v, want 4 active=true", v.Value.String(), active)
	}
}

// A desired count of 0 is reported as 0 and inactive. Our minReplicas is at least 1, so the engine never
// decides 0; this pins what KEDA would do if it did (deactivate, i.e. scale to minReplicaCount).
func TestZeroIsInactive(t *testing.T) {
	src := newSource()
	src.set("idle", 0)
	s := newKEDAScaler(t, kedaConfig(t, scaledObject("idle", startServer(t, src, never))))
	v, active := value(t, s, oneMetric(t, s).External.Metric.Name)
	if !v.Value.IsZero() || active {
		t.Errorf("desired 0: KEDA reports %s active=%v, want 0 active=false", v.Value.String(), active)
	}
}

// 3. An unknown service: KEDA surfaces our NotFound and its advice.
func TestUnknownService(t *testing.T) {
	src := newSource()
	s := newKEDAScaler(t, kedaConfig(t, scaledObject("ghost", startServer(t, src, never))))

	// GetMetricSpecForScaling has no error result: KEDA logs the error and returns no spec (the operator
	// then refreshes the scaler once and reports "got empty metric spec").
	if specs := s.GetMetricSpecForScaling(kedaCtx(t)); len(specs) != 0 {
		t.Fatalf("unknown service: KEDA built %d metric specs, want none", len(specs))
	}
	if line, ok := kedaLog.find("external_scaler", "NotFound", namespace+"/ghost", "metadata.service"); !ok {
		t.Errorf("KEDA's log does not carry our NotFound for %s/ghost; it has:\n%s", namespace, kedaLog.dump())
	} else {
		t.Logf("KEDA logged: %s", line)
	}

	vals, active, err := s.GetMetricsAndActivity(kedaCtx(t), wantMetricName())
	if err == nil {
		t.Fatalf("unknown service: no error; values %+v active %v", vals, active)
	}
	t.Logf("KEDA's error: %v", err)
	if got := status.Code(err); got != codes.NotFound {
		t.Errorf("code %v, want NotFound", got)
	}
	for _, want := range []string{
		"LLMInferenceService " + namespace + "/ghost", // which object
		"not found",
		"metadata." + contract.MetadataService, // what to fix
		"autoscaling.enabled: true",            // or what else to fix
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if active || len(vals) != 0 {
		t.Errorf("unknown service: values %+v active %v alongside the error", vals, active)
	}
}

// 4. Bad metadata: KEDA surfaces our InvalidArgument and what to set instead.
func TestBadServiceName(t *testing.T) {
	src := newSource()
	so := scaledObject("llama", startServer(t, src, never))
	so.Spec.Triggers[0].Metadata[contract.MetadataService] = "Bad_Name!"
	s := newKEDAScaler(t, kedaConfig(t, so))

	if specs := s.GetMetricSpecForScaling(kedaCtx(t)); len(specs) != 0 {
		t.Fatalf("bad service name: KEDA built %d metric specs, want none", len(specs))
	}
	if _, ok := kedaLog.find("external_scaler", "InvalidArgument", "Bad_Name!"); !ok {
		t.Errorf("KEDA's log does not carry our InvalidArgument")
	}

	_, _, err := s.GetMetricsAndActivity(kedaCtx(t), wantMetricName())
	if err == nil {
		t.Fatal("bad service name: no error")
	}
	t.Logf("KEDA's error: %v", err)
	if got := status.Code(err); got != codes.InvalidArgument {
		t.Errorf("code %v, want InvalidArgument", got)
	}
	for _, want := range []string{`service="Bad_Name!"`, "not an LLMInferenceService name", "metadata.name", "lowercase"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if n := src.timesAsked("Bad_Name!"); n != 0 {
		t.Errorf("the server looked up an invalid name %d times", n)
	}
}

// hpaDesired is the HPA's replica count for one External AverageValue metric, as in
// k8s.io/kubernetes v1.36 pkg/controller/podautoscaler: targetUsagePerPod is the target's AverageValue in
// milli-units, usage the sum of the metric values' MilliValue; inside the tolerances the size is kept,
// otherwise it is ceil(usage / targetUsagePerPod).
func hpaDesired(current int32, values []external_metrics.ExternalMetricValue, target *resource.Quantity, up, down float64) int32 {
	targetUsagePerPod := target.MilliValue()
	var usage int64
	for _, v := range values {
		usage += v.Value.MilliValue()
	}
	ratio := float64(usage) / (float64(targetUsagePerPod) * float64(current))
	if 1.0-down <= ratio && ratio <= 1.0+up {
		return current
	}
	return int32(math.Ceil(float64(usage) / float64(targetUsagePerPod)))
}

// 5. The HPA arithmetic: with target 1 and value N, the HPA runs N replicas whatever the current size,
// with the tolerances our ScaledObject sets.
func TestHPAArithmetic(t *testing.T) {
	src := newSource()
	src.set("llama", 1)
	so := scaledObject("llama", startServer(t, src, never))
	// The per-direction tolerance is honoured from Kubernetes 1.35 (HPAConfigurableTolerance, beta); older
	// control planes drop it and apply --horizontal-pod-autoscaler-tolerance (default 0.1) instead.
	var b *v2.HorizontalPodAutoscalerBehavior
	if a := so.Spec.Advanced; a != nil && a.HorizontalPodAutoscalerConfig != nil {
		b = a.HorizontalPodAutoscalerConfig.Behavior
	}
	if b == nil || b.ScaleUp == nil || b.ScaleDown == nil || b.ScaleUp.Tolerance == nil || b.ScaleDown.Tolerance == nil {
		t.Fatalf("our ScaledObject sets no HPA tolerances: %+v", b)
	}
	up, down := b.ScaleUp.Tolerance.AsApproximateFloat64(), b.ScaleDown.Tolerance.AsApproximateFloat64()
	s := newKEDAScaler(t, kedaConfig(t, so))
	spec := oneMetric(t, s)

	for _, n := range []int32{1, 2, 3, 7, 10, 11, 20} {
		src.set("llama", n)
		vals, _, err := s.GetMetricsAndActivity(kedaCtx(t), spec.External.Metric.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, current := range []int32{1, 2, 5, 10, 20} {
			if got := hpaDesired(current, vals, spec.External.Target.AverageValue, up, down); got != n {
				t.Errorf("scaler wants %d, HPA at %d replicas computes %d (values %v, target %s, tolerance up %v down %v)",
					n, current, got, vals[0].Value.String(), spec.External.Target.AverageValue, up, down)
			}
		}
	}
}

// recvWithin waits for one value from ch, failing the test after d.
func recvWithin[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatalf("%s: channel closed before the first message", what)
		}
		return v
	case <-time.After(d):
		t.Fatalf("%s: nothing within %v", what, d)
	}
	var zero T
	return zero
}

// 6. KEDA's push path ("external-push" trigger): StreamIsActive and StreamMetricSpec through KEDA's own
// externalPushScaler. With a StreamInterval of an hour, a first message proves the server sends at once.
// Note our operator writes "external", so KEDA never opens these streams for our ScaledObjects today.
func TestKEDAPushScalerStreamsAtOnce(t *testing.T) {
	src := newSource()
	src.set("llama", 3)
	so := scaledObject("llama", startServer(t, src, never))
	so.Spec.Triggers[0].Type = "external-push"
	cfg := kedaConfig(t, so)
	s := newKEDAScaler(t, cfg)
	push, ok := s.(scalers.PushScaler)
	if !ok {
		t.Fatalf("%T is not a PushScaler", s)
	}
	streamer, ok := s.(scalers.MetricSpecStreamer)
	if !ok {
		t.Fatalf("%T is not a MetricSpecStreamer", s)
	}
	pulled := oneMetric(t, s)

	ctx, cancel := context.WithCancel(context.Background())
	active := make(chan bool)
	go push.Run(ctx, active)
	t.Cleanup(func() {
		cancel()
		// Run closes active once both streams are gone; drain until then.
		for range active {
		}
	})

	start := time.Now()
	if !recvWithin(t, active, wait, "StreamIsActive") {
		t.Error("StreamIsActive: first message says inactive, want active")
	}
	specs := recvWithin(t, streamer.MetricSpecChan(), wait, "StreamMetricSpec")
	t.Logf("first stream messages after %v", time.Since(start))
	// KEDA's rule 2 for StreamMetricSpec: GetMetricSpec must agree with the latest streamed specs.
	if len(specs) != 1 || specs[0].External == nil ||
		specs[0].External.Metric.Name != pulled.External.Metric.Name ||
		specs[0].External.Target.Type != pulled.External.Target.Type ||
		specs[0].External.Target.AverageValue.Cmp(*pulled.External.Target.AverageValue) != 0 {
		t.Errorf("streamed specs %+v disagree with GetMetricSpec's %+v", specs, pulled)
	}
}

// The stream re-sends every StreamInterval, so a change of activity reaches KEDA without a new stream.
func TestKEDAPushScalerFollowsChanges(t *testing.T) {
	src := newSource()
	src.set("llama", 2)
	so := scaledObject("llama", startServer(t, src, 20*time.Millisecond))
	so.Spec.Triggers[0].Type = "external-push"
	s := newKEDAScaler(t, kedaConfig(t, so))
	push := s.(scalers.PushScaler)

	ctx, cancel := context.WithCancel(context.Background())
	active := make(chan bool)
	go push.Run(ctx, active)
	t.Cleanup(func() {
		cancel()
		for range active {
		}
	})
	if !recvWithin(t, active, wait, "StreamIsActive") {
		t.Fatal("first message inactive")
	}
	for _, step := range []struct {
		n    int32
		want bool
	}{{0, false}, {5, true}} {
		src.set("llama", step.n)
		deadline := time.After(wait)
		for got := !step.want; got != step.want; {
			select {
			case v, ok := <-active:
				if !ok {
					t.Fatal("active channel closed")
				}
				got = v
			case <-deadline:
				t.Fatalf("desired %d: StreamIsActive never said %v", step.n, step.want)
			}
		}
	}
}

// The streaming RPCs through KEDA's generated client (the stubs KEDA's operator dials with): the first
// message arrives at once, and an unknown service ends the stream with NotFound.
func TestStreamsWithKEDAsGeneratedClient(t *testing.T) {
	src := newSource()
	src.set("llama", 3)
	addr := startServer(t, src, never)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := kpb.NewExternalScalerClient(conn)
	cfg := kedaConfig(t, scaledObject("llama", addr))
	ref := &kpb.ScaledObjectRef{Name: cfg.ScalableObjectName, Namespace: cfg.ScalableObjectNamespace, ScalerMetadata: cfg.TriggerMetadata}

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	isActive, err := c.StreamIsActive(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := isActive.Recv(); err != nil || !r.GetResult() {
		t.Errorf("StreamIsActive first message: %v, %v; want result=true", r, err)
	}
	specs, err := c.StreamMetricSpec(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	r, err := specs.Recv()
	if err != nil {
		t.Fatalf("StreamMetricSpec first message: %v", err)
	}
	if len(r.GetMetricSpecs()) != 1 || r.MetricSpecs[0].GetMetricName() != server.MetricName ||
		r.MetricSpecs[0].GetTargetSizeFloat() != 1 || r.MetricSpecs[0].GetTargetSize() != 1 {
		t.Errorf("StreamMetricSpec first message %v, want one %q with target 1", r, server.MetricName)
	}

	ghost := &kpb.ScaledObjectRef{Name: "ghost", Namespace: namespace, ScalerMetadata: map[string]string{
		contract.MetadataScalerAddress: addr, contract.MetadataService: "ghost"}}
	ghostActive, err := c.StreamIsActive(ctx, ghost)
	if err == nil {
		_, err = ghostActive.Recv()
	}
	if status.Code(err) != codes.NotFound {
		t.Errorf("StreamIsActive for an unknown service: %v, want NotFound", err)
	}
	ghostSpecs, err := c.StreamMetricSpec(ctx, ghost)
	if err == nil {
		_, err = ghostSpecs.Recv()
	}
	if status.Code(err) != codes.NotFound {
		t.Errorf("StreamMetricSpec for an unknown service: %v, want NotFound", err)
	}
}

// The wire contract itself: our externalscaler.proto against the one KEDA v2.21 compiles, field by field.
func TestProtoMatchesKEDAs(t *testing.T) {
	if os.Getenv(protoconflict.Env) == "" {
		t.Fatalf("%s unset: the protoconflict init did not run first", protoconflict.Env)
	}
	ours, theirs := pb.File_externalscaler_externalscaler_proto, kpb.File_externalscaler_proto
	if ours.Package() != theirs.Package() {
		t.Fatalf("proto package %q, KEDA's %q", ours.Package(), theirs.Package())
	}
	osvcs, ts := ours.Services(), theirs.Services()
	if osvcs.Len() != ts.Len() {
		t.Fatalf("%d services, KEDA's %d", osvcs.Len(), ts.Len())
	}
	for i := range ts.Len() {
		tsvc := ts.Get(i)
		osvc := osvcs.ByName(tsvc.Name())
		if osvc == nil {
			t.Errorf("no service %s", tsvc.FullName())
			continue
		}
		for j := range tsvc.Methods().Len() {
			tm := tsvc.Methods().Get(j)
			om := osvc.Methods().ByName(tm.Name())
			if om == nil {
				t.Errorf("no method %s", tm.FullName())
				continue
			}
			if om.Input().FullName() != tm.Input().FullName() || om.Output().FullName() != tm.Output().FullName() ||
				om.IsStreamingClient() != tm.IsStreamingClient() || om.IsStreamingServer() != tm.IsStreamingServer() {
				t.Errorf("method %s: ours (%s) returns (stream=%v %s), KEDA's (%s) returns (stream=%v %s)", tm.FullName(),
					om.Input().FullName(), om.IsStreamingServer(), om.Output().FullName(),
					tm.Input().FullName(), tm.IsStreamingServer(), tm.Output().FullName())
			}
		}
		if osvc.Methods().Len() != tsvc.Methods().Len() {
			t.Errorf("service %s: %d methods, KEDA's %d", tsvc.FullName(), osvc.Methods().Len(), tsvc.Methods().Len())
		}
	}
	om, tm := ours.Messages(), theirs.Messages()
	if om.Len() != tm.Len() {
		t.Errorf("%d messages, KEDA's %d", om.Len(), tm.Len())
	}
	for i := range tm.Len() {
		compareMessage(t, om.ByName(tm.Get(i).Name()), tm.Get(i))
	}
}

func compareMessage(t *testing.T, o, k protoreflect.MessageDescriptor) {
	t.Helper()
	if o == nil {
		t.Errorf("no message %s", k.FullName())
		return
	}
	if o.Fields().Len() != k.Fields().Len() {
		t.Errorf("message %s: %d fields, KEDA's %d", k.FullName(), o.Fields().Len(), k.Fields().Len())
	}
	for i := range k.Fields().Len() {
		kf := k.Fields().Get(i)
		of := o.Fields().ByNumber(kf.Number())
		if of == nil {
			t.Errorf("%s: no field number %d", k.FullName(), kf.Number())
			continue
		}
		if of.Name() != kf.Name() || of.Kind() != kf.Kind() || of.Cardinality() != kf.Cardinality() ||
			of.IsMap() != kf.IsMap() || of.JSONName() != kf.JSONName() {
			t.Errorf("%s field %d: ours %s %s %s, KEDA's %s %s %s", k.FullName(), kf.Number(),
				of.Cardinality(), of.Kind(), of.Name(), kf.Cardinality(), kf.Kind(), kf.Name())
		}
		if kf.Message() != nil && !kf.IsMap() {
			if of.Message() == nil || of.Message().FullName() != kf.Message().FullName() {
				t.Errorf("%s field %s: message type differs", k.FullName(), kf.Name())
			}
		}
		if kf.IsMap() && (of.MapKey().Kind() != kf.MapKey().Kind() || of.MapValue().Kind() != kf.MapValue().Kind()) {
			t.Errorf("%s field %s: map types differ", k.FullName(), kf.Name())
		}
	}
}
