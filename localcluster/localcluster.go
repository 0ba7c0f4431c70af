// Package localcluster starts a real Kubernetes cluster with real KEDA on one machine, as plain processes on
// loopback: etcd, kube-apiserver (with the aggregation layer), kube-controller-manager, kube-scheduler, kwok
// (fake GPU nodes whose pods get IPs in 127.0.0.0/8 and go Running without containers), and KEDA's operator
// and metrics adapter registered as the external metrics API. A ScaledObject applied to it makes KEDA create
// an HPA that reads the metric through the aggregated API and scales a Deployment whose pods kwok runs: the
// whole autoscaling path, end to end, with nothing mocked. The end-to-end tests and `make demo` use it.
//
// The programs come from hack/tools.sh (built from the Go module proxy once per version into a per-user
// cache); the first Start after a version change therefore takes minutes, later ones seconds.
package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/llm-d/llm-d/internal/loopback"
	"github.com/llm-d/llm-d/internal/poll"
	"github.com/llm-d/llm-d/internal/repo"
	"github.com/llm-d/llm-d/internal/scheme"
)

const (
	// DefaultPodCIDR is where kwok takes pod IPs from when Options.PodCIDR is empty. It is inside
	// 127.0.0.0/8 so that a simulated server can listen on its pod's IP without leaving the machine.
	DefaultPodCIDR = "127.10.0.0/16"

	// KEDANamespace holds KEDA's cluster objects and the Service that the external metrics APIService names.
	KEDANamespace = "keda"

	// ResourceGPU is the extended resource a fake GPU node offers, as NVIDIA's device plugin names it.
	ResourceGPU corev1.ResourceName = "nvidia.com/gpu"
	// LabelGPUProduct, LabelGPUMemory (MiB) and LabelGPUCount are the node labels NVIDIA's GPU feature
	// discovery sets, which a fake GPU node carries too.
	LabelGPUProduct = "nvidia.com/gpu.product"
	LabelGPUMemory  = "nvidia.com/gpu.memory"
	LabelGPUCount   = "nvidia.com/gpu.count"

	// kedaService is the Service the APIService names; the aggregator checks the adapter's certificate for
	// <kedaService>.<KEDANamespace>.svc.
	kedaService = "keda-metrics-apiserver"
	// kedaOperatorHost is the name the adapter expects on the operator's gRPC certificate.
	kedaOperatorHost = "keda-operator.keda.svc"
	// frontProxyClient is the name kube-apiserver's aggregator presents to the adapter.
	frontProxyClient = "front-proxy-client"
	// kwokNodeAnnotation marks the nodes kwok manages.
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
)

// Options describe the cluster. The zero value is a cluster without nodes, pod IPs from DefaultPodCIDR.
type Options struct {
	// Nodes are created, and made Ready by kwok, before Start returns.
	Nodes []Node
	// PodCIDR is the range kwok assigns pod IPs from; it must lie inside 127.0.0.0/8.
	PodCIDR string
	// HPASyncPeriod is how often the HPA controller re-reads metrics. Zero means 15s, Kubernetes' default;
	// tests want a second or two.
	HPASyncPeriod time.Duration
	// Dir holds the cluster's certificates, kubeconfigs, data and logs. Empty means a new temporary directory.
	Dir string
	// KeepDir leaves Dir in place after Stop, to read the logs.
	KeepDir bool
	// Timeout bounds starting the programs and waiting for them, once they are built (a first build takes as
	// long as it takes; hack/tools.sh serialises it). Zero means 3 minutes, generous for a loaded machine.
	Timeout time.Duration
	// Logf, if set, receives a line per startup step, so a slow first start is not silent.
	Logf func(format string, args ...any)
	// RealNode adds one node that runs pods for real, next to kwok's fake ones. Linux and root only
	// (RealNodeSupported says why not), one per machine.
	RealNode *RealNode
	// KEDA is how KEDA runs: as processes on loopback (the default), or as pods on the real node.
	KEDA KEDAMode
}

// KEDAMode is how the cluster runs KEDA.
type KEDAMode int

const (
	// KEDAProcesses runs KEDA's operator and metrics adapter as processes on loopback, the adapter reached
	// by the aggregator through an ExternalName Service.
	KEDAProcesses KEDAMode = iota
	// KEDAPods installs KEDA from its own manifests as pods on the real node: KEDA then reaches external
	// scalers through cluster DNS and Services, as in any cluster.
	KEDAPods
	// KEDANone runs no KEDA (its CRDs are installed all the same).
	KEDANone
)

