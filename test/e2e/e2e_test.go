package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/internal/repo"
	"github.com/llm-d/llm-d/loadgen"
	"github.com/llm-d/llm-d/sandbox"
	"github.com/llm-d/llm-d/test/testenv"
)

// The windows are shortened so that the whole run takes minutes: the HPA syncs every 2 s (Kubernetes'
// default is 15 s), the scaler decides every second, the samples' 300 s scale-down window becomes 20 s, and
// the simulated GPUs run ten times faster than real ones.
const (
	ns          = "inference"
	window      = 20 * time.Second
	scrapeEvery = time.Second
	hpaSync     = 2 * time.Second
)

var stack *sandbox.Stack

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var err error
	stack, err = sandbox.Start(ctx, sandbox.Options{HPASyncPeriod: hpaSync, ScrapeInterval: scrapeEvery, Speed: 10, MutualTLS: true, Routing: true,
		KeepDir:      os.Getenv("LLMD_KEEP_CLUSTER") != "",
		StartupDelay: 20 * time.Second, Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer stack.Stop()
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, "e2e: failed; set LLMD_KEEP_CLUSTER=1 to keep every program's log (in", stack.Cluster.LogDir+")")
	}
	return code
}

// TestScalingPath runs the llama-3-8b sample on kwok's fake GPU nodes through a scaler crash and a pool shared
// across nodes. The steps share one cluster and run in order. KEDA calls the scaler over mutual TLS
// throughout, so every scaling step also proves KEDA's operator reaches the scaler through the
// ClusterTriggerAuthentication the operator writes. A burst and the quiet after it, as real pods behind a
// Service, are test/e2e/install's.
func TestScalingPath(t *testing.T) {
	ctx := context.Background()
	k := stack.Cluster.Client
	createNamespace(t, ns)
	llama := deploy(t, ns, "llama-3-8b-autoscaling.yaml")
	door, err := stack.FrontDoor(ns, llama.Name)
	testenv.Must(t, err)

	t.Run("KEDA calls the scaler over mutual TLS only", func(t *testing.T) {
		testenv.Eventually(t, 3*time.Minute, "ScaledObject and the HPA KEDA makes of it", func() error {
			hpa := &autoscalingv2.HorizontalPodAutoscaler{}
			return k.Get(ctx, client.ObjectKey{Namespace: ns, Name: "keda-hpa-" + llama.Name}, hpa)
		})
		so := &kedav1alpha1.ScaledObject{}
		testenv.Must(t, k.Get(ctx, client.ObjectKey{Namespace: ns, Name: llama.Name}, so))
		if a := so.Spec.Triggers[0].AuthenticationRef; a == nil || a.Kind != "ClusterTriggerAuthentication" || so.Spec.Triggers[0].Metadata["enableTLS"] != "true" {
			t.Fatalf("the trigger does not use mutual TLS: metadata %v, authenticationRef %+v", so.Spec.Triggers[0].Metadata, a)
		}
		if err := callWithoutCertificate(ctx, stack.ScalerAddress, stack.CA); err == nil {
			t.Fatal("the scaler answered a client without a certificate")
		} else {
			t.Logf("a client without a certificate is refused: %v", err)
		}
	})

	t.Run("scaler killed: the size holds, a restarted scaler waits a full window", func(t *testing.T) {
		rec := testenv.WatchReplicas(t, stack.Cluster.Client, client.ObjectKey{Namespace: ns, Name: llama.Name})
		loadCtx, stopLoad := context.WithCancel(ctx)
		loadDone := make(chan struct{})
		go func() { defer close(loadDone); _ = burstCtx(loadCtx, door, llama.Spec.Model.ID, 12, 2*time.Minute) }()
		testenv.Eventually(t, 2*time.Minute, "the burst to add replicas", func() error {
			if rec.Last() < 2 {
				return fmt.Errorf("%d replicas", rec.Last())
			}
			return nil
		})
		held := rec.Last()
		testenv.Must(t, stack.KillScaler())
		defer func() { // whatever happens here, the later steps need a scaler
			if !stack.ScalerRunning() {
				testenv.Must(t, stack.StartScaler(context.Background()))
			}
		}()
		stopLoad()
		<-loadDone
		killed := time.Now()
		// Without the scaler KEDA cannot even build the metric spec (KEDA v2.21 logs "no metric specs returned
		// from scalers"), so its fallback counter never starts; the HPA, which gets no metric, holds the size.
		// Either way the property is the same: nothing scales on missing data.
		testenv.Eventually(t, time.Minute, "the HPA to see the metric missing", func() error {
			hpa := &autoscalingv2.HorizontalPodAutoscaler{}
			if err := k.Get(ctx, client.ObjectKey{Namespace: ns, Name: "keda-hpa-" + llama.Name}, hpa); err != nil {
				return err
			}
			for _, c := range hpa.Status.Conditions {
				if c.Type == autoscalingv2.ScalingActive && c.Status == corev1.ConditionFalse {
					return nil
				}
			}
			return fmt.Errorf("HPA conditions %+v", hpa.Status.Conditions)
		})
		// Ten more HPA syncs without the scaler, the load gone: the size must not move.
		waitFor(10 * hpaSync)
		if d := rec.FirstDecreaseAfter(killed); !d.IsZero() {
			t.Fatalf("replicas fell from %d without the scaler: %v", held, rec.History())
		}

		testenv.Must(t, stack.StartScaler(ctx))
		restarted := time.Now()
		testenv.Eventually(t, window+2*time.Minute, "replicas back to minReplicas after the restart", func() error {
			if n := rec.Last(); n != llama.Spec.Autoscaling.MinReplicas {
				return fmt.Errorf("%d replicas", n)
			}
			return nil
		})
		if d := rec.FirstDecreaseAfter(killed); d.Sub(restarted) < window-scrapeEvery {
			t.Errorf("the restarted scaler scaled down after %s, before a full %s window", d.Sub(restarted).Round(time.Millisecond), window)
		}
	})

	t.Run("pool: two services never exceed the GPU budget", func(t *testing.T) {
		phi := deploy(t, ns, "phi-3-mini.yaml")
		pool := &v1alpha1.LLMInferencePool{}
		readSample(t, "production-pool.yaml", pool)
		testenv.Must(t, k.Create(ctx, pool))
		budget := pool.Spec.ResourcePolicy.GPUBudget.Value()
		phiDoor, err := stack.FrontDoor(ns, phi.Name)
		testenv.Must(t, err)
		testenv.Eventually(t, 3*time.Minute, "phi-3-mini's ScaledObject", func() error {
			return k.Get(ctx, client.ObjectKey{Namespace: ns, Name: phi.Name}, &kedav1alpha1.ScaledObject{})
		})

		var mu sync.Mutex
		peakDemand, violations := int64(0), []string{}
		sample := func() {
			var sum, desired, demand int64
			for _, name := range []string{llama.Name, phi.Name} {
				d := &appsv1.Deployment{}
				s := &v1alpha1.LLMInferenceService{}
				if k.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d) != nil || k.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s) != nil {
					return
				}
				sum += int64(*d.Spec.Replicas) // one GPU per replica for both
				if s.Status.Autoscaler != nil {
					desired += int64(s.Status.Autoscaler.DesiredReplicas)
					demand += int64(max(s.Status.Autoscaler.DemandReplicas, s.Status.Autoscaler.DesiredReplicas))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			peakDemand = max(peakDemand, demand)
			if sum > budget || desired > budget {
				violations = append(violations, fmt.Sprintf("%s: %d GPUs in Deployments, %d desired", time.Now().Format(time.TimeOnly), sum, desired))
			}
		}
		stopSampling := testenv.Every(250*time.Millisecond, sample)
		var wg sync.WaitGroup
		for _, d := range []struct{ url, model string }{{door, llama.Spec.Model.ID}, {phiDoor, phi.Spec.Model.ID}} {
			wg.Add(1)
			go func() { defer wg.Done(); _ = burstCtx(ctx, d.url, d.model, 20, 60*time.Second) }()
		}
		wg.Wait()
		stopSampling()
		mu.Lock()
		defer mu.Unlock()
		if len(violations) > 0 {
			t.Errorf("the budget of %d GPUs was exceeded: %v", budget, violations)
		}
		if peakDemand <= budget {
			t.Errorf("the services asked for at most %d GPUs of %d: the budget was never contended, the test proves nothing", peakDemand, budget)
		}
	})
}

