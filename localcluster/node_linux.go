package localcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/images"
	"github.com/llm-d/llm-d/internal/repo"
)

// realNode is the running real node's part of a Cluster.
type realNode struct {
	spec     RealNode
	files    nodeFiles
	state    *hostState
	lock     net.Listener
	registry *localRegistry
	ctr      string // ctr, containerd's client
	// stopSignals ends the handler that stops the cluster on SIGINT, SIGTERM and SIGHUP.
	stopSignals func()
}

// RealNodeSupported says why this machine cannot run a real node, or nil when it can: Linux, root, cgroup
// v1 (what the node's configuration is written for), and Debian's runc, containernetworking-plugins and
// iptables (`make node-packages` installs them).
func RealNodeSupported() error {
	if os.Geteuid() != 0 {
		return errors.New("a real node needs root: containerd, runc and the kubelet create namespaces, cgroups, mounts and a bridge")
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/cgroup.procs"); err != nil {
		return errors.New("a real node here is configured for cgroup v1 (cgroupfs), and this machine does not mount the v1 memory hierarchy")
	}
	var missing []string
	for pkg, file := range map[string]string{
		"runc": runcPath, "containernetworking-plugins": filepath.Join(cniBinDir, "bridge"),
		"iptables": "/usr/sbin/iptables",
	} {
		if _, err := os.Stat(file); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("a real node needs Debian's %s (missing; run `make node-packages` as root)", strings.Join(missing, ", "))
	}
	return nil
}

// prepareNode runs before any program: it takes the machine's real-node lock, restores the machine after a
// run that died, records the machine's state, and lays down the pod network and its guard before anything
// can use it.
func (c *Cluster) prepareNode() (err error) {
	if err := RealNodeSupported(); err != nil {
		return err
	}
	n := &realNode{spec: *c.opts.RealNode, files: c.nodeFiles()}
	if n.lock, err = acquireNodeLock(n.spec.WaitForMachine, c.opts.Logf); err != nil {
		return err
	}
	c.node = n
	if stale, err := readHostState(); err != nil {
		return err
	} else if stale != nil {
		c.opts.Logf("localcluster: restoring the machine after a real node that did not stop (pid %d, %s)", stale.Owner, stale.Dir)
		if err := restoreHost(stale); err != nil {
			return fmt.Errorf("restoring the machine after the real node of pid %d: %w; fix what is named and start again", stale.Owner, err)
		}
	}
	if err := checkNetworkFree(); err != nil {
		return err
	}
	n.state = &hostState{Owner: os.Getpid(), Dir: c.Dir, Bridge: nodeBridge, CgroupRoot: nodeCgroupRoot, ContainerdAddress: n.files.ContainerdSock}
	if err := recordHost(n.state); err != nil {
		return err
	}
	if err := writeHostState(n.state); err != nil {
		return fmt.Errorf("writing %s: %w", stateFile, err)
	}
	n.stopSignals = c.stopOnSignal()
	if err := createBridge(); err != nil {
		return err
	}
	return createCgroupRoot()
}

// checkNetworkFree refuses to start when the machine already has an address in the node's ranges or the
// bridge: those are someone else's, and the node would route their traffic.
func checkNetworkFree() error {
	if _, err := net.InterfaceByName(nodeBridge); err == nil {
		return fmt.Errorf("network interface %s exists already; the real node creates it: remove it (ip link delete %s) if no cluster uses it", nodeBridge, nodeBridge)
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return err
	}
	ranges := []netip.Prefix{netip.MustParsePrefix(NodeSubnet), netip.MustParsePrefix(ServiceCIDR)}
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			for _, r := range ranges {
				if r.Overlaps(p) {
					return fmt.Errorf("interface %s has address %s in %s, which the real node's network uses", ifc.Name, p, r)
				}
			}
		}
	}
	return nil
}

