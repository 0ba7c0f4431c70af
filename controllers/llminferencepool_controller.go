package controllers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	scalerpool "github.com/llm-d/llm-d/scaler/pool"
	"github.com/llm-d/llm-d/vram"
)

// Reasons of a pool's Ready condition.
const (
	ReasonMembersFit            = "MembersFit"
	ReasonMemberNotFound        = "MemberNotFound"
	ReasonMemberInMultiplePools = "MemberInMultiplePools"
	ReasonBudgetBelowMinimums   = "BudgetBelowMinimums"
)

// LLMInferencePoolReconciler checks a pool's members (they exist, belong to this pool only, fit the
// budget at their minimums and fit the GPUs they may land on) and reports each member's share.
type LLMInferencePoolReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=inference.llm-d.ai,resources=llminferencepools,verbs=get;list;watch
// +kubebuilder:rbac:groups=inference.llm-d.ai,resources=llminferencepools/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch

// problemOrder is the order in which a pool's problems are listed; the first present is the reason.
var problemOrder = []string{ReasonMemberNotFound, ReasonMemberInMultiplePools, ReasonBudgetBelowMinimums, ReasonVRAMMisfit}

// Reconcile checks one pool and writes its status.
func (r *LLMInferencePoolReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pool := &v1alpha1.LLMInferencePool{}
	if err := r.Client.Get(ctx, req.NamespacedName, pool); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := pool.Status.DeepCopy()
	check, err := r.checkMembers(ctx, pool)
	if err != nil {
		return ctrl.Result{}, err
	}
	pool.Status.ObservedGeneration = pool.Generation
	pool.Status.Members = check.members
	pool.Status.GPUsInUse = check.inUse
	cond := check.readyCondition(pool)
	old := meta.FindStatusCondition(pool.Status.Conditions, v1alpha1.PoolConditionReady)
	if cond.Status == metav1.ConditionFalse && (old == nil || old.Message != cond.Message) && r.Recorder != nil {
		r.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, cond.Reason, "Validate", "%s", cond.Message)
	}
	meta.SetStatusCondition(&pool.Status.Conditions, cond)
	if equality.Semantic.DeepEqual(before, &pool.Status) {
		return ctrl.Result{}, nil
	}
	if err := r.Client.Status().Update(ctx, pool); err != nil && !apierrors.IsConflict(err) {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// poolCheck is what checking a pool's members found: each member's status, the problems by reason, and
// the GPUs the members hold at their minimums and now.
type poolCheck struct {
	members        []v1alpha1.PoolMemberStatus
	problems       map[string][]string
	minGPUs, inUse int64
}

// checkMembers checks that each member exists, belongs to this pool only and fits the GPUs it may land on
// (alone, and with the others on a time-sliced GPU), and that the members' minimums fit the budget.
func (r *LLMInferencePoolReconciler) checkMembers(ctx context.Context, pool *v1alpha1.LLMInferencePool) (*poolCheck, error) {
	others := &v1alpha1.LLMInferencePoolList{}
	if err := r.Client.List(ctx, others, client.InNamespace(pool.Namespace)); err != nil {
		return nil, err
	}
	gpus, err := gpuNodes(ctx, r.Client)
	if err != nil {
		return nil, err
	}
	budget := pool.Spec.ResourcePolicy.GPUBudget.Value()
	c := &poolCheck{problems: map[string][]string{}}
	var needs []memberNeed
	for _, m := range pool.Spec.Services {
		st := v1alpha1.PoolMemberStatus{Name: m.Name}
		for _, o := range others.Items {
			if o.Name != pool.Name && slices.ContainsFunc(o.Spec.Services, func(x v1alpha1.PoolMember) bool { return x.Name == m.Name }) {
				c.problems[ReasonMemberInMultiplePools] = append(c.problems[ReasonMemberInMultiplePools],
					fmt.Sprintf("%s is also a member of pool %s: a service belongs to one pool; remove it from one of them", m.Name, o.Name))
			}
		}
		svc := &v1alpha1.LLMInferenceService{}
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: pool.Namespace, Name: m.Name}, svc); err != nil {
			if !apierrors.IsNotFound(err) {
				return nil, err
			}
			c.problems[ReasonMemberNotFound] = append(c.problems[ReasonMemberNotFound],
				fmt.Sprintf("LLMInferenceService %s/%s not found: create it or remove it from spec.services", pool.Namespace, m.Name))
			c.members = append(c.members, st)
			continue
		}
		if need, ok := c.addMember(pool, svc, &st, gpus); ok {
			needs = append(needs, need)
		}
		c.members = append(c.members, st)
	}
	if c.minGPUs > budget {
		c.problems[ReasonBudgetBelowMinimums] = append(c.problems[ReasonBudgetBelowMinimums],
			fmt.Sprintf("the members' minimum replicas need %d GPUs and gpuBudget is %d: raise gpuBudget by %d or lower their minReplicas",
				c.minGPUs, budget, c.minGPUs-budget))
	}
	if msg := sharedGPUMisfit(needs, gpus); msg != "" {
		c.problems[ReasonVRAMMisfit] = append(c.problems[ReasonVRAMMisfit], msg)
	}
	setShares(c.members, budget, pool.Spec.Services)
	return c, nil
}

