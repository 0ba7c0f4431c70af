package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"text/template"
)

// The real node's network. Pods get addresses from NodeSubnet on a bridge whose gateway address is the node's
// own IP: the API server and the kubelet listen there, since pods cannot reach the machine's 127.0.0.1 and a
// node IP cannot be loopback. Services get ClusterIPs from ServiceCIDR, which kube-proxy makes reachable from
// the machine and from pods. Nothing routes either range off the machine.
const (
	// NodeSubnet is the real node's pod subnet.
	NodeSubnet = "10.244.0.0/24"
	// NodeIP is the real node's address: the pod bridge's gateway address.
	NodeIP = "10.244.0.1"
	// ServiceCIDR is where Services get their ClusterIPs from.
	ServiceCIDR = "10.96.0.0/16"
	// DNSServiceIP is cluster DNS's ClusterIP (CoreDNS, Service kube-system/kube-dns).
	DNSServiceIP = "10.96.0.10"
	// ClusterDomain is the cluster's DNS domain.
	ClusterDomain = "cluster.local"

	// nodeBridge is the pod network's bridge.
	nodeBridge = "llmd0"
	// nodeCgroupRoot is the kubelet's cgroup root: every pod's cgroup is below it, in every hierarchy.
	nodeCgroupRoot = "llm-d-localcluster"
	// cniBinDir is where Debian's containernetworking-plugins installs the plugins.
	cniBinDir = "/usr/lib/cni"
	// runcPath is Debian's runc.
	runcPath = "/usr/sbin/runc"
	// guardComment marks the FORWARD rules that keep pod traffic on the machine.
	guardComment = "llm-d localcluster: pod traffic stays on the machine"
)

// nodeFiles are the paths of the real node's configuration and state, all under the cluster's directory.
type nodeFiles struct {
	ContainerdConfig, ContainerdRoot, ContainerdState, ContainerdSock string
	RegistryHosts                                                     string // containerd's hosts.toml directory
	RuncRoot, CniConfDir, CniDataDir                                  string
	KubeletConfig, KubeletRoot, PodLogs, ResolvConf                   string
	ProxyConfig                                                       string
}

func (c *Cluster) nodeFiles() nodeFiles {
	return nodeFiles{
		ContainerdConfig: c.path("node", "containerd.toml"),
		ContainerdRoot:   c.path("node", "containerd", "root"),
		ContainerdState:  c.path("node", "containerd", "state"),
		ContainerdSock:   c.path("node", "containerd", "containerd.sock"),
		RegistryHosts:    c.path("node", "containerd", "hosts"),
		RuncRoot:         c.path("node", "runc"),
		CniConfDir:       c.path("node", "cni", "net.d"),
		CniDataDir:       c.path("node", "cni", "ipam"),
		KubeletConfig:    c.path("node", "kubelet.yaml"),
		KubeletRoot:      c.path("node", "kubelet"),
		PodLogs:          c.path("node", "pod-logs"),
		ResolvConf:       c.path("node", "resolv.conf"),
		ProxyConfig:      c.path("node", "kube-proxy.yaml"),
	}
}

// containerdConfig is containerd's configuration: its own root, state and socket; the CRI plugin with
// Debian's runc on cgroupfs, the local pause image pinned, CNI from the bridge plugin; every registry name
// sent to registry (a server on 127.0.0.1 that has nothing), so that no pull ever leaves the machine.
var containerdConfig = template.Must(template.New("containerd").Parse(`version = 4
root = "{{.Files.ContainerdRoot}}"
state = "{{.Files.ContainerdState}}"
imports = []

[plugins]
  [plugins."io.containerd.server.v1.grpc"]
    address = "{{.Files.ContainerdSock}}"
  [plugins."io.containerd.server.v1.ttrpc"]
    address = "{{.Files.ContainerdSock}}.ttrpc"
  [plugins."io.containerd.internal.v1.opt"]
    path = "{{.Opt}}"
  [plugins."io.containerd.image-verifier.v1.bindir"]
    bin_dir = "{{.Opt}}/image-verifier/bin"
{{- if .ShimSocketDir}}
  [plugins."io.containerd.shim.v1.manager"]
    socket_dir = "{{.ShimSocketDir}}"
{{- end}}
  [plugins."io.containerd.nri.v1.nri"]
    disable = true
  [plugins."io.containerd.grpc.v1.cri"]
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
  [plugins."io.containerd.cri.v1.runtime"]
    # root here lacks CAP_SYS_RESOURCE: without this runc fails every pod ("can't get final child's PID from pipe").
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    cdi_spec_dirs = []
    [plugins."io.containerd.cri.v1.runtime".cni]
      bin_dirs = ["` + cniBinDir + `"]
      conf_dir = "{{.Files.CniConfDir}}"
    [plugins."io.containerd.cri.v1.runtime".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
          BinaryName = "` + runcPath + `"
          Root = "{{.Files.RuncRoot}}"
          SystemdCgroup = false
  [plugins."io.containerd.cri.v1.images"]
    use_local_image_pull = true
    [plugins."io.containerd.cri.v1.images".pinned_images]
      sandbox = "{{.PauseImage}}"
    [plugins."io.containerd.cri.v1.images".registry]
      config_path = "{{.Files.RegistryHosts}}"
  [plugins."io.containerd.transfer.v1.local"]
    config_path = "{{.Files.RegistryHosts}}"
`))

