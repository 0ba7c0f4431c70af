package chart

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	inferencev1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	"sigs.k8s.io/yaml"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
	"github.com/llm-d/llm-d/internal/poll"
	"github.com/llm-d/llm-d/internal/repo"
	pb "github.com/llm-d/llm-d/proto/externalscaler"
	"github.com/llm-d/llm-d/scaler/discovery"
	"github.com/llm-d/llm-d/scaler/engine"
	"github.com/llm-d/llm-d/scaler/report"
	"github.com/llm-d/llm-d/scaler/scrape"
	"github.com/llm-d/llm-d/scaler/server"
	"github.com/llm-d/llm-d/test/testenv"
	vllmserver "github.com/llm-d/llm-d/vllmsim/server"
	"github.com/llm-d/llm-d/vllmsim/server/servertest"
)

// TestLeastPrivilege runs the operator and the scaler, wired as their commands wire them, as the chart's
// ServiceAccounts (impersonation) with exactly the RBAC the chart renders, and checks that each does its
// whole job: the operator turns the autoscaled llama-3-8b sample into its objects and a ScaledObject,
// reconciles the production-pool sample, measures pod startup, and elects a leader; the scaler reads the pods
// through their owners, scrapes one, writes status.autoscaler and answers KEDA. Then one rule is taken
// away from each role and the failure must show where a user looks: the service's status, or for the
// scaler KEDA's answer, which must never be a smaller count decided without the pods.
func TestLeastPrivilege(t *testing.T) {
	env, err := testenv.Start(testenv.Options{Controllers: []string{"deployment", "replicaset"}, Routing: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	admin := env.Client
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	// The chart's RBAC and ServiceAccounts, as helm would install them.
	const release, ns = "llm-d", "llm-d-system"
	must(t, admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	for _, o := range render(t, defaults) {
		switch o.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			must(t, admin.Create(ctx, o))
		}
	}
	as := func(sa string) *rest.Config {
		c := rest.CopyConfig(env.Config)
		c.Impersonate = rest.ImpersonationConfig{
			UserName: "system:serviceaccount:" + ns + ":" + sa,
			Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		}
		return c
	}

	// The operator, with leader election on as the chart's HA setting runs it.
	opMgr, err := ctrl.NewManager(as(release+"-operator"), ctrl.Options{
		Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Cache: controllers.CacheOptions(),
		LeaderElection: true, LeaderElectionID: "llm-d-operator.inference.llm-d.ai", LeaderElectionNamespace: ns,
	})
	must(t, err)
	opCfg := controllers.DefaultConfig()
	opCfg.InferencePools, opCfg.HTTPRoutes = true, true // as the operator finds them: Routing installs their CRDs
	must(t, controllers.Setup(opMgr, opCfg, prometheus.NewRegistry()))

	go func() { _ = opMgr.Start(ctx) }()
	keda, stopScaler := startScaler(t, ctx, as(release+"-scaler"), env.Scheme)

	// The samples, verbatim.
	must(t, admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "inference"}}))
	must(t, admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "inference", Name: "hf-token-secret"},
		StringData: map[string]string{"HF_TOKEN": "hf_never_shown"}}))
	for _, f := range []string{"llama-3-8b-autoscaling.yaml", "production-pool.yaml"} {
		applySample(t, admin, f)
	}

	// A kubelet's part: the pod runs a (simulated) vLLM on its IP and turns Ready.
	const ip = "127.30.0.1"
	cfg := vllmserver.DefaultConfig()
	cfg.Params.StartupDelay = 0
	servertest.Listen(t, cfg, net.JoinHostPort(ip, fmt.Sprint(contract.HTTPPort)))
	eventually(t, "a pod of llama-3-8b to mark Ready", func() error {
		pods := &corev1.PodList{}
		if err := admin.List(ctx, pods, client.InNamespace("inference"), client.MatchingLabels{contract.LabelInstance: "llama-3-8b"}); err != nil {
			return err
		}
		if len(pods.Items) == 0 {
			return errors.New("no pod yet")
		}
		p := pods.Items[0]
		now := metav1.Now()
		p.Status.Phase, p.Status.PodIP, p.Status.PodIPs = corev1.PodRunning, ip, []corev1.PodIP{{IP: ip}}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}
		return admin.Status().Update(ctx, &p)
	})

	svc := &v1alpha1.LLMInferenceService{}
	eventually(t, "the operator's ScaledObject and the scaler's decision in status", func() error {
		if err := admin.Get(ctx, client.ObjectKey{Namespace: "inference", Name: "llama-3-8b"}, svc); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionAutoscaling); c == nil || c.Reason != controllers.ReasonScaledObjectReady {
			return fmt.Errorf("Autoscaling condition %+v", c)
		}
		if svc.Status.Autoscaler == nil || svc.Status.Autoscaler.DesiredReplicas < 1 {
			return fmt.Errorf("status.autoscaler %+v", svc.Status.Autoscaler)
		}
		return nil
	})
	pool := &v1alpha1.LLMInferencePool{}
	eventually(t, "the pool's status", func() error {
		if err := admin.Get(ctx, client.ObjectKey{Namespace: "inference", Name: "production-pool"}, pool); err != nil {
			return err
		}
		if len(pool.Status.Conditions) == 0 {
			return errors.New("no pool status yet")
		}
		return nil
	})

	// A routed service: the operator writes its InferencePool and picker, the picker's Role included, which
	// the API server allows only if the operator holds every permission it grants. (Its HTTPRoute waits for
	// a ready picker, which needs a kubelet.)
	routed := sampleService(t, "llama-3-8b.yaml")
	routed.Name, routed.Namespace = "routed", "inference"
	routed.Spec.Router = &v1alpha1.RouterSpec{Gateway: &v1alpha1.GatewayRef{Name: "inference-gateway"}}
	must(t, admin.Create(ctx, routed))
	eventually(t, "the routed service's InferencePool", func() error {
		return admin.Get(ctx, client.ObjectKey{Namespace: "inference", Name: "routed"}, &inferencev1.InferencePool{})
	})
	for _, o := range []client.Object{&appsv1.Deployment{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}, &corev1.ServiceAccount{}, &corev1.ConfigMap{}, &corev1.Service{}} {
		eventually(t, fmt.Sprintf("the picker's %T", o), func() error {
			return admin.Get(ctx, client.ObjectKey{Namespace: "inference", Name: "routed-epp"}, o)
		})
	}
	eventually(t, "the routed service's Routing condition past writing", func() error {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(routed), routed); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(routed.Status.Conditions, v1alpha1.ConditionRouting); c == nil || c.Reason != controllers.ReasonPickerStarting {
			return fmt.Errorf("Routing condition %+v", c)
		}
		return nil
	})

	// The operator reads no Secret: a missing token Secret is told by the kubelet in the pod's status, set
	// here as the kubelet sets it, and the operator turns it into the SecretNotFound condition.
	cr := &rbacv1.ClusterRole{}
	must(t, admin.Get(ctx, client.ObjectKey{Name: release + "-operator"}, cr))
	for _, r := range cr.Rules {
		if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "*") {
			t.Fatalf("the operator's ClusterRole grants %v on secrets: it must read none", r.Verbs)
		}
	}
	tokenless := sampleService(t, "llama-3-8b.yaml")
	tokenless.Name, tokenless.Namespace = "no-token", "inference"
	tokenless.Spec.Model.Source.HuggingFaceTokenSecret = "missing-token"
	must(t, admin.Create(ctx, tokenless))
	eventually(t, "the kubelet's CreateContainerConfigError on the pod of no-token", func() error {
		pods := &corev1.PodList{}
		if err := admin.List(ctx, pods, client.InNamespace("inference"), client.MatchingLabels{contract.LabelInstance: "no-token"}); err != nil {
			return err
		}
		if len(pods.Items) == 0 {
			return errors.New("no pod yet")
		}
		p := pods.Items[0]
		p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: controllers.DownloadContainerName,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: `secret "missing-token" not found`}}}}
		return admin.Status().Update(ctx, &p)
	})
	eventually(t, "SecretNotFound without reading Secrets", func() error {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(tokenless), tokenless); err != nil {
			return err
		}
		c := meta.FindStatusCondition(tokenless.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Reason != controllers.ReasonSecretNotFound || !strings.Contains(c.Message, "kubectl create secret generic missing-token -n inference") {
			return fmt.Errorf("Ready condition %+v", c)
		}
		return nil
	})

	// Take "create" on Deployments away from the operator: a new service must say it is forbidden.
	must(t, admin.Get(ctx, client.ObjectKey{Name: release + "-operator"}, cr))
	removed := false
	for i, r := range cr.Rules {
		if len(r.APIGroups) == 1 && r.APIGroups[0] == "apps" && slices.Contains(r.Resources, "deployments") {
			cr.Rules[i].Verbs = without(r.Verbs, "create")
			removed = true
		}
	}
	if !removed {
		t.Fatal("the chart's operator role has no rule on deployments")
	}
	must(t, admin.Update(ctx, cr))
	// The authorizer follows RBAC through its own informer: the operator must not create the Deployment
	// before the rule is gone, or the new service never meets the missing permission.
	waitDenied(t, ctx, as(release+"-operator"), authorizationv1.ResourceAttributes{Namespace: "inference", Verb: "create", Group: "apps", Resource: "deployments"})
	late := sampleService(t, "llama-3-8b.yaml")
	late.Name, late.Namespace = "forbidden", "inference"
	must(t, admin.Create(ctx, late))
	eventually(t, "the operator reports the missing permission", func() error {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(late), late); err != nil {
			return err
		}
		c := meta.FindStatusCondition(late.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Reason != controllers.ReasonReconcileError || !strings.Contains(c.Message, "forbidden") {
			return fmt.Errorf("Ready condition %+v", c)
		}
		return nil
	})

	// The scaler's first decision may predate the pod; the one lost below must come from the scraped pod.
	eventually(t, "the scaler to decide from the ready pod", func() error {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return err
		}
		if a := svc.Status.Autoscaler; a == nil || a.ReadyPods != 1 {
			return fmt.Errorf("status.autoscaler %+v", a)
		}
		return nil
	})
	// What KEDA sends for the operator's ScaledObject, with the 3 s KEDA's metrics adapter gives each call
	// (the KEDA operator passes that deadline on to the scaler). The running scaler answers it: the wiring
	// works, so the failures below come from the missing rule alone.
	so := &kedav1alpha1.ScaledObject{}
	must(t, admin.Get(ctx, client.ObjectKeyFromObject(svc), so))
	ref := &pb.ScaledObjectRef{Name: so.Name, Namespace: so.Namespace, ScalerMetadata: so.Spec.Triggers[0].Metadata}
	kedaCtx := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 3*time.Second) }
	callCtx, cancel := kedaCtx()
	res, err := keda.GetMetrics(callCtx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: server.MetricName})
	cancel()
	if err != nil || len(res.MetricValues) != 1 || res.MetricValues[0].MetricValue < 1 {
		t.Fatalf("with the chart's RBAC, GetMetrics answered %v, %v; want one value of at least 1 replica", res, err)
	}

	// Take the pods rule away from the scaler. A running scaler keeps its informers' established watches
	// (authorization is checked when a request starts), so it is restarted, as the rollout that follows a
	// role change restarts it; its pod informer then cannot list, and it can neither find nor scrape a pod.
	stopScaler()
	must(t, admin.Get(ctx, client.ObjectKeyFromObject(svc), svc))
	before := *svc.Status.Autoscaler
	must(t, admin.Get(ctx, client.ObjectKey{Name: release + "-scaler"}, cr))
	rules := slices.DeleteFunc(slices.Clone(cr.Rules), func(r rbacv1.PolicyRule) bool {
		return len(r.APIGroups) == 1 && r.APIGroups[0] == "" && slices.Equal(r.Resources, []string{"pods"})
	})
	if len(rules) != len(cr.Rules)-1 {
		t.Fatalf("the chart's scaler role has no rule of its own on pods: %+v", cr.Rules)
	}
	cr.Rules = rules
	must(t, admin.Update(ctx, cr))
	// As for the operator above: the restarted scaler must not sync its pods once before the rule is gone.
	waitDenied(t, ctx, as(release+"-scaler"), authorizationv1.ResourceAttributes{Namespace: "inference", Verb: "list", Resource: "pods"})
	restarted, _ := startScaler(t, ctx, as(release+"-scaler"), env.Scheme)
	calls := map[string]func() (any, error){
		"GetMetrics": func() (any, error) {
			ctx, cancel := kedaCtx()
			defer cancel()
			return restarted.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: server.MetricName})
		},
		"IsActive": func() (any, error) {
			ctx, cancel := kedaCtx()
			defer cancel()
			return restarted.IsActive(ctx, ref)
		},
	}

	t.Run("scaler without pods: KEDA gets an error, never a count", func(t *testing.T) {
		// An error is what KEDA's fallback (currentReplicas, in the operator's ScaledObject) turns into a hold
		// after its failure threshold; a count, any count, the HPA would apply as the new size, and an
		// inactive answer lets KEDA deactivate the target.
		for name, call := range calls {
			if res, err := call(); err == nil {
				t.Errorf("%s answered %v although the scaler cannot read the pods; want an error so that KEDA holds the size", name, res)
			}
		}
	})

	t.Run("scaler without pods: the missing permission shows where an SRE looks", func(t *testing.T) {
		// The reason is known once the pod informer's first list has come back forbidden; before that a call
		// can only time out, which is still an error, never a count.
		for name, call := range calls {
			eventually(t, name+" to say the pods are forbidden", func() error {
				res, err := call()
				if err == nil {
					return poll.Permanent(fmt.Errorf("%s answered %v although the scaler cannot read the pods", name, res))
				}
				if !strings.Contains(err.Error(), "forbidden") {
					return fmt.Errorf("%s failed with %v; want an error that says the scaler may not read the pods", name, err)
				}
				return nil
			})
		}
		eventually(t, "status.autoscaler to report the forbidden pods", func() error {
			if err := admin.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
				return err
			}
			a := svc.Status.Autoscaler
			if a == nil || !strings.Contains(a.Reason, "forbidden") {
				return fmt.Errorf("status.autoscaler %+v; want a reason that says the pods are forbidden", a)
			}
			if a.DesiredReplicas < before.DesiredReplicas {
				return poll.Permanent(fmt.Errorf("status.autoscaler asks for %d replicas, fewer than the %d before, without reading a pod", a.DesiredReplicas, before.DesiredReplicas))
			}
			return nil
		})
		t.Logf("status.autoscaler: %s %s", svc.Status.Autoscaler.Rule, svc.Status.Autoscaler.Reason)
	})
}

