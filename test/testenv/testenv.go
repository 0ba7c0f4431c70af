// Package testenv starts a real control plane for tests: etcd and kube-apiserver through controller-runtime's
// envtest, with llm-d's and KEDA's CRDs installed, and optionally the real kube-controller-manager (garbage
// collection, Deployments, ReplicaSets). The programs come from hack/tools.sh, which builds them from the Go
// module proxy once per version into a per-user cache.
package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/llm-d/llm-d/api/v1alpha1"
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
}

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Tools returns the directory holding the named program set, building it on first use.
// `make test` passes LLMD_<NAME>_DIR so that parallel packages do not each ask.
func Tools(name string) (string, error) {
	if dir := os.Getenv("LLMD_" + strings.ToUpper(name) + "_DIR"); dir != "" {
		return dir, nil
	}
	out, err := exec.Command(filepath.Join(Root(), "hack", "tools.sh"), name).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return "", fmt.Errorf("building %s with hack/tools.sh: %w\n%s", name, err, stderr)
	}
	return strings.TrimSpace(string(out)), nil
}

// ModuleDir is the directory of a module in the module cache, e.g. KEDA's for its CRDs.
func ModuleDir(path string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", path)
	cmd.Dir = Root()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating module %s: %w", path, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// NewScheme registers the kinds the tests use: Kubernetes', llm-d's and KEDA's.
func NewScheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	utilruntime.Must(kedav1alpha1.AddToScheme(s))
	return s
}

// Start starts the control plane. Stop it with Stop.
func Start(opts Options) (*Env, error) {
	etcdDir, err := Tools("etcd")
	if err != nil {
		return nil, err
	}
	kubeDir, err := Tools("kubernetes")
	if err != nil {
		return nil, err
	}
	keda, err := ModuleDir("github.com/kedacore/keda/v2")
	if err != nil {
		return nil, err
	}
	e := &Env{Scheme: NewScheme()}
	e.env = &envtest.Environment{
		Scheme:                e.Scheme,
		CRDDirectoryPaths:     []string{filepath.Join(Root(), "config", "crd", "bases"), filepath.Join(keda, "config", "crd", "bases")},
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
	port, err := FreePort()
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
	err = Eventually(context.Background(), 60*time.Second, func() error {
		select {
		case <-exited:
			return Permanent(fmt.Errorf("%s exited:\n%s", name, log.String()))
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

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreePorts returns n distinct TCP ports on 127.0.0.1 that were free a moment ago: all are held until the
// last is found, so that two calls cannot return the same port.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
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

// Eventually polls f until it returns nil or the timeout passes, and returns f's last error. An error
// wrapped by Permanent stops the polling at once.
func Eventually(ctx context.Context, timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.error
		}
		select {
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
	}
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

type permanent struct{ error }

// Permanent marks an error that Eventually must not retry.
func Permanent(err error) error { return permanent{err} }
