//go:build linux

package localcluster

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Abandon kills the cluster's programs without restoring the machine, as a process that dies does:
// containers, mounts, rules and sysctls are left for the next Start to restore. The real-node lock passes to
// the next Start in this process, so that no other cluster runs in between.
func (c *Cluster) Abandon() {
	c.mu.Lock()
	procs := c.procs
	c.mu.Unlock()
	_ = killAll(procs)
	if c.node != nil {
		c.node.stopSignals()
		c.node.registry.close()
		reserved.Lock()
		reserved.lock = c.node.lock
		reserved.Unlock()
	}
}

// HoldMachine takes the real-node lock, waiting up to wait, for the next Start in this process (or until
// release): what the test observes of the machine meanwhile is no other cluster's doing.
func HoldMachine(wait time.Duration) (release func(), err error) {
	l, err := acquireNodeLock(wait, func(string, ...any) {})
	if err != nil {
		return nil, err
	}
	reserved.Lock()
	reserved.lock = l
	reserved.Unlock()
	return func() {
		reserved.Lock()
		defer reserved.Unlock()
		if reserved.lock == l {
			_ = l.Close()
			reserved.lock = nil
		}
	}, nil
}

// PauseImage is the image of the node's pause program: a container that runs and does nothing.
const PauseImage = pauseImage

// SnapshotHost reads what a real node may change on the machine, as text per item, to compare before a
// cluster starts with after it stops: every sysctl under vm, kernel and net except counters and random
// values, iptables and ip6tables rules, the tracked fixed paths, network interfaces and routes, the kubelet's
// cgroup root, and mounts.
func SnapshotHost() (map[string]string, error) {
	snap := map[string]string{}
	volatile := []string{"kernel/random/", "kernel/ns_last_pid", "kernel/pty/nr", "kernel/perf_event_max_sample_rate",
		"net/netfilter/nf_conntrack_count", "kernel/tainted", "vm/stat_refresh", "vm/drop_caches", "vm/compact_memory"}
	for _, top := range []string{"vm", "kernel", "net"} {
		_ = filepath.WalkDir(filepath.Join("/proc/sys", top), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			k := strings.TrimPrefix(p, "/proc/sys/")
			for _, v := range volatile {
				if strings.HasPrefix(k, v) {
					return nil
				}
			}
			if b, err := os.ReadFile(p); err == nil {
				snap["sysctl "+k] = strings.TrimSpace(string(b))
			}
			return nil
		})
	}
	for _, cmd := range iptablesCommands {
		out, err := exec.Command(cmd + "-save").Output()
		if err != nil {
			return nil, err
		}
		var rules []string
		for _, l := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(l, "#") {
				rules = append(rules, l)
			}
		}
		snap[cmd] = strings.Join(rules, "\n")
	}
	for _, p := range trackedPaths {
		entries, err := walkEntries(p)
		if err != nil {
			return nil, err
		}
		snap["path "+p] = fmt.Sprint(entries)
	}
	for _, cmd := range [][]string{{"ip", "-o", "link"}, {"ip", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"}} {
		out, err := exec.Command(cmd[0], cmd[1:]...).Output()
		if err != nil {
			return nil, err
		}
		snap[strings.Join(cmd, " ")] = string(out)
	}
	for _, h := range cgroupHierarchies() {
		_, err := os.Stat(filepath.Join(h, nodeCgroupRoot))
		snap["cgroup "+h] = fmt.Sprint(err == nil)
	}
	// Mounts at the tracked paths or in a cluster's directory: other mounts are other programs' business.
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var ours []string
	for _, line := range strings.Split(string(mounts), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		m := unescapeMount(fields[4])
		if strings.Contains(m, "/llmd-cluster-") || slices.ContainsFunc(trackedPaths, func(p string) bool { return m == p || strings.HasPrefix(m, p+"/") }) {
			ours = append(ours, line)
		}
	}
	snap["mounts"] = strings.Join(ours, "\n")
	return snap, nil
}

// NodeNetns lists the network namespaces of the node's pods (CNI mounts one per pod sandbox under the
// cluster's directory).
func (c *Cluster) NodeNetns() ([]string, error) {
	f, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(f), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 10 {
			continue
		}
		sep := slices.Index(fields, "-")
		if sep < 0 || sep+1 >= len(fields) || fields[sep+1] != "nsfs" {
			continue
		}
		if m := unescapeMount(fields[4]); strings.HasPrefix(m, c.Dir+"/") {
			out = append(out, m)
		}
	}
	return out, nil
}