// RealNode is a node whose pods run: containerd with Debian's runc, the kubelet and kube-proxy built from the
// control plane's own Kubernetes module, a bridge network whose pods reach only each other and the machine,
// and CoreDNS as cluster DNS (Service kube-system/kube-dns on DNSServiceIP). The API server then listens on
// NodeIP, the bridge's address, where pods can reach it. Images come only from Cluster.LoadImages: every
// registry name resolves to a server on loopback that has none. Everything the node changes on the machine
// (sysctls, iptables rules, fixed paths, mounts, cgroups, the bridge) is recorded before it starts and put
// back by Stop, on SIGINT, SIGTERM and SIGHUP, or by the next Start after a run that died.
type RealNode struct {
	// Name is the node's name (and the kubelet's hostname); "node-0" when empty.
	Name string
	// GPUs is the node's nvidia.com/gpu capacity: declared in its status, no GPU behind it.
	GPUs int
	// GPUProduct and GPUMemoryMiB (per GPU) become NVIDIA's node labels, as on a Node.
	GPUProduct   string
	GPUMemoryMiB int
	// Labels are added to the node's labels.
	Labels map[string]string
	// WaitForMachine is how long Start waits while another cluster's real node runs on this machine (tests
	// of several packages run at once); zero refuses at once with ErrRealNodeInUse.
	WaitForMachine time.Duration
}

// ErrRealNodeInUse is Start's error while another cluster's real node runs on this machine.
var ErrRealNodeInUse = errors.New("a local cluster with a real node is already running on this machine")

// Node is a fake node kwok manages. Zero fields take the defaults noted.
type Node struct {
	Name string
	// GPUs is the node's allocatable nvidia.com/gpu (and its gpu.count label).
	GPUs int
	// GPUProduct is the gpu.product label, e.g. "NVIDIA-A100-SXM4-80GB"; empty omits it.
	GPUProduct string
	// GPUMemoryMiB is the gpu.memory label, per GPU in MiB; zero omits it.
	GPUMemoryMiB int
	// CPU and Memory are allocatable quantities ("64", "512Gi" when empty).
	CPU, Memory string
	// Pods is the node's pod capacity (110 when zero).
	Pods int
	// Labels are added to the node's labels.
	Labels map[string]string
}

// Cluster is a running local cluster. Stop it with Stop.
type Cluster struct {
	// Dir holds everything the cluster wrote; LogDir has one <program>.log per program.
	Dir, LogDir string
	// Kubeconfig is the path of a cluster-admin kubeconfig, for programs the caller starts.
	Kubeconfig string
	// Config is the cluster-admin client configuration.
	Config *rest.Config
	// Client is a cluster-admin client whose Scheme has Kubernetes', llm-d's and KEDA's kinds.
	Client client.Client
	Scheme *k8sruntime.Scheme
	// PodCIDR is where pod IPs come from.
	PodCIDR string

	opts     Options
	ca       *authority
	node     *realNode  // nil without Options.RealNode
	mu       sync.Mutex // guards procs
	procs    []*Process
	stopOnce sync.Once
	stopErr  error
}

// tools are the resolved program directories and module sources Start needs.
type tools struct {
	etcd, kubernetes, keda, kwok string // program directories
	containerd, coredns          string // program directories, with a real node
	kedaModule, kwokModule       string // module sources, for CRDs and kwok's stages
}

// Start starts a cluster and returns once every program is ready, the external metrics API is served by
// KEDA, and every node in opts is Ready. On failure everything started is stopped again, and the error says
// which program failed with the end of its log.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.Timeout == 0 {
		opts.Timeout = 3 * time.Minute
	}
	if opts.HPASyncPeriod == 0 {
		opts.HPASyncPeriod = 15 * time.Second
	}
	if opts.PodCIDR == "" {
		opts.PodCIDR = DefaultPodCIDR
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.KEDA == KEDAPods && opts.RealNode == nil {
		return nil, errors.New("KEDA as pods needs a real node (Options.RealNode) to run them")
	}
	if opts.RealNode != nil && opts.RealNode.Name == "" {
		node := *opts.RealNode
		node.Name = "node-0"
		opts.RealNode = &node
	}
	t, err := resolveTools(opts.Logf, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	c = &Cluster{opts: opts, PodCIDR: opts.PodCIDR, Scheme: scheme.New()}
	if c.Dir = opts.Dir; c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "llmd-cluster-"); err != nil {
			return nil, err
		}
	}
	c.LogDir = filepath.Join(c.Dir, "logs")
	for _, d := range []string{c.LogDir, c.path("pki"), c.path("keda", "certs"), c.path("keda", "custom-ca"), c.path("kwok")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			_ = c.Stop()
			c = nil
		}
	}()
	start := time.Now()
	if opts.RealNode != nil {
		if err := c.prepareNode(); err != nil {
			return c, err
		}
	}
	if err := c.run(ctx, t); err != nil {
		return c, err
	}
	opts.Logf("localcluster: ready in %s (dir %s)", time.Since(start).Round(time.Millisecond), c.Dir)
	return c, nil
}

