package engine

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/llm-d/llm-d/scaler/decision"
	"github.com/llm-d/llm-d/scaler/discovery"
	"github.com/llm-d/llm-d/scaler/scrape"
)

// pods starts n HTTP servers on 127.0.0.1, each serving the real-sized vLLM fixture as /metrics, and
// returns them as scrape targets. Each is its own listener, so every scrape is its own connection, as
// with real pods.
func pods(b *testing.B, n int) []discovery.PodTarget {
	b.Helper()
	payload, err := os.ReadFile(filepath.Join("..", "vllmmetrics", "testdata", "vllm-0.11.txt"))
	if err != nil {
		b.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(payload) })
	out := make([]discovery.PodTarget, n)
	for i := range out {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: h}
		go srv.Serve(lis)
		b.Cleanup(func() { srv.Close() })
		out[i] = discovery.PodTarget{UID: types.UID(fmt.Sprint(i)), Name: fmt.Sprint("pod-", i), Addr: lis.Addr().String()}
	}
	return out
}

func newBenchEngine(workers int) *Engine {
	return New(nil, scrape.NewFetcher(5*time.Second, 4<<20), ParseVLLM, Config{Interval: time.Second, Workers: workers},
		NewMetrics(prometheus.NewRegistry()), nil, logr.Discard())
}

// BenchmarkScrapeCycle is one round of a service with n ready pods: fetch and parse every pod's /metrics
// through the worker pool (connections kept alive between rounds, as in production).
func BenchmarkScrapeCycle(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint("pods=", n), func(b *testing.B) {
			targets := pods(b, n)
			e := newBenchEngine(64)
			s := &service{auto: decision.New(decision.Policy{}), pods: map[types.UID]*podState{}}
			for _, p := range targets {
				s.pods[p.UID] = &podState{}
			}
			key := types.NamespacedName{Namespace: "bench", Name: "svc"}
			e.scrapeAll(context.Background(), key, s, targets) // warm the connection pool
			b.ResetTimer()
			for b.Loop() {
				e.scrapeAll(context.Background(), key, s, targets)
			}
			b.StopTimer()
			for _, p := range s.pods {
				if _, err := p.Signals(time.Now(), time.Minute); err != nil {
					b.Fatalf("scrape failed: %v", err)
				}
			}
		})
	}
}

// BenchmarkMemoryPerPod reports the heap the engine holds per scraped pod: its signals, its kept read
// buffer and its share of the connection pool.
func BenchmarkMemoryPerPod(b *testing.B) {
	const n = 500
	targets := pods(b, n)
	key := types.NamespacedName{Namespace: "bench", Name: "svc"}
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		e := newBenchEngine(64)
		s := &service{auto: decision.New(decision.Policy{}), pods: map[types.UID]*podState{}}
		for _, p := range targets {
			s.pods[p.UID] = &podState{}
		}
		e.scrapeAll(context.Background(), key, s, targets)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-bytes/pod")
		runtime.KeepAlive(s)
		e.fetcher.Client.CloseIdleConnections()
	}
}
