// Package sandbox runs llm-d's whole scaling path on one machine: a local cluster of real programs (etcd,
// kube-apiserver, kube-controller-manager with the HPA, kube-scheduler, kwok with fake GPU nodes, KEDA's
// operator and metrics adapter; package localcluster), llm-d's operator and scaler as the binaries they
// ship as, and a fleet of simulated vLLM servers on the pods' loopback IPs (package fleet). The end-to-end
// tests (test/e2e) and `make demo` both run a Stack.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/llm-d/llm-d/fleet"
	"github.com/llm-d/llm-d/images"
	"github.com/llm-d/llm-d/internal/loopback"
	"github.com/llm-d/llm-d/internal/repo"
	"github.com/llm-d/llm-d/localcluster"
	"github.com/llm-d/llm-d/scaler/mtls/mtlstest"
	"github.com/llm-d/llm-d/vllmsim"
)

// Options shape a Stack.
type Options struct {
	// Nodes are the fake GPU nodes. Empty: two nodes of eight A10Gs (24 GiB), the GPU that the samples' models fit.
	Nodes []localcluster.Node
	// HPASyncPeriod is the HPA's sync period (Kubernetes' default 15 s is slow for a demo).
	HPASyncPeriod time.Duration
	// ScrapeInterval is the scaler's --scrape-interval.
	ScrapeInterval time.Duration
	// Speed is how many simulated seconds pass per second in the vLLM servers (1: real time).
	Speed float64
	// StartupDelay is a simulated vLLM's time from start to serving (model load), in simulated time.
	StartupDelay time.Duration
	// MutualTLS has KEDA call the scaler over mutual TLS, as the chart's scaler.tls sets it up: the scaler
	// serves a certificate and requires one signed by the same CA, and the operator points every trigger at
	// the ClusterTriggerAuthentication made from a client Secret in KEDA's namespace.
	MutualTLS bool
	// Routing installs the Gateway API Inference Extension's InferencePool CRD before the operator starts,
	// so that services with spec.router get their InferencePool and endpoint picker (see RunPicker).
	Routing bool
	// KeepDir keeps the cluster's directory (certificates, data, every program's log) after Stop.
	KeepDir bool
	// Logf receives a line per step.
	Logf func(format string, args ...any)
}

// Stack is a running local cluster with llm-d installed and simulated vLLM pods.
type Stack struct {
	Cluster *localcluster.Cluster
	Fleet   *fleet.Fleet
	// ScalerAddress is the scaler's gRPC address, which the operator writes into ScaledObjects.
	ScalerAddress string
	// ScalerMetrics and OperatorMetrics are the URLs of the binaries' Prometheus /metrics.
	ScalerMetrics, OperatorMetrics string
	// CA is the PEM certificate authority of the scaler's certificate and KEDA's client certificate, with
	// Options.MutualTLS.
	CA []byte

	opts    Options
	bin     string
	tlsArgs []string // the scaler's TLS flags
	// scalerMetricsAddr is kept across restarts, as a Service's port would be.
	scalerMetricsAddr string
	scaler            *localcluster.Process
	op                *localcluster.Process
	cancel            context.CancelFunc
	done              chan struct{}

	mu    sync.Mutex
	doors []*http.Server
}

// DefaultNodes are two fake nodes with eight A10Gs each, labelled as NVIDIA's feature discovery labels them.
func DefaultNodes() []localcluster.Node {
	var nodes []localcluster.Node
	for i := range 2 {
		nodes = append(nodes, localcluster.Node{Name: fmt.Sprintf("gpu-a10g-%d", i), GPUs: 8,
			GPUProduct: "NVIDIA-A10G", GPUMemoryMiB: 23028})
	}
	return nodes
}