// createBridge creates the pod bridge with the node's address and the route to ClusterIPs, then the two guard rules: a forwarded packet
// that does not both enter and leave through the bridge is dropped, so pods reach nothing but each other and
// the machine (the CNI plugin turns on forwarding). kube-proxy later puts its own jumps above them in
// FORWARD; those accept only replies and packets it marked for its Services, which originate on the machine.
func createBridge() error {
	steps := [][]string{
		{"ip", "link", "add", nodeBridge, "type", "bridge"},
		{"ip", "addr", "add", NodeIP + "/24", "dev", nodeBridge},
		{"ip", "link", "set", nodeBridge, "up"},
		// The machine reaches ClusterIPs through kube-proxy's rules, and any other address in the range on
		// the bridge, where it fails, instead of through the default route off the machine.
		{"ip", "route", "add", ServiceCIDR, "dev", nodeBridge, "src", NodeIP},
	}
	for _, cmd := range iptablesCommands {
		steps = append(steps,
			[]string{cmd, "-I", "FORWARD", "1", "!", "-o", nodeBridge, "-m", "comment", "--comment", guardComment, "-j", "DROP"},
			[]string{cmd, "-I", "FORWARD", "1", "!", "-i", nodeBridge, "-m", "comment", "--comment", guardComment, "-j", "DROP"})
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return fmt.Errorf("pod network: %w", err)
		}
	}
	return nil
}

// createCgroupRoot creates the kubelet's cgroup root in every hierarchy (the kubelet wants it to exist), with
// the machine's CPUs and memory nodes in cpuset (a new cpuset cgroup has none).
func createCgroupRoot() error {
	for _, h := range cgroupHierarchies() {
		d := filepath.Join(h, nodeCgroupRoot)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("creating cgroup %s: %w", d, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if b, err := os.ReadFile(filepath.Join(h, f)); err == nil {
				if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
					return fmt.Errorf("cgroup %s: %s: %w", d, f, err)
				}
			}
		}
	}
	return nil
}

// stopOnSignal stops the cluster on SIGINT, SIGTERM or SIGHUP, so that an interrupted test or demo restores
// the machine, then lets the signal end the process as it would have. It returns a function that ends the
// handler.
func (c *Cluster) stopOnSignal() func() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			fmt.Fprintf(os.Stderr, "localcluster: %v: stopping the cluster and restoring the machine\n", sig)
			if err := c.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "localcluster: %v\n", err)
			}
			signal.Reset(sig)
			_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
		case <-done:
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { signal.Stop(ch); close(done) }) }
}

// startNode starts containerd with the node's images, the kubelet and kube-proxy. waitNode waits for them.
func (c *Cluster) startNode(ctx context.Context, t *tools, pki *pkiFiles) error {
	n := c.node
	f := n.files
	for _, d := range []string{f.CniConfDir, f.CniDataDir, f.RegistryHosts, f.KubeletRoot, f.PodLogs, c.path("node", "images"), c.path("node", "opt")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	var err error
	if n.registry, err = startLocalRegistry(); err != nil {
		return err
	}
	if err := c.startContainerd(ctx, t); err != nil {
		return err
	}
	if err := c.loadNodeImages(ctx, t); err != nil {
		return err
	}
	if err := c.startKubelet(t, pki); err != nil {
		return err
	}
	return c.startKubeProxy(t, pki)
}

// Node images: the pod sandbox and cluster DNS, named under a registry that does not exist so that no name
// of theirs could ever resolve elsewhere.
const (
	pauseImage         = "localcluster.llm-d.invalid/pause:1"
	corednsImagePrefix = "localcluster.llm-d.invalid/coredns:"
)

func (c *Cluster) startContainerd(ctx context.Context, t *tools) error {
	f := c.node.files
	// The shims' sockets go under the cluster's directory when their paths fit a socket address (108 bytes:
	// the directory, then a 64-character hash); else under /run/containerd/s, which the node tracks.
	shimSockets := c.path("s")
	if len(shimSockets)+1+64 >= 108 {
		shimSockets = ""
	}
	cfg, err := render(containerdConfig, map[string]any{"Files": f, "Opt": c.path("node", "opt"), "PauseImage": pauseImage, "ShimSocketDir": shimSockets})
	if err != nil {
		return err
	}
	if err := os.WriteFile(f.ContainerdConfig, cfg, 0o600); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(f.RegistryHosts, "_default"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.RegistryHosts, "_default", "hosts.toml"), []byte(registryHostsTOML(c.node.registry.url)), 0o600); err != nil {
		return err
	}
	cni, err := cniConfig(f.CniDataDir)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.CniConfDir, "10-llm-d.conflist"), cni, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(f.ResolvConf, nil, 0o644); err != nil {
		return err
	}
	c.node.ctr = filepath.Join(t.containerd, "ctr")
	// containerd finds its shim on PATH.
	p, err := c.startProcess("containerd", filepath.Join(t.containerd, "containerd"), []string{"--config=" + f.ContainerdConfig},
		"PATH="+t.containerd+string(os.PathListSeparator)+os.Getenv("PATH"))
	if err != nil {
		return err
	}
	return p.WaitReady(ctx, func() error { _, err := c.ctrRun(ctx, "version"); return err })
}