// runsKwok says whether the cluster runs kwok: with fake nodes, or without a real node (AddNode may add some).
func (o Options) runsKwok() bool { return len(o.Nodes) > 0 || o.RealNode == nil }

func resolveTools(logf func(string, ...any), opts Options) (*tools, error) {
	t := &tools{}
	type set struct {
		name string
		dir  *string
	}
	sets := []set{{"etcd", &t.etcd}, {"kubernetes", &t.kubernetes}}
	if opts.runsKwok() {
		sets = append(sets, set{"kwok", &t.kwok})
	}
	if opts.KEDA != KEDANone {
		sets = append(sets, set{"keda", &t.keda})
	}
	if opts.RealNode != nil {
		sets = append(sets, set{"containerd", &t.containerd}, set{"coredns", &t.coredns})
	}
	for _, s := range sets {
		logf("localcluster: locating %s (hack/tools.sh builds it on first use)", s.name)
		dir, err := repo.Tools(s.name)
		if err != nil {
			return nil, err
		}
		*s.dir = dir
	}
	var err error
	if t.kedaModule, err = repo.ModuleDir("github.com/kedacore/keda/v2"); err != nil {
		return nil, err
	}
	if !opts.runsKwok() {
		return t, nil
	}
	// kwok is not a dependency of the project, only of its tools module, so it is located from there.
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok")
	cmd.Dir = filepath.Join(repo.Root(), "test", "tools", "kwok")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("locating module sigs.k8s.io/kwok from test/tools/kwok: %w", err)
	}
	t.kwokModule = strings.TrimSpace(string(out))
	return t, nil
}

func (c *Cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.Dir}, elem...)...)
}

// ports are the loopback ports of the cluster's programs.
type ports struct {
	etcdClient, etcdPeer, api, kcm, sched, kwok          int
	kedaGRPC, kedaMetrics, kedaProbe, adapter, adapterMx int
}

