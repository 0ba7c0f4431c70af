package engine_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
	"github.com/llm-d/llm-d/internal/poll"
	pb "github.com/llm-d/llm-d/proto/externalscaler"
	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/discovery"
	"github.com/llm-d/llm-d/scaler/engine"
	"github.com/llm-d/llm-d/scaler/report"
	"github.com/llm-d/llm-d/scaler/scrape"
	"github.com/llm-d/llm-d/scaler/server"
	"github.com/llm-d/llm-d/test/testenv"
	"github.com/llm-d/llm-d/vllmsim"
	vllmserver "github.com/llm-d/llm-d/vllmsim/server"
	"github.com/llm-d/llm-d/vllmsim/server/servertest"
)

// The scaler end to end short of KEDA: a real kube-apiserver and etcd, the real kube-controller-manager
// creating the operator's pods, pod status set as a kubelet would (IPs in 127.20.0.0/24, Ready), simulated
// vLLM servers listening on those IPs, and the scaler's engine and gRPC server deciding from them.
var (
	env    *testenv.Env
	k8s    client.Client
	eng    *engine.Engine
	scaler pb.ExternalScalerClient
)

const interval = 200 * time.Millisecond

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	env, err = testenv.Start(testenv.Options{Controllers: []string{"deployment", "replicaset", "serviceaccount", "garbagecollector"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	k8s = env.Client
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The operator, so that Deployments and pods come from the real reconciler.
	opMgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&controllers.LLMInferenceServiceReconciler{Client: opMgr.GetClient(), Config: controllers.DefaultConfig()}).SetupWithManager(opMgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The scaler, wired as cmd/scaler wires it.
	scMgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: discovery.CacheOptions(&discovery.ReadErrors{})})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rep := &report.Reporter{Client: scMgr.GetClient(), Recorder: scMgr.GetEventRecorder("llm-d-scaler"), Log: ctrl.Log}
	eng = engine.New(scMgr.GetClient(), scrape.NewFetcher(time.Second, 4<<20), engine.ParseVLLM,
		engine.Config{Interval: interval, Workers: 8}, engine.NewMetrics(prometheus.NewRegistry()), rep.Observe, ctrl.Log)
	for _, mgr := range []ctrl.Manager{opMgr, scMgr} {
		go func() { _ = mgr.Start(ctx) }()
	}
	scMgr.GetCache().WaitForCacheSync(ctx)
	go func() { _ = eng.Start(ctx) }()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	gs := grpc.NewServer()
	pb.RegisterExternalScalerServer(gs, &server.Server{Source: eng, StreamInterval: interval})
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	scaler = pb.NewExternalScalerClient(conn)
	return m.Run()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	if err := poll.Eventually(context.Background(), 60*time.Second, f); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// vllmPod runs a simulated vLLM server on ip:8000 until the test ends or stop is called.
func vllmPod(t *testing.T, ip string, maxSeqs int) (base string, stop func()) {
	t.Helper()
	cfg := vllmserver.DefaultConfig()
	cfg.Params = vllmsim.A10GLlama8B()
	cfg.Params.StartupDelay = 0
	cfg.Params.MaxNumSeqs = maxSeqs
	cfg.PromptTokens = 16
	return servertest.Listen(t, cfg, net.JoinHostPort(ip, fmt.Sprint(contract.HTTPPort)))
}

// load keeps n streaming requests of many tokens open against base until the test ends or cancel.
func load(t *testing.T, base string, n int) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for i := 0; i < n; i++ {
		go func() {
			body := `{"model":"meta-llama/Meta-Llama-3.1-8B-Instruct","stream":true,"max_tokens":4000,"messages":[{"role":"user","content":"hi"}]}`
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
			}
		}()
	}
	return cancel
}

func service(t *testing.T, ns string) *v1alpha1.LLMInferenceService {
	t.Helper()
	must(t, k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	return serviceNamed(t, ns, "llama")
}

func serviceNamed(t *testing.T, ns, name string) *v1alpha1.LLMInferenceService {
	t.Helper()
	s := &v1alpha1.LLMInferenceService{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.LLMInferenceServiceSpec{
			Model:  v1alpha1.ModelSpec{ID: "meta-llama/Meta-Llama-3.1-8B-Instruct"},
			Engine: v1alpha1.EngineSpec{Args: []string{"--max-model-len=8192"}},
			Autoscaling: &v1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: 1, MaxReplicas: 4,
				Metrics: []v1alpha1.AutoscalingMetric{
					{Type: v1alpha1.MetricRequestQueue, RequestQueue: &v1alpha1.RequestQueueTarget{TargetAverageQueueDepth: 2}},
					{Type: v1alpha1.MetricThroughput, Throughput: &v1alpha1.ThroughputTarget{TargetDecodeTokensPerSecond: 1}},
				},
				ScaleDownStabilizationSeconds: ptr.To[int32](2)},
		},
	}
	must(t, k8s.Create(context.Background(), s))
	return s
}

