package chart

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
	"github.com/llm-d/llm-d/scaler/discovery"
	"github.com/llm-d/llm-d/scaler/engine"
	"github.com/llm-d/llm-d/scaler/report"
	"github.com/llm-d/llm-d/scaler/scrape"
	"github.com/llm-d/llm-d/test/testenv"
	vllmserver "github.com/llm-d/llm-d/vllmsim/server"
)

// TestLeastPrivilege runs the operator and the scaler, wired as their commands wire them, as the chart's
// ServiceAccounts (impersonation) with exactly the RBAC the chart renders, and checks that each does its
// whole job: the operator turns the article's autoscaled manifest into its objects and a ScaledObject,
// reconciles the article's pool, measures pod startup, and elects a leader; the scaler reads the pods
// through their owners, scrapes one and writes status.autoscaler and an event. Then one rule is taken
// away from each role and the failure must show where a user looks: the service's status.
func TestLeastPrivilege(t *testing.T) {
	env, err := testenv.Start(testenv.Options{Controllers: []string{"deployment", "replicaset"}})
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
	must(t, controllers.Setup(opMgr, controllers.DefaultConfig(), prometheus.NewRegistry()))

	// The scaler.
	scMgr, err := ctrl.NewManager(as(release+"-scaler"), ctrl.Options{
		Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Cache: discovery.CacheOptions(),
	})
	must(t, err)
	log := ctrl.Log.WithName("scaler")
	rep := &report.Reporter{Client: scMgr.GetClient(), Recorder: scMgr.GetEventRecorder("llm-d-scaler"), Log: log}
	eng := engine.New(scMgr.GetClient(), scrape.NewFetcher(time.Second, 4<<20), engine.ParseVLLM,
		engine.Config{Interval: 200 * time.Millisecond, Workers: 4}, engine.NewMetrics(prometheus.NewRegistry()), rep.Observe, log)
	for _, m := range []ctrl.Manager{opMgr, scMgr} {
		go func() { _ = m.Start(ctx) }()
	}
	go func() {
		scMgr.GetCache().WaitForCacheSync(ctx)
		_ = eng.Start(ctx)
	}()

	// The article's manifests, verbatim.
	must(t, admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "inference"}}))
	must(t, admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "inference", Name: "hf-token-secret"},
		StringData: map[string]string{"HF_TOKEN": "hf_never_shown"}}))
	for _, f := range []string{"llama-3-8b-autoscaling.yaml", "production-pool.yaml"} {
		applySample(t, admin, f)
	}

	// A kubelet's part: the pod runs a (simulated) vLLM on its IP and turns Ready.
	const ip = "127.30.0.1"
	serveVLLM(t, ctx, ip)
	eventually(t, "a pod of llama-3-8b to mark Ready", func() error {
		pods := &corev1.PodList{}
		if err := admin.List(ctx, pods, client.InNamespace("inference"), client.MatchingLabels{controllers.LabelInstance: "llama-3-8b"}); err != nil {
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
		if c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionAutoscaling); c == nil || c.Reason != controllers.ReasonAutoscalingActive {
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

	// Take "create" on Deployments away from the operator: a new service must say it is forbidden.
	cr := &rbacv1.ClusterRole{}
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
}

func applySample(t *testing.T, c client.Client, file string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "samples", file))
	must(t, err)
	u := &unstructured.Unstructured{}
	must(t, yaml.Unmarshal(data, &u.Object))
	must(t, c.Create(context.Background(), u))
}

func sampleService(t *testing.T, file string) *v1alpha1.LLMInferenceService {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "samples", file))
	must(t, err)
	s := &v1alpha1.LLMInferenceService{}
	must(t, yaml.UnmarshalStrict(data, s))
	return s
}

// serveVLLM runs a simulated vLLM server on ip:8000 until ctx ends.
func serveVLLM(t *testing.T, ctx context.Context, ip string) {
	t.Helper()
	cfg := vllmserver.DefaultConfig()
	cfg.Params.StartupDelay = 0
	s, err := vllmserver.New(cfg)
	must(t, err)
	lis, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(controllers.HTTPPort)))
	must(t, err)
	hs := &http.Server{Handler: s.Handler()}
	go func() { _ = s.Run(ctx) }()
	go func() { _ = hs.Serve(lis) }()
	t.Cleanup(func() { _ = hs.Close() })
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	if err := testenv.Eventually(context.Background(), 90*time.Second, f); err != nil {
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
