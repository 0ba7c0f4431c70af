package localcluster

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The real node changes the machine: the kubelet sets sysctls, kube-proxy and the node's guard rules write
// iptables, containerd and the kubelet create directories at fixed paths, CNI adds a bridge and network
// namespaces, and containers live in cgroups and mounts. hostState records what the machine had before, in a
// file outside the cluster's directory, so that Stop puts it back, and so that the next Start puts it back
// when a run died before it could (a test binary killed by its timeout, a SIGKILL).
type hostState struct {
	// Owner is the pid of the process that started the node.
	Owner int `json:"owner"`
	// Dir is the cluster's directory, where every mount of the node lives.
	Dir string `json:"dir"`
	// Bridge is the pod network's bridge.
	Bridge string `json:"bridge"`
	// CgroupRoot is the kubelet's cgroup root, a directory in every cgroup v1 hierarchy.
	CgroupRoot string `json:"cgroupRoot"`
	// ContainerdAddress is containerd's socket, which its shims name on their command lines.
	ContainerdAddress string `json:"containerdAddress"`
	// Sysctls are the values before start, by path under /proc/sys; a sysctl the kernel did not have is absent.
	Sysctls map[string]string `json:"sysctls"`
	// IPTables is the output of iptables-save and ip6tables-save before start, by command.
	IPTables map[string]string `json:"iptables"`
	// Paths are the fixed host paths the node's programs write, with the entries each held before start
	// (nil: the path did not exist).
	Paths map[string][]string `json:"paths"`
}

// stateFile is where a running real node's hostState is kept; it outlives the process that wrote it.
const stateFile = "/var/lib/llm-d-localcluster/state.json"

// lockName is an abstract unix socket (Linux): only one process can bind it, and the kernel releases it when
// that process dies, however it dies. Holding it is holding the machine's one real node.
const lockName = "@llm-d-localcluster-real-node"

// trackedSysctls are the sysctls the node's programs set: the kubelet's kernel tunables, the bridge plugin's
// forwarding, and what kube-proxy may set (its conntrack settings are configured off; recorded anyway).
var trackedSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
	"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/ipv6/conf/default/forwarding",
	"net/ipv4/conf/all/route_localnet",
	"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables",
	"net/netfilter/nf_conntrack_max", "net/netfilter/nf_conntrack_tcp_timeout_established",
	"net/netfilter/nf_conntrack_tcp_timeout_close_wait", "net/netfilter/nf_conntrack_tcp_be_liberal",
	"net/netfilter/nf_conntrack_udp_timeout", "net/netfilter/nf_conntrack_udp_timeout_stream",
}

// trackedPaths are the fixed paths the kubelet (device plugins, container log links), containerd (shim
// sockets, its opt and NRI directories, CDI) and CNI (IPAM and result caches, network namespaces) write
// whatever their configuration says.
var trackedPaths = []string{
	"/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/run/netns", "/var/lib/cni", "/etc/cni",
	"/run/containerd", "/var/lib/containerd", "/opt/containerd", "/run/nri", "/etc/nri", "/etc/cdi", "/run/cdi",
	filepath.Dir(stateFile),
}

// iptablesCommands are the families the node's programs write rules in.
var iptablesCommands = []string{"iptables", "ip6tables"}

// reserved is the real-node lock when this process holds it without a node (a test that compares the
// machine before and after, with no other cluster in between); the next node takes it over.
var reserved struct {
	sync.Mutex
	lock net.Listener
}

// acquireNodeLock takes the machine's real-node lock, waiting up to wait for another cluster to release it,
// or says who holds it.
func acquireNodeLock(wait time.Duration, logf func(string, ...any)) (net.Listener, error) {
	reserved.Lock()
	l := reserved.lock
	reserved.lock = nil
	reserved.Unlock()
	if l != nil {
		return l, nil
	}
	deadline := time.Now().Add(wait)
	for logged := false; ; logged = true {
		l, err := net.Listen("unix", lockName)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("taking the real-node lock %s: %w", lockName, err)
		}
		holder := "another process"
		if s, rerr := readHostState(); rerr == nil && s != nil {
			holder = fmt.Sprintf("pid %d (cluster directory %s)", s.Owner, s.Dir)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w, started by %s: one real node per machine (it owns the bridge, iptables "+
				"rules and fixed paths); wait until it stops", ErrRealNodeInUse, holder)
		}
		if !logged {
			logf("localcluster: waiting up to %s for the real node of %s to stop", time.Until(deadline).Round(time.Second), holder)
		}
		time.Sleep(time.Second)
	}
}