// readyPod marks the service's pod Ready with ip, as a kubelet would.
func readyPod(t *testing.T, ns, ip string) string {
	return readyPodOf(t, ns, "llama", ip)
}

func readyPodOf(t *testing.T, ns, svc, ip string) string {
	t.Helper()
	var name string
	eventually(t, "a pod to mark ready", func() error {
		pods := &corev1.PodList{}
		if err := k8s.List(context.Background(), pods, client.InNamespace(ns), client.MatchingLabels{contract.LabelInstance: svc}); err != nil {
			return err
		}
		if len(pods.Items) == 0 {
			return errors.New("no pod yet")
		}
		p := pods.Items[0]
		setReady(&p, ip)
		name = p.Name
		return k8s.Status().Update(context.Background(), &p)
	})
	return name
}

func setReady(p *corev1.Pod, ip string) {
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP = ip
	p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}
}

func desired(ns string) (int64, error) { return desiredOf(ns, "llama") }

func desiredOf(ns, name string) (int64, error) {
	ref := &pb.ScaledObjectRef{Name: name, Namespace: ns, ScalerMetadata: map[string]string{"service": name, "scalerAddress": "x:9090"}}
	r, err := scaler.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: server.MetricName})
	if err != nil {
		return 0, err
	}
	return r.MetricValues[0].MetricValue, nil
}

func waitDesired(t *testing.T, ns string, want int64, rule decision.Rule) {
	t.Helper()
	eventually(t, fmt.Sprintf("desired %d by %s", want, rule), func() error {
		n, err := desired(ns)
		if err != nil {
			return err
		}
		r, err := eng.Latest(context.Background(), types.NamespacedName{Namespace: ns, Name: "llama"})
		if err != nil {
			return err
		}
		if n != want || (rule != "" && r.Decision.Rule != rule) {
			return fmt.Errorf("desired %d (%s: %s)", n, r.Decision.Rule, r.Decision.Reason)
		}
		return nil
	})
}

func TestScalerDecidesFromScrapedPods(t *testing.T) {
	const ns = "scaler-e2e"
	service(t, ns)
	podName := readyPod(t, ns, "127.20.0.2")
	base, stopPod := vllmPod(t, "127.20.0.2", 2)

	// A look-alike: same labels, not owned by the service's Deployment, a deep queue. Never scraped.
	impostor := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "impostor",
		Labels: map[string]string{contract.LabelName: "vllm", contract.LabelInstance: "llama", contract.LabelManagedBy: "llm-d"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}}
	must(t, k8s.Create(context.Background(), impostor))
	setReady(impostor, "127.20.0.9")
	must(t, k8s.Status().Update(context.Background(), impostor))
	impostorBase, _ := vllmPod(t, "127.20.0.9", 1)
	load(t, impostorBase, 30)

	// Idle: one replica, the minimum.
	waitDesired(t, ns, 1, "")

	// A queue deeper than the target: 12 requests on a pod that runs 2 at a time -> ceil(12 / (2 + 2)) = 3.
	stopLoad := load(t, base, 12)
	waitDesired(t, ns, 3, decision.RuleScaleUpQueue)
	r, err := eng.Latest(context.Background(), types.NamespacedName{Namespace: ns, Name: "llama"})
	must(t, err)
	if len(r.Target.Ready) != 1 || r.Target.Ready[0].Name != podName {
		t.Fatalf("scraped pods %+v, want only %s (never the impostor)", r.Target.Ready, podName)
	}
	eventually(t, "status.autoscaler", func() error {
		s := &v1alpha1.LLMInferenceService{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "llama"}, s); err != nil {
			return err
		}
		if a := s.Status.Autoscaler; a == nil || a.DesiredReplicas != 3 || a.Rule != string(decision.RuleScaleUpQueue) || a.ReadyPods != 1 {
			return fmt.Errorf("status.autoscaler = %+v", a)
		}
		return nil
	})

	// The load ends: the queue empties, and after the 2 s window the service goes back to its minimum.
	stopLoad()
	waitDesired(t, ns, 1, "")

	// The pod stops answering: its data is missing, and a hold is all the scaler does.
	stopPod()
	waitDesired(t, ns, 1, decision.RuleMissingData)
}

