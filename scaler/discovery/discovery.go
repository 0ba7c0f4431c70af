// Package discovery finds what the scaler must scrape: for every LLMInferenceService with autoscaling
// enabled, its policy, its Deployment's replica count, and its pods, ready or starting. A pod counts only if
// it belongs to the service's own Deployment (pod -> ReplicaSet -> Deployment -> service, by controller UID);
// its address is its pod IP from the pod API and the operator's fixed port, so nothing in a request, in
// trigger metadata or in a look-alike pod's labels can point the scraper at another address.
package discovery

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/pool"
	"github.com/llm-d/llm-d/vram"
)

// PodTarget is one ready pod to scrape.
type PodTarget struct {
	UID  types.UID
	Name string
	// Addr is podIP:port of vLLM's /metrics.
	Addr string
}

// Target is one service to decide for.
type Target struct {
	Namespace, Name string
	UID             types.UID
	Policy          decision.Policy
	// Current is the Deployment's spec.replicas: what the HPA last set.
	Current  int32
	Ready    []PodTarget
	Starting int
	// Terminating counts pods on their way out: they still hold their GPUs.
	Terminating int
	// GPUsPerReplica is what one replica requests, for the pool's budget.
	GPUsPerReplica int64
	// StartupDelay is the median, over the ready pods, of the time from a pod's creation to its readiness:
	// what a scale-up takes to add capacity. 0 when no pod is ready.
	StartupDelay time.Duration
}

// Key is namespace/name.
func (t Target) Key() types.NamespacedName {
	return types.NamespacedName{Namespace: t.Namespace, Name: t.Name}
}

// ErrNotFound says the service does not exist or does not have autoscaling enabled.
var ErrNotFound = fmt.Errorf("not found")

// PolicyFor reads the decision policy from a service's autoscaling block.
func PolicyFor(svc *v1alpha1.LLMInferenceService) (decision.Policy, error) {
	a := svc.Spec.Autoscaling
	if a == nil || !a.Enabled {
		return decision.Policy{}, fmt.Errorf("autoscaling is not enabled")
	}
	p := decision.Policy{MinReplicas: max(a.MinReplicas, 1), MaxReplicas: a.MaxReplicas,
		ScaleDownWindow: contract.DefaultScaleDownStabilizationSeconds * time.Second}
	if a.ScaleDownStabilizationSeconds != nil {
		p.ScaleDownWindow = time.Duration(*a.ScaleDownStabilizationSeconds) * time.Second
	}
	for _, m := range a.Metrics {
		switch {
		case m.Type == v1alpha1.MetricRequestQueue && m.RequestQueue != nil:
			p.TargetQueue = float64(m.RequestQueue.TargetAverageQueueDepth)
		case m.Type == v1alpha1.MetricThroughput && m.Throughput != nil:
			p.TargetDecodeTPS = float64(m.Throughput.TargetDecodeTokensPerSecond)
		}
	}
	if o := a.Objective; o != nil {
		p.Objective.TTFT = o.TimeToFirstToken.Duration
		if o.Attainment != "" {
			v, err := strconv.ParseFloat(o.Attainment, 64)
			if err != nil {
				return p, fmt.Errorf("spec.autoscaling.objective.attainment %q: %w", o.Attainment, err)
			}
			p.Objective.Attainment = v
		}
	}
	p.Capacity = Prior(svc)
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("spec.autoscaling: %w", err)
	}
	return p, nil
}

// Prior is the capacity model's prior for a service: its model's size (spec.model, vLLM's flags) on the GPU
// its ready pods run on (status.gpuProduct, which the operator reads from their nodes), or on
// decision.DefaultGPU when the nodes do not say. Zero, and the capacity model off, when the model's
// parameter count is unknown.
func Prior(svc *v1alpha1.LLMInferenceService) decision.Capacity {
	v, ok := vram.Estimate(svc)
	if !ok {
		return decision.Capacity{}
	}
	gpu, known := decision.LookupGPU(svc.Status.GPUProduct)
	if !known {
		gpu = decision.DefaultGPU
	}
	return decision.Prior(gpu, decision.Model{Parameters: v.Parameters, BytesPerParameter: float64(v.WeightsBytes) / v.Parameters,
		KVBytesPerToken: float64(v.KVBytesPerToken), GPUs: int(v.TensorParallel)})
}

// PoolPriority is the allocator's priority of a pool member's spec.services[].priority (unset is normal).
func PoolPriority(p v1alpha1.PoolPriority) pool.Priority {
	switch p {
	case v1alpha1.PriorityHigh:
		return pool.High
	case v1alpha1.PriorityLow:
		return pool.Low
	default:
		return pool.Normal
	}
}