// Start builds the operator and the scaler, starts the cluster, and runs both binaries and the fleet.
func Start(ctx context.Context, opts Options) (s *Stack, err error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if len(opts.Nodes) == 0 {
		opts.Nodes = DefaultNodes()
	}
	if opts.ScrapeInterval == 0 {
		opts.ScrapeInterval = time.Second
	}
	if opts.Speed == 0 {
		opts.Speed = 10
	}
	s = &Stack{opts: opts}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if s.bin, err = os.MkdirTemp("", "llmd-e2e-bin-"); err != nil {
		return nil, err
	}
	opts.Logf("e2e: building the operator and the scaler")
	// Built as their images build them (images.BuildEnv and BuildFlags), so that make test compiles the
	// programs once for this stack and the real-node installation alike.
	args := append(append([]string{"build"}, images.BuildFlags("dev", images.GitRevision(repo.Root()))...),
		"-o", s.bin+"/", "./cmd/operator", "./cmd/scaler")
	build := exec.CommandContext(ctx, "go", args...)
	build.Dir = repo.Root()
	build.Env = append(os.Environ(), images.BuildEnv...)
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/operator ./cmd/scaler: %w\n%s", err, out)
	}
	s.Cluster, err = localcluster.Start(ctx, localcluster.Options{
		Nodes: opts.Nodes, HPASyncPeriod: opts.HPASyncPeriod, Logf: opts.Logf, KeepDir: opts.KeepDir,
	})
	if err != nil {
		return nil, err
	}
	if opts.Routing {
		if err := s.Cluster.InstallInferencePoolCRD(ctx); err != nil {
			return nil, err
		}
	}
	opArgs := []string{"--kubeconfig=" + s.Cluster.Kubeconfig}
	if opts.MutualTLS {
		if err := s.setUpTLS(ctx); err != nil {
			return nil, fmt.Errorf("mutual TLS: %w", err)
		}
		opArgs = append(opArgs, "--scaler-tls-secret="+kedaClientSecret)
	}
	if err := s.StartScaler(ctx); err != nil {
		return nil, err
	}
	ports, err := loopback.FreePorts(2)
	if err != nil {
		return nil, err
	}
	s.OperatorMetrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0])
	s.op, err = s.Cluster.Run("llm-d-operator", filepath.Join(s.bin, "operator"),
		append(opArgs, "--scaler-address="+s.ScalerAddress, fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", ports[0]),
			fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", ports[1]))...)
	if err != nil {
		return nil, err
	}
	if err := s.op.WaitReady(ctx, httpOK(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]))); err != nil {
		return nil, fmt.Errorf("llm-d operator: %w", err)
	}

	cfg := fleet.DefaultConfig()
	cfg.Server.Speed = opts.Speed
	cfg.Server.Params = vllmsim.A10GLlama8B()
	cfg.Server.Params.StartupDelay = opts.StartupDelay
	cfg.ShutdownTimeout = 2 * time.Second
	if s.Fleet, err = fleet.New(cfg); err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(s.Cluster.Config)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go func() { defer close(s.done); _ = s.Fleet.Run(runCtx, kube) }()
	return s, nil
}

