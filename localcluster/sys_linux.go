package localcluster

import "syscall"

// sysProcAttr puts a program in its own process group, and has the kernel kill it should the process that
// started it die without calling Stop (a test binary killed by its timeout), so no cluster outlives its owner.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