// run starts the programs in dependency order, starting each as early as it can and waiting for readiness
// only where the next step needs it, then waits for the rest.
func (c *Cluster) run(ctx context.Context, t *tools) error {
	logf := c.opts.Logf
	pki, err := c.writePKI()
	if err != nil {
		return err
	}
	free, err := freePorts(11)
	if err != nil {
		return err
	}
	p := ports{free[0], free[1], free[2], free[3], free[4], free[5], free[6], free[7], free[8], free[9], free[10]}
	if err := c.startControlPlane(ctx, t, pki, p); err != nil {
		return err
	}
	logf("localcluster: starting kube-controller-manager, kube-scheduler and kwok (with fake nodes); installing CRDs")
	if err := c.startControllers(t, pki, p); err != nil {
		return err
	}
	if _, err := envtest.InstallCRDs(c.Config, envtest.CRDInstallOptions{
		Paths:              []string{filepath.Join(repo.Root(), "config", "crd", "bases"), filepath.Join(t.kedaModule, "config", "crd", "bases")},
		ErrorIfPathMissing: true,
		MaxTime:            time.Until(deadlineOf(ctx)),
	}); err != nil {
		return fmt.Errorf("installing CRDs: %w", err)
	}
	if c.node != nil {
		logf("localcluster: starting the real node %s: containerd, kubelet, kube-proxy", c.opts.RealNode.Name)
		if err := c.startNode(ctx, t, pki); err != nil {
			return err
		}
	}
	if c.opts.KEDA == KEDAProcesses {
		logf("localcluster: starting KEDA operator and metrics adapter")
		if err := c.startKEDAProcesses(ctx, t, pki, p); err != nil {
			return err
		}
	}
	for _, n := range c.opts.Nodes {
		if err := c.createNode(ctx, n); err != nil {
			return err
		}
	}
	logf("localcluster: waiting for the controllers, KEDA and %d node(s)", len(c.opts.Nodes)+btoi(c.node != nil))
	if err := c.waitControllers(ctx, pki, p); err != nil {
		return err
	}
	if c.node != nil {
		if err := c.waitNode(ctx, t); err != nil {
			return err
		}
	}
	if c.opts.KEDA == KEDAPods {
		logf("localcluster: installing KEDA as pods from its own manifests")
		if err := c.installKEDAPods(ctx, t); err != nil {
			return err
		}
		return c.waitKEDAPods(ctx)
	}
	if c.opts.KEDA == KEDAProcesses {
		return c.waitKEDAProcesses(ctx, p)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// apiAddress is where the API server listens: loopback, or with a real node the node's address, the one
// address both the machine and pods reach.
func (c *Cluster) apiAddress() string {
	if c.node != nil {
		return NodeIP
	}
	return "127.0.0.1"
}

// startControlPlane starts etcd and kube-apiserver and waits until the API server is ready.
func (c *Cluster) startControlPlane(ctx context.Context, t *tools, pki *pkiFiles, p ports) error {
	c.opts.Logf("localcluster: starting etcd and kube-apiserver")
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", p.etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", p.etcdPeer)
	etcd, err := c.startProcess("etcd", filepath.Join(t.etcd, "etcd"), []string{
		"--name=default",
		"--data-dir=" + c.path("etcd"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL,
		"--unsafe-no-fsync", // the data is thrown away with the cluster; fsync only slows the tests
		"--log-level=warn",
	})
	if err != nil {
		return err
	}
	plain := &http.Client{Timeout: 2 * time.Second}
	if err := etcd.WaitReady(ctx, func() error { return httpOK(plain, etcdURL+"/health") }); err != nil {
		return err
	}

	addr := c.apiAddress()
	apiURL := fmt.Sprintf("https://%s:%d", addr, p.api)
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + addr, "--advertise-address=" + addr, "--secure-port=" + strconv.Itoa(p.api),
		"--cert-dir=" + c.path("pki"),
		"--tls-cert-file=" + pki.apiCert, "--tls-private-key-file=" + pki.apiKey,
		"--client-ca-file=" + pki.caFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki.saPub, "--service-account-signing-key-file=" + pki.saKey,
		"--service-cluster-ip-range=" + ServiceCIDR,
		// The aggregation layer, so that the HPA controller can read external metrics from KEDA's adapter.
		"--requestheader-client-ca-file=" + pki.frontProxyCAFile,
		"--requestheader-allowed-names=" + frontProxyClient,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + pki.proxyCert, "--proxy-client-key-file=" + pki.proxyKey,
		// Nodes are created Ready-to-be by kwok; this plugin would taint them not-ready at creation, and
		// only the node lifecycle controller (with its evictions on missed heartbeats) would lift it.
		"--disable-admission-plugins=TaintNodesByCondition",
		"--allow-privileged=true",
		"--v=1",
	}
	if c.node == nil {
		args = append(args, "--authorization-mode=RBAC",
			// Endpoints reject loopback addresses, so the apiserver cannot publish its own (127.0.0.1) in the
			// kubernetes Service; with kwok's nodes alone, nothing reads it.
			"--endpoint-reconciler-type=none")
	} else {
		args = append(args, "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
			// Pods reach the API server through the kubernetes Service, whose endpoint is this address.
			"--endpoint-reconciler-type=lease",
			// The kubelet is dialled at the node's InternalIP, never by looking its name up in the machine's
			// resolver.
			"--kubelet-preferred-address-types=InternalIP",
			"--kubelet-client-certificate="+pki.kubeletClientCert, "--kubelet-client-key="+pki.kubeletClientKey,
			"--kubelet-certificate-authority="+pki.caFile)
	}
	api, err := c.startProcess("kube-apiserver", filepath.Join(t.kubernetes, "kube-apiserver"), args)
	if err != nil {
		return err
	}
	if err := c.connect(apiURL, pki); err != nil {
		return err
	}
	hc, err := rest.HTTPClientFor(c.Config)
	if err != nil {
		return err
	}
	return api.WaitReady(ctx, func() error { return httpOK(hc, apiURL+"/readyz") })
}

// startControllers starts kube-controller-manager, kube-scheduler and, with fake nodes, kwok.
func (c *Cluster) startControllers(t *tools, pki *pkiFiles, p ports) error {
	kc := c.Kubeconfig
	// nodelifecycle is left out on purpose: kwok's heartbeats are sparse and nothing here needs evictions.
	// persistentvolume-binder binds the model-cache claims to the volumes a test creates (no provisioner).
	controllers := "deployment,replicaset,horizontalpodautoscaling,garbagecollector,serviceaccount,serviceaccount-token,namespace,persistentvolume-binder"
	if c.node != nil {
		// Pods that run need Services' EndpointSlices (kube-proxy, CoreDNS), the kube-root-ca.crt ConfigMap
		// their service account volumes read, and claims and volumes released once unused.
		controllers += ",endpointslice,root-ca-cert-publisher,pvc-protection,pv-protection"
	}
	if _, err := c.startProcess("kube-controller-manager", filepath.Join(t.kubernetes, "kube-controller-manager"), []string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--controllers=" + controllers,
		"--horizontal-pod-autoscaler-sync-period=" + c.opts.HPASyncPeriod.String(),
		"--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(p.kcm),
		"--tls-cert-file=" + pki.loopbackCert, "--tls-private-key-file=" + pki.loopbackKey,
		"--service-account-private-key-file=" + pki.saKey, "--root-ca-file=" + pki.caFile,
		"--use-service-account-credentials=false",
		"--v=1",
	}); err != nil {
		return err
	}
	if _, err := c.startProcess("kube-scheduler", filepath.Join(t.kubernetes, "kube-scheduler"), []string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(p.sched),
		"--tls-cert-file=" + pki.loopbackCert, "--tls-private-key-file=" + pki.loopbackKey,
		"--v=1",
	}); err != nil {
		return err
	}
	if !c.opts.runsKwok() {
		return nil
	}
	stage := filepath.Join(t.kwokModule, "kustomize", "stage")
	kwokArgs := []string{
		"--kubeconfig=" + kc,
		// Only the fake nodes (createNode annotates them), never a real one.
		"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
		"--cidr=" + c.PodCIDR,
		"--node-ip=127.0.0.1",
		// kwok would otherwise listen on all interfaces when a node port is set; this keeps it on loopback
		// and gives Start a health endpoint to poll.
		"--server-address=127.0.0.1:" + strconv.Itoa(p.kwok), "--node-port=" + strconv.Itoa(p.kwok),
	}
	for _, f := range []string{
		"node/fast/node-initialize.yaml", "node/heartbeat/node-heartbeat.yaml",
		"pod/general/pod-create.yaml", "pod/general/pod-init-container-running.yaml",
		"pod/general/pod-init-container-completed.yaml", "pod/general/pod-ready.yaml",
		"pod/general/pod-complete.yaml", "pod/general/pod-delete.yaml",
	} {
		kwokArgs = append(kwokArgs, "--config="+filepath.Join(stage, f))
	}
	// KWOK_WORKDIR keeps kwok from also loading a kwok.yaml from the user's home directory.
	_, err := c.startProcess("kwok", filepath.Join(t.kwok, "kwok"), kwokArgs, "KWOK_WORKDIR="+c.path("kwok"))
	return err
}