// addMember fills an existing member's status (GPUs per replica, the scaler's allocation, its GPU memory
// need), counts its GPUs and checks that it fits some GPU; it returns its need when known.
func (c *poolCheck) addMember(pool *v1alpha1.LLMInferencePool, svc *v1alpha1.LLMInferenceService, st *v1alpha1.PoolMemberStatus,
	gpus []gpuNode) (memberNeed, bool) {
	g := contract.GPUsPerReplica(svc.Spec.Resources)
	st.GPUsPerReplica = g
	if a := svc.Status.Autoscaler; a != nil && a.Pool == pool.Name {
		// The scaler's allocation, as it wrote it on the member.
		st.DemandReplicas, st.AllocatedReplicas = a.DemandReplicas, a.DesiredReplicas
		if a.DesiredReplicas != a.DemandReplicas {
			st.Reason = a.Reason
		}
	}
	c.minGPUs += int64(minReplicas(svc)) * g
	c.inUse += int64(svc.Status.Replicas) * g
	v, ok := vram.Estimate(svc)
	if !ok || g == 0 {
		return memberNeed{}, false
	}
	st.VRAMPerGPU = vram.GiB(v.PerGPUBytes)
	if fits, msg := fitsSomeGPU(v, gpus); !fits {
		c.problems[ReasonVRAMMisfit] = append(c.problems[ReasonVRAMMisfit], svc.Name+" "+msg)
	}
	return memberNeed{svc.Name, v}, true
}

// readyCondition is the pool's Ready condition: True when nothing is wrong, else False with the first
// problem's reason and every problem in the message.
func (c *poolCheck) readyCondition(pool *v1alpha1.LLMInferencePool) metav1.Condition {
	cond := metav1.Condition{Type: v1alpha1.PoolConditionReady, Status: metav1.ConditionTrue, Reason: ReasonMembersFit,
		Message: fmt.Sprintf("%d members fit the budget of %d GPUs at their minimums (%d GPUs)",
			len(pool.Spec.Services), pool.Spec.ResourcePolicy.GPUBudget.Value(), c.minGPUs),
		ObservedGeneration: pool.Generation}
	var all []string
	for _, reason := range problemOrder {
		if len(c.problems[reason]) > 0 && cond.Status == metav1.ConditionTrue {
			cond.Status, cond.Reason = metav1.ConditionFalse, reason
		}
		all = append(all, c.problems[reason]...)
	}
	if len(all) > 0 {
		cond.Message = strings.Join(all, "; ")
	}
	return cond
}

// minReplicas is the fewest replicas a service runs: its autoscaling minimum, or spec.replicas.
func minReplicas(svc *v1alpha1.LLMInferenceService) int32 {
	if a := svc.Spec.Autoscaling; a != nil && a.Enabled {
		return max(a.MinReplicas, 1)
	}
	return replicas(svc)
}

type memberNeed struct {
	name string
	v    vram.VRAM
}

// gpuNode is a node's GPU memory as GPU feature discovery labels it.
type gpuNode struct {
	name     string
	memMiB   int64
	replicas int64 // pods per GPU when time-sliced, else 1
}

