// Package testenv starts a real control plane for tests: etcd and kube-apiserver through controller-runtime's
// envtest, with llm-d's and KEDA's CRDs installed, and optionally the real kube-controller-manager (garbage
// collection, Deployments, ReplicaSets). The programs come from hack/tools.sh, which builds them from the Go
// module proxy once per version into a per-user cache.
package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/llm-d/llm-d/internal/loopback"
	"github.com/llm-d/llm-d/internal/poll"
	"github.com/llm-d/llm-d/internal/repo"
	"github.com/llm-d/llm-d/internal/scheme"
)

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *k8sruntime.Scheme

	env        *envtest.Environment
	kubeconfig string
	dir        string
	procs      []*exec.Cmd
}

// Options choose what besides etcd and kube-apiserver runs.
type Options struct {
	// Controllers, when not empty, starts kube-controller-manager with these controllers
	// (for example "garbagecollector", "deployment", "replicaset", "serviceaccount").
	Controllers []string
	// Scheduler starts kube-scheduler, which binds pods to the nodes a test creates.
	Scheduler bool
	// Routing installs the CRDs of routed services: the Gateway API Inference Extension's InferencePool and
	// the Gateway API's HTTPRoute (their modules' releases in go.mod).
	Routing bool
}

// Start starts the control plane. Stop it with Stop.
func Start(opts Options) (*Env, error) {
	etcdDir, err := repo.Tools("etcd")
	if err != nil {
		return nil, err
	}
	kubeDir, err := repo.Tools("kubernetes")
	if err != nil {
		return nil, err
	}
	keda, err := repo.ModuleDir("github.com/kedacore/keda/v2")
	if err != nil {
		return nil, err
	}
	crds := []string{filepath.Join(repo.Root(), "config", "crd", "bases"), filepath.Join(keda, "config", "crd", "bases")}
	if opts.Routing {
		routing, err := routingCRDs()
		if err != nil {
			return nil, err
		}
		crds = append(crds, routing...)
	}
	e := &Env{Scheme: scheme.New()}
	e.env = &envtest.Environment{
		Scheme:                e.Scheme,
		CRDDirectoryPaths:     crds,
		ErrorIfCRDPathMissing: true,
		// envtest's 20 s default is too short on 2 busy cores, where the first start of kube-apiserver (its
		// bootstrap of the default namespace and priority classes) takes longer.
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	e.env.ControlPlane.Etcd = &envtest.Etcd{}
	e.env.ControlPlane.Etcd.Path = filepath.Join(etcdDir, "etcd")
	api := e.env.ControlPlane.GetAPIServer()
	api.Path = filepath.Join(kubeDir, "kube-apiserver")
	if e.Config, err = e.env.Start(); err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	if e.Client, err = client.New(e.Config, client.Options{Scheme: e.Scheme}); err != nil {
		_ = e.Stop()
		return nil, err
	}
	if len(opts.Controllers) > 0 {
		if err := e.startControllerManager(kubeDir, opts.Controllers); err != nil {
			_ = e.Stop()
			return nil, err
		}
	}
	if opts.Scheduler {
		if err := e.startComponent("kube-scheduler", filepath.Join(kubeDir, "kube-scheduler"), nil); err != nil {
			_ = e.Stop()
			return nil, err
		}
	}
	return e, nil
}

// Kubeconfig writes (once) a kubeconfig of a cluster admin and returns its path, for programs run by tests.
func (e *Env) Kubeconfig() (string, error) {
	if e.kubeconfig != "" {
		return e.kubeconfig, nil
	}
	user, err := e.env.AddUser(envtest.User{Name: "llm-d-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	if e.dir, err = os.MkdirTemp("", "llmd-testenv-"); err != nil {
		return "", err
	}
	e.kubeconfig = filepath.Join(e.dir, "kubeconfig")
	return e.kubeconfig, os.WriteFile(e.kubeconfig, kc, 0o600)
}

// startControllerManager runs the real kube-controller-manager with only the named controllers.
func (e *Env) startControllerManager(kubeDir string, controllers []string) error {
	return e.startComponent("kube-controller-manager", filepath.Join(kubeDir, "kube-controller-manager"), []string{
		"--controllers=" + strings.Join(controllers, ","),
		"--use-service-account-credentials=false",
	})
}

// startComponent runs a control-plane program (kube-controller-manager, kube-scheduler) as the cluster
// admin, serving its health endpoint on a free loopback port, and returns once that endpoint answers.
func (e *Env) startComponent(name, path string, args []string) error {
	kc, err := e.Kubeconfig()
	if err != nil {
		return err
	}
	port, err := loopback.FreePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(path, append([]string{
		"--kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc,
		"--authorization-kubeconfig=" + kc,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + filepath.Join(e.dir, name),
		"--v=1",
	}, args...)...)
	log := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	e.procs = append(e.procs, cmd)
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	// Its serving certificate is self-signed; only loopback is reached, and only /healthz is read.
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	err = poll.Eventually(context.Background(), 60*time.Second, func() error {
		select {
		case <-exited:
			return poll.Permanent(fmt.Errorf("%s exited:\n%s", name, log.String()))
		default:
		}
		resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", port))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s /healthz: %s", name, resp.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s did not become healthy: %w\n%s", name, err, log.String())
	}
	return nil
}

// routingCRDs are the files of the InferencePool and HTTPRoute CRDs.
func routingCRDs() ([]string, error) {
	inference, err := repo.ModuleDir("sigs.k8s.io/gateway-api-inference-extension")
	if err != nil {
		return nil, err
	}
	gateway, err := repo.ModuleDir("sigs.k8s.io/gateway-api")
	if err != nil {
		return nil, err
	}
	return []string{
		filepath.Join(inference, "config", "crd", "bases", "inference.networking.k8s.io_inferencepools.yaml"),
		filepath.Join(gateway, "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml"),
	}, nil
}

// Stop stops every process the Env started.
func (e *Env) Stop() error {
	for _, p := range e.procs {
		_ = p.Process.Kill()
	}
	var err error
	if e.env != nil {
		err = e.env.Stop()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
	return err
}

// SyncBuffer is a bytes.Buffer that several goroutines may write (a program's output, a logger).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// SkipUnless skips the test when the machine cannot run it (unavailable says why, nil when it can). Under
// CI=true the skip is a failure instead: CI promises the machine these tests need, and a skipped test there
// would hide that it never ran.
func SkipUnless(t testing.TB, unavailable error) {
	t.Helper()
	if unavailable == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true, and this machine cannot run the test: %v", unavailable)
	}
	t.Skipf("skipped: %v", unavailable)
}

// Eventually fails the test unless f returns nil within timeout, polling it; what names the condition.
func Eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	if err := poll.Eventually(context.Background(), timeout, f); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Must fails the test on err.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