// startKEDAProcesses starts KEDA's operator and metrics adapter on loopback and registers the adapter as the
// external metrics API.
func (c *Cluster) startKEDAProcesses(ctx context.Context, t *tools, pki *pkiFiles, p ports) error {
	kc := c.Kubeconfig
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: KEDANamespace}}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", KEDANamespace, err)
	}
	// WATCH_NAMESPACE must be set, and empty means every namespace; KEDA exits when it is missing.
	kedaEnv := []string{"POD_NAMESPACE=" + KEDANamespace, "KEDA_CLUSTER_OBJECT_NAMESPACE=" + KEDANamespace, "WATCH_NAMESPACE="}
	if _, err := c.startProcess("keda-operator", filepath.Join(t.keda, "operator"), []string{
		"--kubeconfig=" + kc,
		"--leader-elect=false",
		"--enable-cert-rotation=false", "--cert-dir=" + pki.kedaDir,
		"--ca-dir=" + c.path("keda", "custom-ca"),
		"--metrics-service-bind-address=127.0.0.1:" + strconv.Itoa(p.kedaGRPC),
		"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(p.kedaMetrics),
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(p.kedaProbe),
		"--zap-encoder=console",
	}, kedaEnv...); err != nil {
		return err
	}
	if _, err := c.startProcess("keda-adapter", filepath.Join(t.keda, "adapter"), []string{
		"--kubeconfig=" + kc, "--lister-kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(p.adapter),
		// The adapter reads its gRPC client certificate (ca.crt, tls.crt, tls.key) from --cert-dir.
		"--cert-dir=" + pki.kedaDir,
		"--tls-cert-file=" + filepath.Join(pki.kedaDir, "tls.crt"), "--tls-private-key-file=" + filepath.Join(pki.kedaDir, "tls.key"),
		"--client-ca-file=" + pki.caFile,
		"--requestheader-client-ca-file=" + pki.frontProxyCAFile,
		"--requestheader-allowed-names=" + frontProxyClient,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--metrics-service-address=127.0.0.1:" + strconv.Itoa(p.kedaGRPC),
		"--metrics-service-grpc-authority=" + kedaOperatorHost,
		"--port=" + strconv.Itoa(p.adapterMx), // its own /metrics; it binds all interfaces, so at least not a fixed port
		"--zap-encoder=console",
	}, kedaEnv...); err != nil {
		return err
	}
	return c.registerExternalMetrics(ctx, p.adapter, pki.kedaCA)
}

// waitControllers waits for the controller manager, the scheduler, kwok and kwok's nodes.
func (c *Cluster) waitControllers(ctx context.Context, pki *pkiFiles, p ports) error {
	plain := &http.Client{Timeout: 2 * time.Second}
	loop := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.caPool}}}
	kcm, sched, kwok := c.process("kube-controller-manager"), c.process("kube-scheduler"), c.process("kwok")
	if err := kcm.WaitReady(ctx, func() error { return httpOK(loop, fmt.Sprintf("https://127.0.0.1:%d/healthz", p.kcm)) }); err != nil {
		return err
	}
	if err := sched.WaitReady(ctx, func() error { return httpOK(loop, fmt.Sprintf("https://127.0.0.1:%d/healthz", p.sched)) }); err != nil {
		return err
	}
	if kwok != nil {
		if err := kwok.WaitReady(ctx, func() error { return httpOK(plain, fmt.Sprintf("http://127.0.0.1:%d/healthz", p.kwok)) }); err != nil {
			return err
		}
	}
	// A namespace is usable for pods once the serviceaccount controller has given it its default account.
	if err := kcm.WaitReady(ctx, func() error {
		return c.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "default"}, &corev1.ServiceAccount{})
	}); err != nil {
		return err
	}
	for _, n := range c.opts.Nodes {
		if err := kwok.WaitReady(ctx, func() error { return c.nodeReady(ctx, n.Name) }); err != nil {
			return err
		}
	}
	return nil
}