// startScaler runs the scaler as cmd/scaler wires it, as the given identity, until ctx ends or stop is
// called; stop returns once it has stopped writing. It returns a client of its KEDA service, as KEDA calls it.
func startScaler(t *testing.T, ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme) (keda pb.ExternalScalerClient, stop func()) {
	t.Helper()
	const interval = 200 * time.Millisecond
	readErrs := &discovery.ReadErrors{}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Cache: discovery.CacheOptions(readErrs),
	})
	must(t, err)
	log := ctrl.Log.WithName("scaler")
	rep := &report.Reporter{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("llm-d-scaler"), Log: log}
	eng := engine.New(mgr.GetClient(), scrape.NewFetcher(time.Second, 4<<20), engine.ParseVLLM,
		engine.Config{Interval: interval, Workers: 4, ReadErrors: readErrs}, engine.NewMetrics(prometheus.NewRegistry()), rep.Observe, log)
	must(t, mgr.Add(manager.RunnableFunc(eng.Start)))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	gs := grpc.NewServer()
	pb.RegisterExternalScalerServer(gs, &server.Server{Source: eng, StreamInterval: interval})
	must(t, mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		go func() { <-ctx.Done(); gs.GracefulStop() }()
		return gs.Serve(lis)
	})))
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(ctx) }()
	return pb.NewExternalScalerClient(conn), func() { cancel(); <-done }
}