// ctrRun runs ctr against the node's containerd in the namespace the CRI uses.
func (c *Cluster) ctrRun(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.node.ctr, append([]string{"--address", c.node.files.ContainerdSock, "--namespace", "k8s.io"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// LoadImages imports image archives (OCI layout or docker-format tars, as `ctr images import` takes them)
// into the real node's containerd, where pods find them under their names without pulling.
func (c *Cluster) LoadImages(ctx context.Context, archives ...string) error {
	if c.node == nil {
		return errors.New("LoadImages needs a real node (Options.RealNode)")
	}
	for _, a := range archives {
		if _, err := c.ctrRun(ctx, "images", "import", "--all-platforms", a); err != nil {
			return err
		}
	}
	return nil
}

// loadNodeImages builds the pause program, and the images of it and of CoreDNS, and imports them.
func (c *Cluster) loadNodeImages(ctx context.Context, t *tools) error {
	dir := c.path("node", "images")
	pause := filepath.Join(dir, "pause")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", pause, "./localcluster/internal/pause")
	build.Dir = repo.Root()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the pause program: %w: %s", err, out)
	}
	return c.loadPrebuilt(ctx, filepath.Join(dir, "node-images.tar"), []prebuilt{
		{images.Image{Name: "pause", Command: "pause", Description: "The local cluster's pod sandbox process."}, pauseImage, pause},
		{images.Image{Name: "coredns", Command: "coredns", Description: "CoreDNS for the local cluster, without forward."}, c.corednsImage(t), filepath.Join(t.coredns, "coredns")},
	})
}

// corednsImage is named for the CoreDNS version hack/tools.sh built (its directory is <name>-<version>-...).
func (c *Cluster) corednsImage(t *tools) string {
	parts := strings.SplitN(filepath.Base(t.coredns), "-", 3)
	v := "unknown"
	if len(parts) > 1 {
		v = parts[1]
	}
	return corednsImagePrefix + v
}

func (c *Cluster) startKubelet(t *tools, pki *pkiFiles) error {
	n := c.node
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	dir := c.path("pki")
	servingCert, servingKey, err := c.ca.issueFiles(dir, "kubelet-serving", certSpec{cn: "system:node:" + n.spec.Name, server: true, hosts: []string{NodeIP, n.spec.Name}})
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := c.ca.issue(certSpec{cn: "system:node:" + n.spec.Name, groups: []string{"system:nodes"}, client: true})
	if err != nil {
		return err
	}
	kubeconfig := c.path("node", "kubelet.kubeconfig")
	if err := c.writeKubeconfig(kubeconfig, c.Config.Host, "system:node:"+n.spec.Name, certPEM, keyPEM); err != nil {
		return err
	}
	cfg, err := render(kubeletConfig, map[string]any{
		"Files": n.files, "Port": ports[0], "HealthzPort": ports[1],
		"ServingCert": servingCert, "ServingKey": servingKey, "ClientCA": pki.caFile,
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(n.files.KubeletConfig, cfg, 0o600); err != nil {
		return err
	}
	_, err = c.startProcess("kubelet", filepath.Join(t.kubernetes, "kubelet"), []string{
		"--config=" + n.files.KubeletConfig, "--kubeconfig=" + kubeconfig,
		"--root-dir=" + n.files.KubeletRoot, "--hostname-override=" + n.spec.Name, "--node-ip=" + NodeIP,
		"--node-labels=" + nodeLabels(n.spec),
		"--v=1",
	})
	return err
}

// nodeLabels are the labels the kubelet registers the node with: the caller's and NVIDIA's GPU labels.
func nodeLabels(spec RealNode) string {
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	if spec.GPUs > 0 {
		labels[LabelGPUCount] = strconv.Itoa(spec.GPUs)
	}
	if spec.GPUProduct != "" {
		labels[LabelGPUProduct] = spec.GPUProduct
	}
	if spec.GPUMemoryMiB > 0 {
		labels[LabelGPUMemory] = strconv.Itoa(spec.GPUMemoryMiB)
	}
	var kv []string
	for k, v := range labels {
		kv = append(kv, k+"="+v)
	}
	return strings.Join(kv, ",")
}

func (c *Cluster) startKubeProxy(t *tools, pki *pkiFiles) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	// The user kube-proxy's default ClusterRoleBinding (system:node-proxier) names.
	certPEM, keyPEM, err := c.ca.issue(certSpec{cn: "system:kube-proxy", client: true})
	if err != nil {
		return err
	}
	kubeconfig := c.path("node", "kube-proxy.kubeconfig")
	if err := c.writeKubeconfig(kubeconfig, c.Config.Host, "system:kube-proxy", certPEM, keyPEM); err != nil {
		return err
	}
	cfg, err := render(proxyConfig, map[string]any{"Kubeconfig": kubeconfig, "Node": c.node.spec.Name, "HealthzPort": ports[0], "MetricsPort": ports[1]})
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.node.files.ProxyConfig, cfg, 0o600); err != nil {
		return err
	}
	_, err = c.startProcess("kube-proxy", filepath.Join(t.kubernetes, "kube-proxy"), []string{"--config=" + c.node.files.ProxyConfig, "--v=1"})
	return err
}

// waitNode waits until the kubelet has registered the node and it is Ready, gives it its fake GPUs, and
// runs cluster DNS on it.
func (c *Cluster) waitNode(ctx context.Context, t *tools) error {
	name := c.node.spec.Name
	kubelet := c.process("kubelet")
	if err := kubelet.WaitReady(ctx, func() error { return c.nodeReady(ctx, name) }); err != nil {
		return err
	}
	if gpus := c.node.spec.GPUs; gpus > 0 {
		// Extended resources are the node status's to declare (a device plugin would); the kubelet keeps them.
		q := resource.NewQuantity(int64(gpus), resource.DecimalSI).String()
		patch := fmt.Sprintf(`{"status":{"capacity":{%q:%q},"allocatable":{%q:%q}}}`, ResourceGPU, q, ResourceGPU, q)
		node := &corev1.Node{}
		node.Name = name
		if err := c.Client.Status().Patch(ctx, node, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			return fmt.Errorf("giving node %s its GPUs: %w", name, err)
		}
	}
	objs, err := decodeManifests(strings.NewReader(strings.NewReplacer("{{IMAGE}}", c.corednsImage(t), "{{NODE}}", name).Replace(corednsManifests)))
	if err != nil {
		return err
	}
	if err := c.Apply(ctx, objs...); err != nil {
		return err
	}
	if err := kubelet.WaitReady(ctx, func() error { return c.deploymentAvailable(ctx, "kube-system", "coredns") }); err != nil {
		return err
	}
	// Cluster DNS works once kube-proxy has CoreDNS's endpoint: ask it through its ClusterIP, as pods will.
	proxy := c.process("kube-proxy")
	return proxy.WaitReady(ctx, func() error {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := ClusterResolver().LookupHost(qctx, "kubernetes.default.svc."+ClusterDomain+".")
		return err
	})
}

// stopNode restores the machine once the node's programs are killed, and releases the lock.
func (c *Cluster) stopNode() error {
	n := c.node
	if n.stopSignals != nil {
		n.stopSignals()
	}
	var err error
	if n.state != nil {
		err = restoreHost(n.state)
	}
	if n.registry != nil {
		n.registry.close()
	}
	if err == nil && n.lock != nil {
		_ = n.lock.Close()
	}
	return err
}

// localRegistry is containerd's only registry: every registry name resolves to it (a _default hosts entry),
// and it has no image, so that a pull of an image the node lacks fails here, on the machine, and says so. It
// records what was asked for.
type localRegistry struct {
	url string
	srv *http.Server
	mu  sync.Mutex
	log []string
}

func startLocalRegistry() (*localRegistry, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &localRegistry{url: "http://" + lis.Addr().String()}
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.log = append(r.log, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"errors":[{"code":"NAME_UNKNOWN","message":"the local cluster has only the images loaded into it (Cluster.LoadImages); %s is not one of them"}]}`, req.URL.Path)
	})}
	go func() { _ = r.srv.Serve(lis) }()
	return r, nil
}

func (r *localRegistry) close() { _ = r.srv.Close() }

// RegistryRequests lists the requests containerd made to its registry ("GET /v2/library/nginx/manifests/1.27"):
// each is a pull of an image the node did not have.
func (c *Cluster) RegistryRequests() []string {
	if c.node == nil || c.node.registry == nil {
		return nil
	}
	r := c.node.registry
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}