// waitKEDAProcesses waits until KEDA's operator is ready and its adapter serves the external metrics API.
func (c *Cluster) waitKEDAProcesses(ctx context.Context, p ports) error {
	plain := &http.Client{Timeout: 2 * time.Second}
	operator, adapter := c.process("keda-operator"), c.process("keda-adapter")
	if err := operator.WaitReady(ctx, func() error { return httpOK(plain, fmt.Sprintf("http://127.0.0.1:%d/readyz", p.kedaProbe)) }); err != nil {
		return err
	}
	hc, err := rest.HTTPClientFor(c.Config)
	if err != nil {
		return err
	}
	// Available means the aggregator reached the adapter through the ExternalName Service and trusted it;
	// listing through it proves the adapter answers, and that it reached the operator over gRPC at startup.
	return adapter.WaitReady(ctx, func() error {
		if err := operator.exited(); err != nil {
			return err
		}
		if err := c.apiServiceAvailable(ctx); err != nil {
			return err
		}
		return httpOK(hc, c.Config.Host+"/apis/external.metrics.k8s.io/v1beta1")
	})
}

// pkiFiles are the paths of the certificates and keys the programs are given.
type pkiFiles struct {
	caFile, frontProxyCAFile      string
	caPool                        *x509.CertPool
	apiCert, apiKey               string
	proxyCert, proxyKey           string
	loopbackCert, loopbackKey     string
	saKey, saPub                  string
	kubeletClientCert             string // the API server's, to call kubelets (with a real node)
	kubeletClientKey              string
	kedaDir                       string
	kedaCA                        []byte
	adminCertPEM, adminKeyPEM     []byte
	frontProxyCA, kedaCAAuthority *authority
}

// writePKI makes three authorities, as a real cluster has: the cluster's (API clients and servers), the
// front proxy's (only the aggregator's client certificate, so that no ordinary client can assert a user in
// request headers to the adapter), and KEDA's (operator and adapter, and the APIService's caBundle).
func (c *Cluster) writePKI() (*pkiFiles, error) {
	dir := c.path("pki")
	var err error
	p := &pkiFiles{caFile: filepath.Join(dir, "ca.crt"), frontProxyCAFile: filepath.Join(dir, "front-proxy-ca.crt")}
	if c.ca, err = newAuthority("llm-d-localcluster-ca"); err != nil {
		return nil, err
	}
	if p.frontProxyCA, err = newAuthority("llm-d-localcluster-front-proxy-ca"); err != nil {
		return nil, err
	}
	if p.kedaCAAuthority, err = newAuthority("llm-d-localcluster-keda-ca"); err != nil {
		return nil, err
	}
	if err := c.ca.writeCert(p.caFile); err != nil {
		return nil, err
	}
	if err := p.frontProxyCA.writeCert(p.frontProxyCAFile); err != nil {
		return nil, err
	}
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(c.ca.cert)
	apiHosts := []string{"127.0.0.1", "localhost", "10.96.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	if c.node != nil {
		apiHosts = append(apiHosts, NodeIP)
		if p.kubeletClientCert, p.kubeletClientKey, err = c.ca.issueFiles(dir, "apiserver-kubelet-client", certSpec{
			cn: "kube-apiserver-kubelet-client", groups: []string{"system:masters"}, client: true,
		}); err != nil {
			return nil, err
		}
	}
	if p.apiCert, p.apiKey, err = c.ca.issueFiles(dir, "apiserver", certSpec{cn: "kube-apiserver", server: true, hosts: apiHosts}); err != nil {
		return nil, err
	}
	if p.loopbackCert, p.loopbackKey, err = c.ca.issueFiles(dir, "loopback-serving", certSpec{
		cn: "localcluster-loopback", server: true, hosts: []string{"127.0.0.1", "localhost"},
	}); err != nil {
		return nil, err
	}
	if p.proxyCert, p.proxyKey, err = p.frontProxyCA.issueFiles(dir, "front-proxy-client", certSpec{cn: frontProxyClient, client: true}); err != nil {
		return nil, err
	}
	if p.adminCertPEM, p.adminKeyPEM, err = c.ca.issue(certSpec{cn: "llm-d-admin", groups: []string{"system:masters"}, client: true}); err != nil {
		return nil, err
	}
	p.saKey, p.saPub = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := writeSigningKey(p.saKey, p.saPub); err != nil {
		return nil, err
	}
	// KEDA's operator and adapter share one certificate, as KEDA's own chart does with its kedaorg-certs
	// Secret: each serves with it and presents it as a client to the other (mutual TLS on the gRPC link).
	p.kedaDir = c.path("keda", "certs")
	p.kedaCA = p.kedaCAAuthority.certPEM
	if err := p.kedaCAAuthority.writeCert(filepath.Join(p.kedaDir, "ca.crt")); err != nil {
		return nil, err
	}
	if _, _, err := p.kedaCAAuthority.issueFiles(p.kedaDir, "tls", certSpec{
		cn: "keda", server: true, client: true,
		hosts: []string{
			kedaOperatorHost, kedaOperatorHost + ".cluster.local",
			kedaService + "." + KEDANamespace + ".svc", kedaService + "." + KEDANamespace + ".svc.cluster.local",
			"localhost", "127.0.0.1",
		},
	}); err != nil {
		return nil, err
	}
	return p, nil
}

