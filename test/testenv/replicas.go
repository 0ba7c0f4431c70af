package testenv

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Replicas is a Deployment's spec.replicas over time, as a poll every 100 ms sees it.
type Replicas struct {
	mu     sync.Mutex
	times  []time.Time
	counts []int32
}

// WatchReplicas records the Deployment's spec.replicas until the test ends.
func WatchReplicas(t testing.TB, c client.Client, key types.NamespacedName) *Replicas {
	r := &Replicas{}
	poll := func() {
		d := &appsv1.Deployment{}
		if err := c.Get(context.Background(), key, d); err != nil || d.Spec.Replicas == nil {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if n := len(r.counts); n == 0 || r.counts[n-1] != *d.Spec.Replicas {
			r.times = append(r.times, time.Now())
			r.counts = append(r.counts, *d.Spec.Replicas)
		}
	}
	poll()
	t.Cleanup(Every(100*time.Millisecond, poll))
	return r
}

// Last is the latest count, 0 before the first.
func (r *Replicas) Last() int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.counts) == 0 {
		return 0
	}
	return r.counts[len(r.counts)-1]
}

// Max is the highest count seen.
func (r *Replicas) Max() int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var m int32
	for _, c := range r.counts {
		m = max(m, c)
	}
	return m
}

// Min is the lowest count seen.
func (r *Replicas) Min() int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := int32(1 << 30)
	for _, c := range r.counts {
		m = min(m, c)
	}
	return m
}

// FirstDecreaseAfter is when the count first fell after t (zero if it did not).
func (r *Replicas) FirstDecreaseAfter(t time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 1; i < len(r.counts); i++ {
		if r.times[i].After(t) && r.counts[i] < r.counts[i-1] {
			return r.times[i]
		}
	}
	return time.Time{}
}

// Changes is how many times the count changed.
func (r *Replicas) Changes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return max(len(r.counts)-1, 0)
}

// History is every count with the time it was first seen, for failure messages.
func (r *Replicas) History() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for i, c := range r.counts {
		fmt.Fprintf(&b, "%s=%d ", r.times[i].Format("15:04:05.0"), c)
	}
	return b.String()
}

// Every runs f every d until the returned stop is called; stop returns once f no longer runs.
func Every(d time.Duration, f func()) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(d)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				f()
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}
