package fleet

import (
	"fmt"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/llm-d/llm-d/api/contract"
)

// DefaultSelector is the label selector of the pods the fleet serves: the model server pods the operator
// manages (not its endpoint pickers').
const DefaultSelector = contract.LabelManagedBy + "=" + contract.ManagedByValue + "," + contract.LabelName + "=" + contract.NameVLLM

// target is where and what a pod's simulated server serves. A change of any field means a new server:
// a pod recreated under the same name (new UID) is a new process in Kubernetes too.
type target struct {
	uid   types.UID
	ip    string
	port  int
	model string
}

func (t target) addr() string { return net.JoinHostPort(t.ip, fmt.Sprint(t.port)) }

// podTarget is what pod's server should be, or why it should have none. Only a Running pod with an IP
// that is not being deleted has one: that is when a kubelet would have its container up and a Service
// would consider it. A terminating pod's server stops at once, as vLLM starts draining on SIGTERM.
func podTarget(pod *corev1.Pod, defaultModel string) (target, string) {
	switch {
	case pod == nil:
		return target{}, "the pod is gone"
	case pod.DeletionTimestamp != nil:
		return target{}, "the pod is terminating"
	case pod.Status.Phase != corev1.PodRunning:
		return target{}, fmt.Sprintf("the pod is %s, not Running", phaseName(pod.Status.Phase))
	case pod.Status.PodIP == "":
		return target{}, "the pod has no IP"
	}
	ip := net.ParseIP(pod.Status.PodIP)
	if ip == nil {
		return target{}, fmt.Sprintf("the pod IP %q is not an IP address", pod.Status.PodIP)
	}
	// The fleet stands in for containers of fake (kwok) pods, whose IPs are loopback addresses; binding
	// any other address would mean serving on a real network.
	if !ip.IsLoopback() {
		return target{}, fmt.Sprintf("the pod IP %s is not a loopback address", ip)
	}
	c := vllmContainer(pod)
	model := servedModel(c)
	if model == "" {
		model = defaultModel
	}
	return target{uid: pod.UID, ip: ip.String(), port: httpPort(pod, c), model: model}, ""
}

func phaseName(p corev1.PodPhase) string {
	if p == "" {
		return "without a phase"
	}
	return string(p)
}

// vllmContainer is the container named vllm, else the first; nil if there is none.
func vllmContainer(pod *corev1.Pod) *corev1.Container {
	cs := pod.Spec.Containers
	for i := range cs {
		if cs[i].Name == contract.ContainerName {
			return &cs[i]
		}
	}
	if len(cs) > 0 {
		return &cs[0]
	}
	return nil
}

// httpPort is the port named http of the vLLM container, else of any container, else the port vLLM listens
// on in the operator's pods.
func httpPort(pod *corev1.Pod, preferred *corev1.Container) int {
	find := func(c *corev1.Container) int {
		for _, p := range c.Ports {
			if p.Name == "http" && p.ContainerPort > 0 {
				return int(p.ContainerPort)
			}
		}
		return 0
	}
	if preferred != nil {
		if p := find(preferred); p > 0 {
			return p
		}
	}
	for i := range pod.Spec.Containers {
		if p := find(&pod.Spec.Containers[i]); p > 0 {
			return p
		}
	}
	return contract.HTTPPort
}

// servedModel is the name vLLM would serve, read from its command line: the first
// --served-model-name, else --model; "" if neither is given.
func servedModel(c *corev1.Container) string {
	if c == nil {
		return ""
	}
	args := append(append([]string{}, c.Command...), c.Args...)
	if name := flagValue(args, "--served-model-name"); name != "" {
		return name
	}
	return flagValue(args, "--model")
}

// flagValue is the value of the first occurrence of flag in args, as --flag=value or --flag value;
// vLLM also accepts underscores in flag names.
func flagValue(args []string, flag string) string {
	for i, a := range args {
		name, value, hasValue := strings.Cut(a, "=")
		if strings.ReplaceAll(name, "_", "-") != flag {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			return args[i+1]
		}
	}
	return ""
}

// podReady is the pod's Ready condition: whether a Service would route to it.
func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