func TestUnknownServiceAndBadMetadata(t *testing.T) {
	ctx := context.Background()
	_, err := scaler.GetMetricSpec(ctx, &pb.ScaledObjectRef{Name: "nope", Namespace: "default", ScalerMetadata: map[string]string{"service": "nope"}})
	if err == nil || !strings.Contains(err.Error(), "NotFound") || !strings.Contains(err.Error(), "autoscaling.enabled") {
		t.Fatalf("unknown service: %v", err)
	}
	_, err = scaler.GetMetricSpec(ctx, &pb.ScaledObjectRef{Name: "x", Namespace: "default", ScalerMetadata: map[string]string{"service": "Bad_Name"}})
	if err == nil || !strings.Contains(err.Error(), "InvalidArgument") {
		t.Fatalf("bad metadata: %v", err)
	}
	big := map[string]string{}
	for i := 0; i < 100; i++ {
		big[fmt.Sprint("k", i)] = "v"
	}
	_, err = scaler.GetMetricSpec(ctx, &pb.ScaledObjectRef{Name: "x", Namespace: "default", ScalerMetadata: big})
	if err == nil || !strings.Contains(err.Error(), "InvalidArgument") {
		t.Fatalf("oversized metadata: %v", err)
	}
}

// Two services on one budget of 3 GPUs, both with a deep queue: the high-priority one gets what the
// budget allows above the other's minimum, and the two never ask for more GPUs than the budget.
func TestPoolBudgetCapsDecisions(t *testing.T) {
	const ns = "scaler-pool"
	must(t, k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	for _, name := range []string{"llama", "phi"} {
		s := serviceNamed(t, ns, name)
		eventually(t, "gpu request on "+name, func() error {
			if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
				return err
			}
			s.Spec.Resources.Limits = corev1.ResourceList{contract.GPUResource: resource.MustParse("1")}
			return k8s.Update(context.Background(), s)
		})
	}
	p := &v1alpha1.LLMInferencePool{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "production-pool"},
		Spec: v1alpha1.LLMInferencePoolSpec{
			Services:       []v1alpha1.PoolMember{{Name: "llama", Priority: v1alpha1.PriorityHigh, Weight: 60}, {Name: "phi", Priority: v1alpha1.PriorityNormal, Weight: 40}},
			ResourcePolicy: v1alpha1.ResourcePolicy{GPUBudget: resource.MustParse("3"), EvictionPolicy: v1alpha1.EvictionLowPriority},
		}}
	must(t, k8s.Create(context.Background(), p))
	for i, name := range []string{"llama", "phi"} {
		ip := fmt.Sprintf("127.20.1.%d", i+2)
		readyPodOf(t, ns, name, ip)
		base, _ := vllmPod(t, ip, 2)
		load(t, base, 16) // alone, each would ask for ceil(16 / (2 + 2)) = 4
	}
	eventually(t, "pool allocation", func() error {
		// Two calls are not one allocation: llama is read again, and only a pair it brackets unchanged is
		// checked against the budget.
		l, err1 := desiredOf(ns, "llama")
		ph, err2 := desiredOf(ns, "phi")
		again, err3 := desiredOf(ns, "llama")
		if err := errors.Join(err1, err2, err3); err != nil {
			return err
		}
		if again != l {
			return fmt.Errorf("llama moved from %d to %d while phi was read", l, again)
		}
		if l+ph > 3 {
			t.Fatalf("llama %d + phi %d replicas of 1 GPU exceed the budget of 3", l, ph)
		}
		// The 16 streams open over a few scrapes, so a round can see a smaller demand that the pool
		// also caps at 2: wait for the round that sees them all.
		r, err := eng.Latest(context.Background(), types.NamespacedName{Namespace: ns, Name: "llama"})
		if err != nil {
			return err
		}
		if l != 2 || ph != 1 || r.Pool != "production-pool" || r.Demand != 4 || r.Decision.Rule != engine.RulePoolBudget {
			return fmt.Errorf("llama %d phi %d, want 2 and 1; llama: pool %q demand %d (want 4) rule %s (%s)",
				l, ph, r.Pool, r.Demand, r.Decision.Rule, r.Decision.Reason)
		}
		return nil
	})
}