// createNamespace creates namespace and the Hugging Face token Secret the samples name.
func createNamespace(t *testing.T, namespace string) {
	t.Helper()
	k := stack.Cluster.Client
	testenv.Must(t, k.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}))
	testenv.Must(t, k.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "hf-token-secret"},
		StringData: map[string]string{"HF_TOKEN": "hf_e2e"}}))
}

// deploy applies a sample service in namespace with the test's short window, and the volume its cache
// claim binds to.
func deploy(t *testing.T, namespace, file string) *v1alpha1.LLMInferenceService {
	t.Helper()
	svc := &v1alpha1.LLMInferenceService{}
	readSample(t, file, svc)
	svc.Namespace = namespace
	svc.Spec.Autoscaling.ScaleDownStabilizationSeconds = ptrInt32(int32(window / time.Second))
	testenv.Must(t, stack.ModelCacheVolume(context.Background(), namespace, svc.Name))
	testenv.Must(t, stack.Cluster.Client.Create(context.Background(), svc))
	testenv.Eventually(t, 3*time.Minute, svc.Name+" Ready", func() error {
		s := &v1alpha1.LLMInferenceService{}
		if err := stack.Cluster.Client.Get(context.Background(), client.ObjectKeyFromObject(svc), s); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready: %+v", c)
		}
		return nil
	})
	return svc
}

func readSample(t *testing.T, file string, into any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo.Root(), "config", "samples", file))
	testenv.Must(t, err)
	testenv.Must(t, yaml.UnmarshalStrict(data, into))
}

func burstCtx(ctx context.Context, url, model string, rps float64, d time.Duration) loadgen.Summary {
	g, err := loadgen.New(loadgen.Config{URL: url, Model: model, RPS: rps, Duration: d, PromptTokens: 2000,
		MaxTokens: 400, Concurrency: 4000, Seed: 1})
	if err != nil {
		return loadgen.Summary{}
	}
	return g.Run(ctx)
}

// waitFor lets time pass on purpose: the property checked is that nothing happens during it.
func waitFor(d time.Duration) { <-time.After(d) }

func ptrInt32(v int32) *int32 { return &v }

// callWithoutCertificate calls the scaler's gRPC health service over TLS, trusting ca but presenting no
// client certificate; the error is the refusal.
func callWithoutCertificate(ctx context.Context, addr string, ca []byte) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}