// Get returns the target of one service. It returns ErrNotFound (wrapped) when the service does not exist or
// autoscaling is off, and a policy error when the spec is unusable.
func Get(ctx context.Context, c client.Reader, key types.NamespacedName) (Target, error) {
	svc := &v1alpha1.LLMInferenceService{}
	if err := c.Get(ctx, key, svc); err != nil {
		if apierrors.IsNotFound(err) {
			return Target{}, fmt.Errorf("LLMInferenceService %s: %w", key, ErrNotFound)
		}
		return Target{}, err
	}
	return target(ctx, c, svc)
}

// Autoscaled returns the policy of every service with autoscaling enabled, without looking at its pods
// (each service's own loop does that). A service whose policy is unusable is left out and reported in errs.
func Autoscaled(ctx context.Context, c client.Reader) (policies map[types.NamespacedName]decision.Policy, errs map[types.NamespacedName]error, err error) {
	list := &v1alpha1.LLMInferenceServiceList{}
	if err := c.List(ctx, list); err != nil {
		return nil, nil, err
	}
	policies, errs = map[types.NamespacedName]decision.Policy{}, map[types.NamespacedName]error{}
	for i := range list.Items {
		svc := &list.Items[i]
		if a := svc.Spec.Autoscaling; a == nil || !a.Enabled {
			continue
		}
		key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
		p, err := PolicyFor(svc)
		if err != nil {
			errs[key] = err
			continue
		}
		policies[key] = p
	}
	return policies, errs, nil
}

func target(ctx context.Context, c client.Reader, svc *v1alpha1.LLMInferenceService) (Target, error) {
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	policy, err := PolicyFor(svc)
	if err != nil {
		if a := svc.Spec.Autoscaling; a == nil || !a.Enabled {
			return Target{}, fmt.Errorf("LLMInferenceService %s: autoscaling is not enabled: %w", key, ErrNotFound)
		}
		return Target{}, fmt.Errorf("LLMInferenceService %s: %w", key, err)
	}
	t := Target{Namespace: svc.Namespace, Name: svc.Name, UID: svc.UID, Policy: policy,
		GPUsPerReplica: contract.GPUsPerReplica(svc.Spec.Resources)}

	dep := &appsv1.Deployment{}
	if err := c.Get(ctx, key, dep); err != nil {
		if apierrors.IsNotFound(err) {
			return t, nil // nothing runs yet: no pods, Current 0
		}
		return t, err
	}
	if !metav1.IsControlledBy(dep, svc) {
		return t, nil // not ours: scrape nothing
	}
	if dep.Spec.Replicas != nil {
		t.Current = *dep.Spec.Replicas
	}
	pods := &corev1.PodList{}
	if err := c.List(ctx, pods, client.InNamespace(svc.Namespace), client.MatchingLabels(contract.SelectorLabels(svc.Name))); err != nil {
		return t, err
	}
	rsOwned := map[types.UID]bool{} // ReplicaSet UID -> controlled by dep
	var startups []time.Duration
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || !ownedBy(ctx, c, pod, dep, rsOwned) {
			continue
		}
		if !pod.DeletionTimestamp.IsZero() {
			t.Terminating++
			continue
		}
		ip := net.ParseIP(pod.Status.PodIP)
		if !podReady(pod) || ip == nil {
			t.Starting++
			continue
		}
		t.Ready = append(t.Ready, PodTarget{UID: pod.UID, Name: pod.Name,
			Addr: net.JoinHostPort(ip.String(), strconv.Itoa(contract.HTTPPort))})
		if at := readySince(pod); at.After(pod.CreationTimestamp.Time) {
			startups = append(startups, at.Sub(pod.CreationTimestamp.Time))
		}
	}
	if len(startups) > 0 {
		slices.Sort(startups)
		t.StartupDelay = startups[len(startups)/2]
	}
	return t, nil
}

// readySince is when the pod last became ready.
func readySince(pod *corev1.Pod) time.Time {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// ownedBy follows pod -> ReplicaSet -> Deployment by controller references.
func ownedBy(ctx context.Context, c client.Reader, pod *corev1.Pod, dep *appsv1.Deployment, cache map[types.UID]bool) bool {
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return false
	}
	if owned, seen := cache[ref.UID]; seen {
		return owned
	}
	rs := &appsv1.ReplicaSet{}
	err := c.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: ref.Name}, rs)
	owned := err == nil && rs.UID == ref.UID && metav1.IsControlledBy(rs, dep)
	cache[ref.UID] = owned
	return owned
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// CacheOptions restricts the scaler's informers to the operator's objects: the scaler never needs the rest
// of the cluster's pods, ReplicaSets or Deployments. The informers' list and watch errors go to errs.
func CacheOptions(errs *ReadErrors) cache.Options {
	managed := labels.SelectorFromSet(labels.Set{contract.LabelManagedBy: contract.ManagedByValue})
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:        {Label: managed},
			&appsv1.ReplicaSet{}: {Label: managed},
			&appsv1.Deployment{}: {Label: managed},
		},
		DefaultWatchErrorHandler: errs.Handle,
	}
}
