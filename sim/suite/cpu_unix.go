//go:build unix

package suite

import "syscall"

// cpuSeconds is the CPU time the process has used, user and system: on a shared machine the wall time says
// more about the neighbours than about the benchmark.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
