// Package poll waits for a condition by polling it until a deadline: how tests, the local cluster and
// `make demo` wait for what a real component does in its own time.
package poll

import (
	"context"
	"errors"
	"time"
)

// Eventually polls f until it returns nil or the timeout passes, and returns f's last error. An error
// wrapped by Permanent stops the polling at once.
func Eventually(ctx context.Context, timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.error
		}
		select {
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
	}
}

type permanent struct{ error }

// Permanent marks an error that Eventually must not retry.
func Permanent(err error) error { return permanent{err} }