// recordHost records what the machine has now, before anything of the node starts.
func recordHost(s *hostState) error {
	s.Sysctls = map[string]string{}
	for _, k := range trackedSysctls {
		b, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("recording sysctl %s: %w", k, err)
		}
		s.Sysctls[k] = strings.TrimSpace(string(b))
	}
	s.IPTables = map[string]string{}
	for _, cmd := range iptablesCommands {
		out, err := exec.Command(cmd + "-save").Output()
		if err != nil {
			return fmt.Errorf("recording %s rules: %s-save: %w", cmd, cmd, err)
		}
		s.IPTables[cmd] = string(out)
	}
	s.Paths = map[string][]string{}
	for _, p := range trackedPaths {
		entries, err := walkEntries(p)
		if err != nil {
			return fmt.Errorf("recording %s: %w", p, err)
		}
		s.Paths[p] = entries
	}
	return nil
}

// walkEntries lists every path under root, relative to it, with "." for root itself; nil if root is absent.
func walkEntries(root string) ([]string, error) {
	if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var entries []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(root, p)
		entries = append(entries, rel)
		if len(entries) > 100000 {
			return fmt.Errorf("more than 100000 entries; not recording a tree that large")
		}
		return nil
	})
	return entries, err
}

func writeHostState(s *hostState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(stateFile), 0o700); err != nil {
		return err
	}
	tmp := stateFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, stateFile)
}

// readHostState reads the state a running (or dead) real node left; nil when there is none.
func readHostState() (*hostState, error) {
	b, err := os.ReadFile(stateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := &hostState{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile, err)
	}
	return s, nil
}

// restoreHost stops what is left of the node's containers and puts the machine back as s recorded it. It
// runs once the node's own programs (kubelet, kube-proxy, containerd) are gone, from Stop or from the next
// Start after a run that died. Every step runs even when one fails; the errors are joined.
func restoreHost(s *hostState) error {
	var errs []error
	errs = append(errs, killContainers(s))
	errs = append(errs, unmountUnder(s.Dir))
	errs = append(errs, removeCgroups(s.CgroupRoot))
	if s.Bridge != "" {
		if _, err := os.Stat(filepath.Join("/sys/class/net", s.Bridge)); err == nil {
			errs = append(errs, run("ip", "link", "delete", s.Bridge))
		}
	}
	errs = append(errs, restoreIPTables(s.IPTables))
	errs = append(errs, restoreSysctls(s.Sysctls))
	for _, p := range trackedPaths {
		if p == filepath.Dir(stateFile) {
			continue // last, with the state file
		}
		errs = append(errs, restorePath(p, s.Paths[p]))
	}
	if err := errors.Join(errs...); err != nil {
		return err // the state file stays, so that the next Start tries again
	}
	return restorePath(filepath.Dir(stateFile), s.Paths[filepath.Dir(stateFile)])
}

// killContainers kills every process in the kubelet's cgroups (the containers and their pause processes),
// then containerd's shims, which live outside them and outlive containerd.
func killContainers(s *hostState) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids := cgroupPids(s.CgroupRoot)
		pids = append(pids, shimPids(s.ContainerdAddress)...)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of the real node still run after SIGKILL: %v", pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cgroupHierarchies are the mounted cgroup v1 hierarchies (the kubelet runs with cgroupfs on v1 here).
func cgroupHierarchies() []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*")
	var out []string
	for _, d := range dirs {
		if st, err := os.Stat(filepath.Join(d, "cgroup.procs")); err == nil && !st.IsDir() {
			out = append(out, d)
		}
	}
	return out
}

