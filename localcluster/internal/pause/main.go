// Command pause is the local cluster's pod sandbox process: it holds a pod's namespaces, reaps the zombies of
// processes that share its PID namespace, and exits on SIGTERM or SIGINT, as Kubernetes' own pause does. It is
// built from source so that containerd never has to pull registry.k8s.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