// gpuNodes lists the nodes that carry nvidia.com/gpu.memory; none means GPU memory is unknown and
// nothing is refused for it.
func gpuNodes(ctx context.Context, c client.Reader) ([]gpuNode, error) {
	nodes := &metav1.PartialObjectMetadataList{}
	nodes.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NodeList"))
	if err := c.List(ctx, nodes, client.HasLabels{contract.LabelGPUMemory}); err != nil {
		return nil, err
	}
	var out []gpuNode
	for _, n := range nodes.Items {
		mem, err := strconv.ParseInt(n.Labels[contract.LabelGPUMemory], 10, 64)
		if err != nil || mem <= 0 {
			continue
		}
		rep, _ := strconv.ParseInt(n.Labels[contract.LabelGPUReplicas], 10, 64)
		out = append(out, gpuNode{n.Name, mem, max(rep, 1)})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].memMiB > out[j].memMiB || (out[i].memMiB == out[j].memMiB && out[i].name < out[j].name)
	})
	return out, nil
}

// largestGPUMiB is the memory of the largest GPU made (NVIDIA's B300 and Rubin hold 288 GB, below
// 288 GiB): what a replica needs per GPU beyond it fits no GPU at all, whatever the nodes are.
const largestGPUMiB = 288 << 10

// fitsSomeGPU checks a need against the largest GPU of the cluster, as GPU feature discovery labels the
// nodes, or against the largest GPU made when no node carries the label.
func fitsSomeGPU(v vram.VRAM, nodes []gpuNode) (bool, string) {
	if len(nodes) == 0 {
		return v.Fits(largestGPUMiB, fmt.Sprintf("the largest GPU made (no node carries %s)", contract.LabelGPUMemory))
	}
	return v.Fits(nodes[0].memMiB, fmt.Sprintf("the largest GPU (node %s, %s=%d)", nodes[0].name, contract.LabelGPUMemory, nodes[0].memMiB))
}

// sharedGPUMisfit checks members that may share one time-sliced GPU: on a node whose GPUs carry
// nvidia.com/gpu.replicas = k > 1, the k largest members may land on one GPU and must fit it together.
func sharedGPUMisfit(needs []memberNeed, nodes []gpuNode) string {
	for _, n := range nodes {
		if n.replicas < 2 || len(needs) < 2 {
			continue
		}
		sorted := slices.Clone(needs)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].v.PerGPUBytes > sorted[j].v.PerGPUBytes })
		k := min(int(n.replicas), len(sorted))
		var sum int64
		var names []string
		for _, m := range sorted[:k] {
			sum += m.v.PerGPUBytes
			names = append(names, fmt.Sprintf("%s (%s)", m.name, vram.GiB(m.v.PerGPUBytes)))
		}
		if have := n.memMiB << 20; sum > have {
			return fmt.Sprintf("node %s shares each GPU among %d pods (%s=%d) and %s would need %s together on one GPU of %s: "+
				"keep these models off shared GPUs or lower their --max-model-len", n.name, n.replicas, contract.LabelGPUReplicas, n.replicas,
				strings.Join(names, " and "), vram.GiB(sum), vram.GiB(have))
		}
	}
	return ""
}

// SetupWithManager registers the pool controller: it watches pools, the services they name, and node labels.
func (r *LLMInferencePoolReconciler) SetupWithManager(mgr ctrl.Manager) error {
	allPools := func(ctx context.Context, o client.Object) []reconcile.Request {
		list := &v1alpha1.LLMInferencePoolList{}
		opts := []client.ListOption{}
		if o.GetNamespace() != "" {
			opts = append(opts, client.InNamespace(o.GetNamespace()))
		}
		if err := r.Client.List(ctx, list, opts...); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		for _, p := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}})
		}
		return reqs
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.LLMInferencePool{}).
		Watches(&v1alpha1.LLMInferenceService{}, handler.EnqueueRequestsFromMapFunc(allPools)).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(allPools), builder.OnlyMetadata,
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Complete(r)
}

// setShares sets each member's weighted share of the budget as the scaler's allocator computes it: members
// that need no GPUs (or are missing) take no share and leave the budget to the others.
func setShares(members []v1alpha1.PoolMemberStatus, budget int64, spec []v1alpha1.PoolMember) {
	in := make([]scalerpool.Member, len(members))
	for i, m := range members {
		in[i] = scalerpool.Member{Name: m.Name, Weight: spec[i].Weight, GPUsPerReplica: m.GPUsPerReplica}
	}
	for i, share := range scalerpool.Shares(budget, in) {
		members[i].ShareGPUs = share
	}
}