func cgroupPids(root string) []int {
	if root == "" {
		return nil
	}
	seen := map[int]bool{}
	for _, h := range cgroupHierarchies() {
		_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	pids := make([]int, 0, len(seen))
	for pid := range seen {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	return pids
}

// shimPids finds containerd-shim processes started by the containerd at address (they name it with -address).
func shimPids(address string) []int {
	if address == "" {
		return nil
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") || !slices.Contains(args, address) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountUnder detaches every mount at or below dir (volumes, container root filesystems, network
// namespaces, shm), deepest first.
func unmountUnder(dir string) error {
	if dir == "" {
		return nil
	}
	var errs []error
	for range 5 { // a mount can hide another at the same point
		points, err := mountPointsUnder(dir)
		if err != nil || len(points) == 0 {
			return err
		}
		errs = errs[:0]
		for _, m := range points {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("unmounting %s: %w", m, err))
			}
		}
	}
	if points, _ := mountPointsUnder(dir); len(points) > 0 {
		errs = append(errs, fmt.Errorf("still mounted under %s: %v", dir, points))
	}
	return errors.Join(errs...)
}

func mountPointsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		m := unescapeMount(fields[4])
		if m == dir || strings.HasPrefix(m, dir+"/") {
			points = append(points, m)
		}
	}
	// Deepest first: longer paths are below shorter ones.
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	return points, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeCgroups removes the kubelet's cgroup root in every hierarchy, children first (a cgroup directory is
// removed with rmdir once it has no processes).
func removeCgroups(root string) error {
	if root == "" {
		return nil
	}
	var errs []error
	for _, h := range cgroupHierarchies() {
		top := filepath.Join(h, root)
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// restoreIPTables puts back each family's rules as saved: tables that were saved are replaced by their saved
// contents, tables created since are emptied and deleted.
func restoreIPTables(saved map[string]string) error {
	var errs []error
	for _, cmd := range iptablesCommands {
		before, ok := saved[cmd]
		if !ok {
			continue
		}
		now, err := exec.Command(cmd + "-save").Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s-save: %w", cmd, err))
			continue
		}
		input := before
		had := iptablesTables(before)
		for _, t := range iptablesTables(string(now)) {
			if !slices.Contains(had, t) {
				input += "*" + t + "\nCOMMIT\n"
			}
		}
		restore := exec.Command(cmd + "-restore")
		restore.Stdin = strings.NewReader(input)
		if out, err := restore.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("%s-restore: %w: %s", cmd, err, bytes.TrimSpace(out)))
		}
	}
	return errors.Join(errs...)
}

// iptablesTables lists the tables (*filter, *nat, ...) in iptables-save output.
func iptablesTables(save string) []string {
	var tables []string
	for _, line := range strings.Split(save, "\n") {
		if strings.HasPrefix(line, "*") {
			tables = append(tables, strings.TrimSpace(line[1:]))
		}
	}
	return tables
}

func restoreSysctls(saved map[string]string) error {
	var errs []error
	for k, v := range saved {
		p := filepath.Join("/proc/sys", k)
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading sysctl %s: %w", k, err))
			continue
		}
		if strings.TrimSpace(string(b)) == v {
			continue
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring sysctl %s to %s: %w", k, v, err))
		}
	}
	return errors.Join(errs...)
}

// restorePath removes what the node added at or under p: everything when p did not exist before, else the
// entries that are not in before, deepest first.
func restorePath(p string, before []string) error {
	if before == nil {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("removing %s, which the host did not have: %w", p, err)
		}
		return nil
	}
	now, err := walkEntries(p)
	if err != nil {
		return err
	}
	had := map[string]bool{}
	for _, e := range before {
		had[e] = true
	}
	var added []string
	for _, e := range now {
		if !had[e] {
			added = append(added, e)
		}
	}
	sort.Slice(added, func(i, j int) bool { return len(added[i]) > len(added[j]) })
	var errs []error
	for _, e := range added {
		if err := os.RemoveAll(filepath.Join(p, e)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// run runs a command and returns an error with its output when it fails.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
