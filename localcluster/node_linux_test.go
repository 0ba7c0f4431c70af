package localcluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/internal/poll"
	"github.com/llm-d/llm-d/localcluster"
	"github.com/llm-d/llm-d/test/testenv"
)

// machineWait is how long a test waits for another package's real node to stop (packages test in parallel).
const machineWait = 20 * time.Minute

// TestRealNode starts a cluster with a real node next to a kwok node and checks the node and its guard
// rails: pods run on it with fake GPUs, cluster DNS answers through a ClusterIP and knows no name outside the
// cluster, pods have no route off the machine, a missing image fails on the machine, a second real node is
// refused, kwok leaves the real node alone. Then it abandons the cluster as a process that dies would, starts
// a second one, which must first restore the machine, stops that, and compares the machine with how it was.
func TestRealNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local cluster with a real node; not in -short")
	}
	testenv.SkipUnless(t, localcluster.RealNodeSupported())
	ctx := context.Background()
	// The machine is this test's from the first snapshot to the last: no other package's real node runs in
	// between.
	release, err := localcluster.HoldMachine(machineWait)
	must(t, err)
	defer release() // if Start never took the machine over
	before, err := localcluster.SnapshotHost()
	must(t, err)
	opts := localcluster.Options{
		RealNode: &localcluster.RealNode{Name: "node-0", GPUs: 8, GPUProduct: "NVIDIA-A10G", GPUMemoryMiB: 23028},
		Nodes:    []localcluster.Node{{Name: "kwok-0", GPUs: 8}},
		KEDA:     localcluster.KEDANone,
		KeepDir:  os.Getenv("LLMD_KEEP_CLUSTER") != "",
		Timeout:  5 * time.Minute,
		Logf:     t.Logf,
	}
	start := time.Now()
	c, err := localcluster.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster with a real node started in %s; logs in %s", time.Since(start).Round(time.Millisecond), c.LogDir)
	abandoned := false
	t.Cleanup(func() {
		if !abandoned {
			if err := c.Stop(); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("a second real node is refused", func(t *testing.T) {
		_, err := localcluster.Start(ctx, localcluster.Options{RealNode: &localcluster.RealNode{}, KEDA: localcluster.KEDANone})
		if !errors.Is(err, localcluster.ErrRealNodeInUse) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
			t.Fatalf("second cluster with a real node: got %v, want a refusal naming the running one", err)
		}
		t.Log(err)
	})

	t.Run("the kubelet runs node-0 and kwok only kwok-0", func(t *testing.T) {
		for name, reason := range map[string]string{"node-0": "KubeletReady", "kwok-0": ""} {
			n := &corev1.Node{}
			must(t, c.Client.Get(ctx, types.NamespacedName{Name: name}, n))
			if gpus := n.Status.Allocatable[localcluster.ResourceGPU]; gpus.Value() != 8 {
				t.Errorf("node %s: allocatable GPUs %s, want 8", name, gpus.String())
			}
			ready := readyCondition(n)
			if ready == nil || ready.Status != corev1.ConditionTrue || (reason != "" && ready.Reason != reason) {
				t.Errorf("node %s: Ready condition %+v, want True (reason %q)", name, ready, reason)
			}
		}
	})

	t.Run("a GPU pod runs on node-0 with an address from its subnet", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "gpu", Namespace: "default"},
			Spec: corev1.PodSpec{
				NodeSelector: map[string]string{"kubernetes.io/hostname": "node-0"},
				Containers: []corev1.Container{{Name: "c", Image: localcluster.PauseImage, ImagePullPolicy: corev1.PullNever,
					Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{localcluster.ResourceGPU: resource.MustParse("1")}}}},
				TerminationGracePeriodSeconds: ptr.To[int64](1),
			},
		}
		must(t, c.Client.Create(ctx, pod))
		err := poll.Eventually(ctx, 2*time.Minute, func() error {
			p := &corev1.Pod{}
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(pod), p); err != nil {
				return err
			}
			if p.Status.Phase != corev1.PodRunning {
				return fmt.Errorf("phase %s: %+v", p.Status.Phase, p.Status.ContainerStatuses)
			}
			if !strings.HasPrefix(p.Status.PodIP, "10.244.0.") {
				return poll.Permanent(fmt.Errorf("pod IP %q is not in %s", p.Status.PodIP, localcluster.NodeSubnet))
			}
			return nil
		})
		must(t, err)
	})

	t.Run("cluster DNS answers through its ClusterIP and knows nothing outside the cluster", func(t *testing.T) {
		// The machine's resolver is never asked: this one sends every query to CoreDNS's ClusterIP.
		r := localcluster.ClusterResolver()
		for name, want := range map[string]string{
			"kubernetes.default.svc.cluster.local.":   "10.96.0.1",
			"kube-dns.kube-system.svc.cluster.local.": localcluster.DNSServiceIP,
		} {
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			addrs, err := r.LookupHost(qctx, name)
			cancel()
			if err != nil || !slices.Contains(addrs, want) {
				t.Errorf("%s: %v %v, want %s", name, addrs, err, want)
			}
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if addrs, err := r.LookupHost(qctx, "example.com."); err == nil {
			t.Errorf("cluster DNS resolved example.com to %v: it must not forward", addrs)
		} else {
			t.Logf("example.com: %v", err)
		}
	})

	t.Run("pods have no route off the machine and forwarding is guarded", func(t *testing.T) {
		netns, err := c.NodeNetns()
		must(t, err)
		if len(netns) < 2 { // CoreDNS's and the GPU pod's
			t.Fatalf("found %d pod network namespaces, want at least 2: %v", len(netns), netns)
		}
		for _, ns := range netns {
			out, err := exec.Command("nsenter", "--net="+ns, "ip", "-4", "route").CombinedOutput()
			must(t, err)
			routes := strings.TrimSpace(string(out))
			if strings.Contains(routes, "default") || !strings.Contains(routes, localcluster.NodeSubnet) ||
				!strings.Contains(routes, localcluster.ServiceCIDR+" via "+localcluster.NodeIP) {
				t.Errorf("pod network %s routes:\n%s\nwant only %s and %s via %s", ns, routes, localcluster.NodeSubnet, localcluster.ServiceCIDR, localcluster.NodeIP)
			}
		}
		out, err := exec.Command("iptables", "-S", "FORWARD").Output()
		must(t, err)
		for _, rule := range []string{"! -i llmd0", "! -o llmd0"} {
			if !strings.Contains(string(out), rule+` -m comment --comment "llm-d localcluster: pod traffic stays on the machine" -j DROP`) {
				t.Errorf("FORWARD has no guard rule %q:\n%s", rule, out)
			}
		}
		if nat, _ := exec.Command("iptables", "-t", "nat", "-S").Output(); strings.Contains(string(nat), "CNI-") {
			t.Errorf("CNI wrote NAT rules (masquerade):\n%s", nat)
		}
	})

	t.Run("a pull of an image the node lacks fails on the machine", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "missing-image", Namespace: "default"},
			Spec: corev1.PodSpec{
				NodeSelector: map[string]string{"kubernetes.io/hostname": "node-0"},
				Containers:   []corev1.Container{{Name: "c", Image: "docker.io/library/nginx:1.27.0", ImagePullPolicy: corev1.PullIfNotPresent}},
			},
		}
		must(t, c.Client.Create(ctx, pod))
		err := poll.Eventually(ctx, time.Minute, func() error {
			p := &corev1.Pod{}
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(pod), p); err != nil {
				return err
			}
			for _, s := range p.Status.ContainerStatuses {
				if w := s.State.Waiting; w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff") {
					t.Logf("%s: %s", w.Reason, w.Message)
					return nil
				}
			}
			return fmt.Errorf("container statuses %+v", p.Status.ContainerStatuses)
		})
		must(t, err)
		if reqs := c.RegistryRequests(); !slices.ContainsFunc(reqs, func(r string) bool { return strings.Contains(r, "/v2/library/nginx/manifests/1.27.0") }) {
			t.Errorf("the local registry saw %v, not the pull of library/nginx:1.27.0", reqs)
		}
	})

	// What the running node changed on the machine: what Stop (here, the next Start) must put back.
	during, err := localcluster.SnapshotHost()
	must(t, err)
	changed := diffHost(before, during)
	t.Logf("the running node changed %d items of machine state:\n%s", len(changed), strings.Join(changed, "\n"))

	// The first cluster dies without restoring anything, its pods still running; the next Start must
	// restore the machine before it builds its own node.
	c.Abandon()
	abandoned = true
	c2, err := localcluster.Start(ctx, localcluster.Options{RealNode: &localcluster.RealNode{}, KEDA: localcluster.KEDANone, Timeout: 5 * time.Minute, Logf: t.Logf})
	if err != nil {
		t.Fatalf("starting after an abandoned real node: %v", err)
	}
	if _, err := os.Stat(c.Dir); err == nil && len(mustNetns(t, c)) > 0 {
		t.Errorf("the abandoned cluster's pod network namespaces are still mounted")
	}
	must(t, c2.Stop())
	_ = os.RemoveAll(c.Dir)

	release, err = localcluster.HoldMachine(machineWait)
	must(t, err)
	defer release()
	after, err := localcluster.SnapshotHost()
	must(t, err)
	if diffs := diffHost(before, after); len(diffs) > 0 {
		t.Errorf("the machine differs after the cluster stopped:\n%s", strings.Join(diffs, "\n"))
	}
	for _, k := range []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops", "net/ipv4/ip_forward"} {
		t.Logf("sysctl %s: before %s, while the node ran %s, after %s", k, before["sysctl "+k], during["sysctl "+k], after["sysctl "+k])
	}
	t.Logf("compared %d items of machine state before and after", len(before))
}

// diffHost lists the items that differ between two snapshots, a line each (long values abridged).
func diffHost(a, b map[string]string) []string {
	short := func(v string) string {
		if len(v) > 300 {
			return v[:300] + "..."
		}
		return v
	}
	var diffs []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: gone (was %q)", k, short(v)))
		} else if w != v {
			diffs = append(diffs, fmt.Sprintf("%s: %q -> %q", k, short(v), short(w)))
		}
	}
	for k, w := range b {
		if _, ok := a[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: new, %q", k, short(w)))
		}
	}
	sort.Strings(diffs)
	return diffs
}

func readyCondition(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func mustNetns(t *testing.T, c *localcluster.Cluster) []string {
	t.Helper()
	ns, err := c.NodeNetns()
	must(t, err)
	return ns
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