// connect writes the admin kubeconfig and builds the clients from it.
func (c *Cluster) connect(apiURL string, p *pkiFiles) error {
	c.Kubeconfig = c.path("kubeconfig")
	if err := c.writeKubeconfig(c.Kubeconfig, apiURL, "llm-d-admin", p.adminCertPEM, p.adminKeyPEM); err != nil {
		return err
	}
	c.Config = &rest.Config{
		Host: apiURL,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: c.ca.certPEM, CertData: p.adminCertPEM, KeyData: p.adminKeyPEM,
		},
		// Tests create objects in bursts; client-side throttling would only add waiting.
		QPS: 200, Burst: 400,
	}
	var err error
	c.Client, err = client.New(c.Config, client.Options{Scheme: c.Scheme})
	return err
}

func (c *Cluster) writeKubeconfig(path, apiURL, user string, certPEM, keyPEM []byte) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["localcluster"] = &clientcmdapi.Cluster{Server: apiURL, CertificateAuthorityData: c.ca.certPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts["localcluster"] = &clientcmdapi.Context{Cluster: "localcluster", AuthInfo: user}
	cfg.CurrentContext = "localcluster"
	return clientcmd.WriteToFile(*cfg, path)
}

// KubeconfigFor writes a kubeconfig that authenticates as user in groups (by a client certificate from the
// cluster's CA) and returns its path. What the user may do is up to the RBAC objects the caller creates.
func (c *Cluster) KubeconfigFor(user string, groups ...string) (string, error) {
	certPEM, keyPEM, err := c.ca.issue(certSpec{cn: user, groups: groups, client: true})
	if err != nil {
		return "", err
	}
	path := c.path("kubeconfig-" + regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(user, "_"))
	return path, c.writeKubeconfig(path, c.Config.Host, user, certPEM, keyPEM)
}

// ServiceAccountKubeconfig writes a kubeconfig that authenticates as the ServiceAccount namespace/name
// (the user name and groups kube-apiserver gives that account's tokens, so RoleBindings naming the account
// apply), for running a component with exactly the permissions its chart grants, and returns its path.
func (c *Cluster) ServiceAccountKubeconfig(namespace, name string) (string, error) {
	return c.KubeconfigFor("system:serviceaccount:"+namespace+":"+name,
		"system:serviceaccounts", "system:serviceaccounts:"+namespace)
}

// registerExternalMetrics makes KEDA's adapter the external metrics API. Endpoints and EndpointSlices reject
// loopback addresses, so the APIService cannot name an ordinary Service; an ExternalName Service pointing at
// localhost can, and the aggregator dials localhost:<port> and checks <service>.<namespace>.svc in the
// adapter's certificate against caBundle.
func (c *Cluster) registerExternalMetrics(ctx context.Context, adapterPort int, caBundle []byte) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: kedaService, Namespace: KEDANamespace},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost"},
	}
	if err := c.Client.Create(ctx, svc); err != nil {
		return fmt.Errorf("creating Service %s/%s: %w", KEDANamespace, kedaService, err)
	}
	as := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": "v1beta1.external.metrics.k8s.io"},
		"spec": map[string]any{
			"group":                "external.metrics.k8s.io",
			"version":              "v1beta1",
			"service":              map[string]any{"name": kedaService, "namespace": KEDANamespace, "port": int64(adapterPort)},
			"caBundle":             caBundle, // []byte marshals to base64, as the field wants
			"groupPriorityMinimum": int64(100),
			"versionPriority":      int64(100),
		},
	}}
	if err := c.Client.Create(ctx, as); err != nil {
		return fmt.Errorf("creating APIService v1beta1.external.metrics.k8s.io: %w", err)
	}
	return nil
}

