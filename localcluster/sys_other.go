//go:build !linux

package localcluster

import "syscall"

// sysProcAttr puts a program in its own process group so that Stop reaches all of it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
