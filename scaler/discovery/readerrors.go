package discovery

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
)

// ReadErrors keeps the latest error each of the scaler's informers met listing or watching its kind. A read
// from the cache waits for the kind's informer to sync, and one that cannot (its list forbidden after a role
// change, say) only times out; with these, the timeout can say why. Its zero value is ready to use.
type ReadErrors struct {
	mu   sync.Mutex
	last map[string]readError // by the informer's type, e.g. "*v1.Pod"
}

type readError struct {
	err error
	at  time.Time
}

// Handle is a cache.Options.DefaultWatchErrorHandler: it records err, then logs it as client-go does.
func (r *ReadErrors) Handle(ctx context.Context, ref *toolscache.Reflector, err error) {
	r.mu.Lock()
	if r.last == nil {
		r.last = map[string]readError{}
	}
	r.last[ref.TypeDescription()] = readError{err: err, at: time.Now()}
	r.mu.Unlock()
	toolscache.DefaultWatchErrorHandler(ctx, ref, err)
}

// Since returns the errors recorded at or after t, the latest per kind, joined; nil if there are none. An
// informer that keeps failing retries with a backoff of at most 30 s, so its error stays recent.
func (r *ReadErrors) Since(t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, kind := range slices.Sorted(maps.Keys(r.last)) {
		if e := r.last[kind]; !e.at.Before(t) {
			errs = append(errs, e.err)
		}
	}
	return errors.Join(errs...)
}
