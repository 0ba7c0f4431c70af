package engine

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/discovery"
	"github.com/llm-d/llm-d/scaler/pool"
)

// RulePoolBudget marks a decision that the service's pool changed.
const RulePoolBudget decision.Rule = "PoolBudget"

// applyPool caps a service's own decision by its pool's allocation, computed from the latest demand of
// every member. Each member's loop computes the same allocation from the same inputs, so the grants agree
// up to one round. It returns the pool's name ("" outside a pool).
func (e *Engine) applyPool(ctx context.Context, t discovery.Target, d *decision.Decision) (string, error) {
	pools := &v1alpha1.LLMInferencePoolList{}
	if err := e.reader.List(ctx, pools, client.InNamespace(t.Namespace)); err != nil {
		return "", err
	}
	var p *v1alpha1.LLMInferencePool
	for i := range pools.Items {
		if slices.ContainsFunc(pools.Items[i].Spec.Services,
			func(m v1alpha1.PoolMember) bool { return m.Name == t.Name }) {
			p = &pools.Items[i]
			break
		}
	}
	if p == nil {
		return "", nil
	}
	members := make([]pool.Member, 0, len(p.Spec.Services))
	self := -1
	budget := p.Spec.ResourcePolicy.GPUBudget.Value()
	for _, m := range p.Spec.Services {
		mt, demand := t, d.Desired
		if m.Name != t.Name {
			key := types.NamespacedName{Namespace: t.Namespace, Name: m.Name}
			r, err := e.Latest(ctx, key)
			if err != nil && r.Target.Name == "" {
				// Not autoscaled (or missing): its fixed replicas hold their GPUs, out of the scaler's reach.
				budget -= e.fixedGPUs(ctx, key)
				continue
			}
			mt, demand = r.Target, r.Demand
			if demand == 0 {
				demand = r.Decision.Desired
			}
		} else {
			self = len(members)
		}
		members = append(members, pool.Member{
			Name: m.Name, Priority: discovery.PoolPriority(m.Priority), Weight: m.Weight, GPUsPerReplica: mt.GPUsPerReplica,
			Min: mt.Policy.MinReplicas, Max: mt.Policy.MaxReplicas, Demand: demand,
			InUse: max(mt.Current, int32(len(mt.Ready)+mt.Starting)) + int32(mt.Terminating),
		})
	}
	grants := pool.Allocate(max(budget, 0), pool.EvictionPolicy(p.Spec.ResourcePolicy.EvictionPolicy), members)
	for i, g := range grants {
		if i != self {
			// Every member's published answer comes from this one allocation, so the answers KEDA reads
			// at any instant never add up to more than the budget, however the loops interleave.
			e.regrant(types.NamespacedName{Namespace: t.Namespace, Name: g.Name}, p.Name, g)
		}
	}
	grantTo(d, p.Name, d.Desired, grants[self])
	return p.Name, nil
}

// grantTo turns a member's own decision (demand) into the pool's grant.
func grantTo(d *decision.Decision, pool string, demand int32, g pool.Grant) {
	if g.Replicas == demand {
		return
	}
	d.Reason = fmt.Sprintf("pool %s grants %d of the %d replicas asked for: %s", pool, g.Replicas, demand, g.Reason)
	d.Desired, d.Rule = g.Replicas, RulePoolBudget
}

// regrant applies a grant to another member's published result.
func (e *Engine) regrant(key types.NamespacedName, poolName string, g pool.Grant) {
	e.mu.Lock()
	s := e.services[key]
	e.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latest == nil {
		return
	}
	r := *s.latest
	r.Decision = r.Own
	r.Pool = poolName
	grantTo(&r.Decision, poolName, r.Demand, g)
	s.latest = &r
}

// fixedGPUs is what a member without autoscaling holds: its replicas times its GPUs per replica.
func (e *Engine) fixedGPUs(ctx context.Context, key types.NamespacedName) int64 {
	svc := &v1alpha1.LLMInferenceService{}
	if err := e.reader.Get(ctx, key, svc); err != nil {
		return 0
	}
	n := int64(svc.Status.Replicas)
	if svc.Spec.Replicas != nil {
		n = max(n, int64(*svc.Spec.Replicas))
	}
	return n * contract.GPUsPerReplica(svc.Spec.Resources)
}