// registryHostsTOML is the _default hosts.toml: every registry name, docker.io and ghcr.io included, resolves
// to server instead of its own host.
func registryHostsTOML(server string) string {
	return fmt.Sprintf("# Every registry name goes to the local cluster's registry on loopback: no pull leaves the machine.\nserver = %q\n", server)
}

// cniConfig is the pod network: a bridge whose gateway is the node, addresses from NodeSubnet, and routes to
// the subnet and the ClusterIPs only (no default route: pods have no way off the machine), no masquerade.
func cniConfig(dataDir string) ([]byte, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "llm-d-localcluster",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": nodeBridge,
				"isGateway": true, "isDefaultGateway": false, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": dataDir,
					"ranges":  []any{[]any{map[string]any{"subnet": NodeSubnet, "gateway": NodeIP}}},
					"routes":  []any{map[string]any{"dst": ServiceCIDR}},
				},
			},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// kubeletConfig is the kubelet's configuration for this machine: cgroup v1 with cgroupfs, swap allowed, its
// own directories and ports, webhook authentication and authorization, cluster DNS, no iptables chains of its
// own, and no image garbage collection or disk eviction (the images are imported, not pullable again).
var kubeletConfig = template.Must(template.New("kubelet").Parse(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ` + NodeIP + `
port: {{.Port}}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {{.HealthzPort}}
tlsCertFile: {{.ServingCert}}
tlsPrivateKeyFile: {{.ServingKey}}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: {{.ClientCA}}}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://{{.Files.ContainerdSock}}
cgroupDriver: cgroupfs
cgroupRoot: /` + nodeCgroupRoot + `
failCgroupV1: false
failSwapOn: false
podLogsDir: {{.Files.PodLogs}}
resolvConf: {{.Files.ResolvConf}}
clusterDNS: [` + DNSServiceIP + `]
clusterDomain: ` + ClusterDomain + `
makeIPTablesUtilChains: false
enableControllerAttachDetach: false
serializeImagePulls: false
registerNode: true
maxPods: 110
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 50Mi, nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
nodeStatusUpdateFrequency: 4s
syncFrequency: 10s
fileCheckFrequency: 10s
`))

// proxyConfig is kube-proxy's configuration: iptables mode on the node's address, node ports on it only, and
// the machine's conntrack settings left as they are. Traffic to a Service leaves the node's rules with the
// node's address as its source (masqueradeAll), so that a pod's reply to another pod returns through the
// machine's conntrack even where bridged traffic skips iptables (no br_netfilter); nothing leaves the bridge.
var proxyConfig = template.Must(template.New("kube-proxy").Parse(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {{.Kubeconfig}}
hostnameOverride: {{.Node}}
mode: iptables
bindAddress: ` + NodeIP + `
healthzBindAddress: 127.0.0.1:{{.HealthzPort}}
metricsBindAddress: 127.0.0.1:{{.MetricsPort}}
clusterCIDR: ` + NodeSubnet + `
nodePortAddresses: ["` + NodeIP + `/32"]
oomScoreAdj: 0
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
iptables:
  masqueradeAll: true
  localhostNodePorts: false
  syncPeriod: 30s
  minSyncPeriod: 0s
`))

// ClusterResolver resolves names with cluster DNS, through its ClusterIP, never through the machine's
// resolver: what a program on the machine uses to look up a Service by name.
func ClusterResolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(DNSServiceIP, "53"))
	}}
}

func render(t *template.Template, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