func applySample(t *testing.T, c client.Client, file string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo.Root(), "config", "samples", file))
	must(t, err)
	u := &unstructured.Unstructured{}
	must(t, yaml.Unmarshal(data, &u.Object))
	must(t, c.Create(context.Background(), u))
}

func sampleService(t *testing.T, file string) *v1alpha1.LLMInferenceService {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo.Root(), "config", "samples", file))
	must(t, err)
	s := &v1alpha1.LLMInferenceService{}
	must(t, yaml.UnmarshalStrict(data, s))
	return s
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	if err := poll.Eventually(context.Background(), 90*time.Second, f); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func without(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// waitDenied waits until the API server's authorizer, which follows RBAC through its own informer, denies
// what a role change just took away from the user of cfg.
func waitDenied(t *testing.T, ctx context.Context, cfg *rest.Config, attrs authorizationv1.ResourceAttributes) {
	t.Helper()
	c, err := client.New(cfg, client.Options{})
	must(t, err)
	eventually(t, fmt.Sprintf("%s to lose %s on %s", cfg.Impersonate.UserName, attrs.Verb, attrs.Resource), func() error {
		sar := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs}}
		if err := c.Create(ctx, sar); err != nil {
			return err
		}
		if sar.Status.Allowed {
			return fmt.Errorf("%s on %s is still allowed", attrs.Verb, attrs.Resource)
		}
		return nil
	})
}