// StartScaler starts the scaler binary (again, after KillScaler) on the same addresses.
func (s *Stack) StartScaler(ctx context.Context) error {
	if s.ScalerAddress == "" {
		ports, err := loopback.FreePorts(2)
		if err != nil {
			return err
		}
		s.ScalerAddress = fmt.Sprintf("127.0.0.1:%d", ports[0])
		s.scalerMetricsAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
		s.ScalerMetrics = "http://" + s.scalerMetricsAddr + "/metrics"
	}
	probe, err := loopback.FreePort()
	if err != nil {
		return err
	}
	s.scaler, err = s.Cluster.Run("llm-d-scaler", filepath.Join(s.bin, "scaler"),
		append([]string{"--kubeconfig=" + s.Cluster.Kubeconfig, "--grpc-address=" + s.ScalerAddress,
			"--scrape-interval=" + s.opts.ScrapeInterval.String(),
			"--metrics-bind-address=" + s.scalerMetricsAddr,
			"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probe)}, s.tlsArgs...)...)
	if err != nil {
		return err
	}
	if err := s.scaler.WaitReady(ctx, httpOK(fmt.Sprintf("http://127.0.0.1:%d/readyz", probe))); err != nil {
		return fmt.Errorf("llm-d scaler: %w", err)
	}
	return nil
}

// kedaClientSecret is the Secret in KEDA's namespace with KEDA's client certificate, as the chart's
// scaler.tls makes it.
const kedaClientSecret = "llm-d-scaler-client-tls"

// setUpTLS makes a CA, the scaler's serving certificate (valid for 127.0.0.1, the address KEDA dials) and
// KEDA's client certificate; writes the scaler's files and the Secret KEDA reads its certificate from.
func (s *Stack) setUpTLS(ctx context.Context) error {
	ca, err := mtlstest.NewCA("llm-d e2e")
	if err != nil {
		return err
	}
	s.CA = ca.PEM
	srvCert, srvKey, err := ca.Issue("llm-d-scaler")
	if err != nil {
		return err
	}
	cliCert, cliKey, err := ca.Issue("keda-operator")
	if err != nil {
		return err
	}
	dir := filepath.Join(s.Cluster.Dir, "llm-d-scaler-tls")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := map[string][]byte{"tls.crt": srvCert, "tls.key": srvKey, "ca.crt": ca.PEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	s.tlsArgs = []string{"--tls-cert-file=" + filepath.Join(dir, "tls.crt"), "--tls-key-file=" + filepath.Join(dir, "tls.key"),
		"--tls-client-ca-file=" + filepath.Join(dir, "ca.crt")}
	return s.Cluster.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: localcluster.KEDANamespace, Name: kedaClientSecret},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": cliCert, "tls.key": cliKey, "ca.crt": ca.PEM},
	})
}

// KillScaler kills the scaler with SIGKILL, as a node failure would: nothing is flushed or said.
func (s *Stack) KillScaler() error {
	if s.scaler == nil {
		return errors.New("the scaler is not running")
	}
	err := s.scaler.Kill()
	s.scaler = nil
	return err
}

// ScalerRunning reports whether the scaler process runs.
func (s *Stack) ScalerRunning() bool { return s.scaler != nil }

// ModelCacheVolume creates a PersistentVolume bound in advance to the model-cache claim the operator makes
// for service name in ns (a local cluster has no storage provisioner).
func (s *Stack) ModelCacheVolume(ctx context.Context, ns, name string) error {
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name + "-model-cache"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Ti")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadWriteMany},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/nonexistent/llm-d-model-cache", Type: ptr.To(corev1.HostPathDirectoryOrCreate)}},
			ClaimRef:               &corev1.ObjectReference{Namespace: ns, Name: name + "-model-cache"},
		},
	}
	if err := s.Cluster.Client.Create(ctx, pv); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// FrontDoor serves the service's simulated pods on a loopback port, as its Kubernetes Service would (a
// random ready pod per request), and returns the base URL for OpenAI clients such as `llmd burst`.
func (s *Stack) FrontDoor(ns, name string) (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	hs := &http.Server{Handler: s.Fleet.Handler(ns, name), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(lis) }()
	s.mu.Lock()
	s.doors = append(s.doors, hs)
	s.mu.Unlock()
	return "http://" + lis.Addr().String(), nil
}

// Stop stops everything Start started.
func (s *Stack) Stop() {
	s.mu.Lock()
	for _, d := range s.doors {
		_ = d.Close()
	}
	s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	if s.Cluster != nil { // kills the operator and the scaler with the cluster's programs
		_ = s.Cluster.Stop()
	}
	if s.bin != "" {
		_ = os.RemoveAll(s.bin)
	}
}

// httpOK is a readiness check: url answers 200.
func httpOK(url string) func() error {
	hc := &http.Client{Timeout: time.Second}
	return func() error {
		resp, err := hc.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}
