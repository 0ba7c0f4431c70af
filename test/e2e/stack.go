// Package e2e runs llm-d's whole scaling path on one machine: a local cluster of real programs (etcd,
// kube-apiserver, kube-controller-manager with the HPA, kube-scheduler, kwok with fake GPU nodes, KEDA's
// operator and metrics adapter; package localcluster), llm-d's operator and scaler as the binaries they
// ship as, and a fleet of simulated vLLM servers on the pods' loopback IPs (package fleet). The end-to-end
// tests and `make demo` both run a Stack.
package e2e

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
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/llm-d/llm-d/fleet"
	"github.com/llm-d/llm-d/localcluster"
	"github.com/llm-d/llm-d/test/testenv"
	"github.com/llm-d/llm-d/vllmsim"
)

// Options shape a Stack.
type Options struct {
	// Nodes are the fake GPU nodes. Empty: two nodes of eight A10Gs (24 GiB), the article's GPU.
	Nodes []localcluster.Node
	// HPASyncPeriod is the HPA's sync period (Kubernetes' default 15 s is slow for a demo).
	HPASyncPeriod time.Duration
	// ScrapeInterval is the scaler's --scrape-interval.
	ScrapeInterval time.Duration
	// Speed is how many simulated seconds pass per second in the vLLM servers (1: real time).
	Speed float64
	// StartupDelay is a simulated vLLM's time from start to serving (model load), in simulated time.
	StartupDelay time.Duration
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

	opts   Options
	bin    string
	scaler *process
	op     *process
	cancel context.CancelFunc
	done   chan struct{}

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
	build := exec.CommandContext(ctx, "go", "build", "-o", s.bin+"/", "./cmd/operator", "./cmd/scaler")
	build.Dir = testenv.Root()
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/operator ./cmd/scaler: %w\n%s", err, out)
	}
	s.Cluster, err = localcluster.Start(ctx, localcluster.Options{
		Nodes: opts.Nodes, HPASyncPeriod: opts.HPASyncPeriod, Logf: opts.Logf, KeepDir: opts.KeepDir,
	})
	if err != nil {
		return nil, err
	}
	if err := s.StartScaler(ctx); err != nil {
		return nil, err
	}
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	probe, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	s.op, err = startProcess(ctx, filepath.Join(s.Cluster.LogDir, "llm-d-operator.log"), filepath.Join(s.bin, "operator"),
		"--kubeconfig="+s.Cluster.Kubeconfig, "--scaler-address="+s.ScalerAddress,
		"--metrics-bind-address=127.0.0.1:"+strconv.Itoa(port), "--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(probe))
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, s.op, fmt.Sprintf("http://127.0.0.1:%d/readyz", probe)); err != nil {
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

// StartScaler starts the scaler binary (again, after KillScaler) on the same address.
func (s *Stack) StartScaler(ctx context.Context) error {
	if s.ScalerAddress == "" {
		port, err := testenv.FreePort()
		if err != nil {
			return err
		}
		s.ScalerAddress = "127.0.0.1:" + strconv.Itoa(port)
	}
	probe, err := testenv.FreePort()
	if err != nil {
		return err
	}
	s.scaler, err = startProcess(ctx, filepath.Join(s.Cluster.LogDir, "llm-d-scaler.log"), filepath.Join(s.bin, "scaler"),
		"--kubeconfig="+s.Cluster.Kubeconfig, "--grpc-address="+s.ScalerAddress,
		"--scrape-interval="+s.opts.ScrapeInterval.String(), "--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(probe))
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, s.scaler, fmt.Sprintf("http://127.0.0.1:%d/readyz", probe)); err != nil {
		return fmt.Errorf("llm-d scaler: %w", err)
	}
	return nil
}

// KillScaler kills the scaler with SIGKILL, as a node failure would: nothing is flushed or said.
func (s *Stack) KillScaler() error {
	if s.scaler == nil {
		return errors.New("the scaler is not running")
	}
	s.scaler.kill()
	s.scaler = nil
	return nil
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
	for _, p := range []*process{s.op, s.scaler} {
		if p != nil {
			p.kill()
		}
	}
	if s.Cluster != nil {
		_ = s.Cluster.Stop()
	}
	if s.bin != "" {
		_ = os.RemoveAll(s.bin)
	}
}

// process is a program the Stack runs, its output in a log file.
type process struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

func startProcess(ctx context.Context, logPath, bin string, args ...string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &process{cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.exited) }()
	return p, nil
}

func (p *process) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// waitHTTP waits for url to answer 200 while p runs.
func waitHTTP(ctx context.Context, p *process, url string) error {
	hc := &http.Client{Timeout: time.Second}
	return testenv.Eventually(ctx, 2*time.Minute, func() error {
		select {
		case <-p.exited:
			log, _ := os.ReadFile(p.log)
			return testenv.Permanent(fmt.Errorf("exited:\n%s", tail(string(log), 3000)))
		default:
		}
		resp, err := hc.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