func (c *Cluster) apiServiceAvailable(ctx context.Context) error {
	as := &unstructured.Unstructured{}
	as.SetAPIVersion("apiregistration.k8s.io/v1")
	as.SetKind("APIService")
	if err := c.Client.Get(ctx, types.NamespacedName{Name: "v1beta1.external.metrics.k8s.io"}, as); err != nil {
		return err
	}
	conds, _, _ := unstructured.NestedSlice(as.Object, "status", "conditions")
	for _, cond := range conds {
		m, _ := cond.(map[string]any)
		if m["type"] == "Available" {
			if m["status"] == "True" {
				return nil
			}
			return fmt.Errorf("APIService v1beta1.external.metrics.k8s.io not available: %v: %v", m["reason"], m["message"])
		}
	}
	return errors.New("APIService v1beta1.external.metrics.k8s.io has no Available condition yet")
}

// AddNode creates a fake node and waits until kwok has made it Ready. A cluster with a real node runs kwok
// only if it started with fake nodes.
func (c *Cluster) AddNode(ctx context.Context, n Node) error {
	if !c.opts.runsKwok() {
		return errors.New("AddNode: this cluster runs no kwok (a real node and no fake nodes at Start)")
	}
	if err := c.createNode(ctx, n); err != nil {
		return err
	}
	return poll.Eventually(ctx, time.Minute, func() error { return c.nodeReady(ctx, n.Name) })
}

func (c *Cluster) createNode(ctx context.Context, n Node) error {
	if n.Name == "" {
		return errors.New("a Node needs a Name")
	}
	cpu, mem, pods := n.CPU, n.Memory, n.Pods
	if cpu == "" {
		cpu = "64"
	}
	if mem == "" {
		mem = "512Gi"
	}
	if pods == 0 {
		pods = 110
	}
	res := corev1.ResourceList{}
	for name, q := range map[corev1.ResourceName]string{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem, corev1.ResourcePods: strconv.Itoa(pods)} {
		v, err := resource.ParseQuantity(q)
		if err != nil {
			return fmt.Errorf("node %s: %s %q: %w", n.Name, name, q, err)
		}
		res[name] = v
	}
	labels := map[string]string{"kubernetes.io/hostname": n.Name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok"}
	if n.GPUs > 0 {
		res[ResourceGPU] = *resource.NewQuantity(int64(n.GPUs), resource.DecimalSI)
		labels[LabelGPUCount] = strconv.Itoa(n.GPUs)
	}
	if n.GPUProduct != "" {
		labels[LabelGPUProduct] = n.GPUProduct
	}
	if n.GPUMemoryMiB > 0 {
		labels[LabelGPUMemory] = strconv.Itoa(n.GPUMemoryMiB)
	}
	for k, v := range n.Labels {
		labels[k] = v
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: labels, Annotations: map[string]string{kwokNodeAnnotation: "fake"}},
		// The status is kept on create, as it is when a kubelet registers; kwok then keeps these quantities.
		Status: corev1.NodeStatus{Allocatable: res, Capacity: res.DeepCopy()},
	}
	if err := c.Client.Create(ctx, node); err != nil {
		return fmt.Errorf("creating node %s: %w", n.Name, err)
	}
	return nil
}

func (c *Cluster) nodeReady(ctx context.Context, name string) error {
	node := &corev1.Node{}
	if err := c.Client.Get(ctx, types.NamespacedName{Name: name}, node); err != nil {
		return err
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("node %s is not Ready yet", name)
}

// Stop stops every program, with a real node restores the machine, and, unless Options.KeepDir, removes the
// cluster's directory. It is safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		procs := c.procs
		c.mu.Unlock()
		c.stopErr = killAll(procs)
		if c.node != nil {
			if err := c.stopNode(); err != nil {
				// Something may still be mounted in the directory: removing it could reach through a mount.
				c.stopErr = errors.Join(c.stopErr, fmt.Errorf("restoring the machine after the real node: %w; "+
					"the next Start with a real node tries again; %s is kept", err, c.Dir))
				return
			}
		}
		if !c.opts.KeepDir {
			if err := os.RemoveAll(c.Dir); err != nil {
				c.stopErr = errors.Join(c.stopErr, err)
			}
		}
	})
	return c.stopErr
}

// process returns the cluster's program of that name, nil if it was not started.
func (c *Cluster) process(name string) *Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

// Failed returns an error naming each program that has exited, with the end of its log; nil while all run.
// Programs do not exit on their own, so a test that sees an odd result can call it to find out why.
func (c *Cluster) Failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, p := range c.procs {
		if err := p.exitErr(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func httpOK(hc *http.Client, url string) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// freePorts returns n distinct free loopback ports. Each is free when chosen, not reserved: another process
// may take one before the program binds it, which shows up as that program failing to start.
func freePorts(n int) ([]int, error) {
	seen := map[int]bool{}
	var ports []int
	for len(ports) < n {
		p, err := loopback.FreePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports, nil
}

func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(time.Minute)
}
