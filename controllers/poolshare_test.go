package controllers

import (
	"testing"

	"github.com/llm-d/llm-d/api/v1alpha1"
)

// The pool's status reports the allocator's shares: a member that needs no GPUs (or does not exist yet)
// takes none, and the others split the whole budget by weight.
func TestSetSharesLeavesOutMembersWithoutGPUs(t *testing.T) {
	spec := []v1alpha1.PoolMember{{Name: "llama", Weight: 60}, {Name: "cpu-embedder", Weight: 40}, {Name: "missing", Weight: 0}}
	members := []v1alpha1.PoolMemberStatus{{Name: "llama", GPUsPerReplica: 1}, {Name: "cpu-embedder"}, {Name: "missing"}}
	setShares(members, 4, spec)
	if members[0].ShareGPUs != 4 || members[1].ShareGPUs != 0 || members[2].ShareGPUs != 0 {
		t.Errorf("shares %d %d %d, want 4 0 0",
			members[0].ShareGPUs, members[1].ShareGPUs, members[2].ShareGPUs)
	}
}
