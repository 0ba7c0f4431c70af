package fleet_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/llm-d/llm-d/fleet"
)

// A local cluster's demo: serve every pod kwok runs, and put service "llama" of namespace "demo" behind
// 127.0.0.1:8080, so that `llmd burst --url http://127.0.0.1:8080 --rps 20 --duration 1m` drives it.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rc, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		fmt.Println(err)
		return
	}
	kube := kubernetes.NewForConfigOrDie(rc)

	cfg := fleet.DefaultConfig()
	cfg.Server.Speed = 10 // simulated seconds per second: replicas start and drain ten times faster
	f, err := fleet.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	front := &http.Server{Addr: "127.0.0.1:8080", Handler: f.Handler("demo", "llama"), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = front.ListenAndServe() }()
	go func() {
		for range time.Tick(time.Second) {
			for _, p := range f.Snapshot() {
				fmt.Printf("%s/%s %s %s running %g waiting %g\n", p.Namespace, p.Name, p.Service, p.Address, p.Running, p.Waiting)
			}
		}
	}()
	_ = f.Run(ctx, kube)
	_ = front.Shutdown(context.Background())
}
