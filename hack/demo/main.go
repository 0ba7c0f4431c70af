// Command demo is `make demo`: it starts a local cluster with real KEDA and the real HPA (package
// localcluster), installs llm-d's operator and scaler, applies the samples in config/samples (llama-3-8b
// with its autoscaling block, phi-3-mini and the production-pool that shares GPUs between them), sends a burst of streaming requests to
// simulated vLLM pods, and shows per service the ready and desired replicas, the queue, decode tokens/s
// per pod and the scaler's reason, live. At the end it writes a PNG timeline of replicas and queue.
// Ctrl-C stops and removes everything.
//
// Where the machine allows a real node (Linux, root, Debian's runc, CNI plugins and iptables), everything
// runs as pods, installed as a user installs it (package test/e2e/install: KEDA from its manifests, llm-d
// with helm, the manifests verbatim) and the burst goes to each service's ClusterIP; elsewhere, or with
// -kwok, llm-d's binaries run on the machine and the pods on kwok's fake GPU nodes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/internal/poll"
	"github.com/llm-d/llm-d/internal/repo"
	"github.com/llm-d/llm-d/loadgen"
	"github.com/llm-d/llm-d/localcluster"
	"github.com/llm-d/llm-d/sim"
	"github.com/llm-d/llm-d/sim/plot"
)

const ns = "inference"

func main() {
	os.Exit(run())
}

func run() int {
	var (
		burstFor = flag.Duration("burst", 90*time.Second, "how long the burst lasts")
		rps      = flag.Float64("rps", 12, "requests per second to llama-3-8b (phi-3-mini gets half)")
		window   = flag.Duration("window", 30*time.Second, "scaleDownStabilizationSeconds for the demo (the samples' is 300 s)")
		out      = flag.String("plot", "demo-timeline.png", "where to write the PNG timeline")
		kwok     = flag.Bool("kwok", false, "run the pods on kwok's fake nodes even where a real node could run them")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo(ctx, *burstFor, *rps, *window, *out, *kwok); err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "demo: stopped; everything it started is gone")
			return 130
		}
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	return 0
}

func demo(ctx context.Context, burstFor time.Duration, rps float64, window time.Duration, out string, kwok bool) error {
	say := func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	start := time.Now()
	var b backend
	var err error
	if why := localcluster.RealNodeSupported(); why == nil && !kwok {
		say("demo: starting a local cluster with a real node and installing KEDA and llm-d on it as pods (the first run builds the control plane, the kubelet, containerd, CoreDNS, KEDA and helm from the Go module proxy: ~40 min on 2 cores; later runs start in about a minute)")
		b, err = startReal(ctx, say)
	} else {
		if why != nil {
			say("demo: no real node here (%v): the pods run on kwok's fake nodes", why)
		}
		say("demo: starting a local cluster (the first run builds kube-apiserver, the controller manager, the scheduler, etcd, kwok and KEDA from the Go module proxy: ~25 min on 2 cores; later runs start in under a minute)")
		b, err = startKwok(ctx, say)
	}
	if err != nil {
		return err
	}
	defer b.stop()
	say("demo: cluster, KEDA and llm-d up in %s; logs in %s", time.Since(start).Round(time.Second), b.logDir())

	k := b.client()
	if err := k.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	if err := k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hf-token-secret"},
		StringData: map[string]string{"HF_TOKEN": "hf_demo"}}); err != nil {
		return err
	}
	services, err := b.deploy(ctx, window)
	if err != nil {
		return err
	}
	for _, svc := range services {
		say("demo: applied %s, scale-down window %s", svc.Name, window)
	}
	pool := &v1alpha1.LLMInferencePool{}
	if err := sample("production-pool.yaml", pool); err != nil {
		return err
	}
	say("demo: applied the production-pool sample: %s GPUs shared by weight and priority", pool.Spec.ResourcePolicy.GPUBudget.String())

	say("demo: waiting for the first replica of each service and its ScaledObject")
	for _, svc := range services {
		err := poll.Eventually(ctx, 5*time.Minute, func() error {
			s := &v1alpha1.LLMInferenceService{}
			if err := k.Get(ctx, client.ObjectKeyFromObject(svc), s); err != nil {
				return err
			}
			if s.Status.ScaledObject == "" {
				return fmt.Errorf("%s has no ScaledObject yet", svc.Name)
			}
			if !b.serving(ctx, svc) {
				return fmt.Errorf("%s has no pod serving yet", svc.Name)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}

	series := map[string][]sim.Point{}
	t0 := time.Now()
	gens := map[string]*loadgen.Generator{}
	lastSent, lastAt := 0, t0
	record := func(rows []row) {
		sent := 0
		for _, g := range gens {
			sent += g.Progress().Sent
		}
		now := time.Now()
		arrivals := float64(sent-lastSent) / now.Sub(lastAt).Seconds()
		lastSent, lastAt = sent, now
		for _, r := range rows {
			series[r.name] = append(series[r.name], sim.Point{T: now.Sub(t0), ArrivalsPerSec: arrivals, Replicas: r.desired,
				Ready: int(r.ready), Starting: int(max(r.desired-r.ready, 0)), Waiting: int(r.waiting), DecodeTPSPerPod: r.tps})
		}
	}
	// Failures by kind on the way out: the table shows only their count.
	defer func() {
		for name, g := range gens {
			if sum := g.Summary(); sum.Successes < sum.Requests {
				say("demo: %s: %d of %d requests failed: %v; first of each: %v", name, sum.Requests-sum.Successes, sum.Requests, sum.Errors, sum.FirstErrors)
			}
		}
	}()
	loadDone := make(chan struct{})
	for i, svc := range services {
		door, err := b.url(ctx, svc)
		if err != nil {
			return err
		}
		g, err := loadgen.New(loadgen.Config{URL: door, Model: svc.Spec.Model.ID, RPS: rps / float64(i+1), Duration: burstFor,
			PromptTokens: 2000, MaxTokens: 400, Concurrency: 4000})
		if err != nil {
			return err
		}
		gens[svc.Name] = g
	}
	say("demo: burst for %s: %.0f req/s to llama-3-8b, %.0f req/s to phi-3-mini (streaming, 2000-token prompts)", burstFor, rps, rps/2)
	go func() {
		defer close(loadDone)
		done := make(chan struct{}, len(gens))
		for _, g := range gens {
			go func() { g.Run(ctx); done <- struct{}{} }()
		}
		for range gens {
			<-done
		}
	}()

	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	var quietSince time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		rows := table(ctx, b, services)
		record(rows)
		draw(os.Stdout, rows, gens, time.Since(t0))
		select {
		case <-loadDone:
			if quietSince.IsZero() {
				quietSince = time.Now()
			}
		default:
		}
		// Stop once every service is back at its minimum after the burst (or, at the latest, two minutes
		// after a full window).
		if !quietSince.IsZero() && (atMin(rows, services) || time.Since(quietSince) > window+2*time.Minute) {
			break
		}
	}
	return writePlot(out, series)
}

// row is one service's line of the live table.
type row struct {
	name             string
	ready, desired   int32
	waiting, running float64
	tps              float64
	rule, reason     string
}

func table(ctx context.Context, b backend, services []*v1alpha1.LLMInferenceService) []row {
	var rows []row
	for _, svc := range services {
		s := &v1alpha1.LLMInferenceService{}
		if err := b.client().Get(ctx, client.ObjectKeyFromObject(svc), s); err != nil {
			continue
		}
		r := row{name: svc.Name, ready: s.Status.ReadyReplicas}
		if a := s.Status.Autoscaler; a != nil {
			r.desired, r.rule, r.reason = a.DesiredReplicas, a.Rule, a.Reason
			fmt.Sscan(a.DecodeTokensPerSecondPerPod, &r.tps)
		}
		r.waiting, r.running = b.load(ctx, svc)
		rows = append(rows, r)
	}
	return rows
}

func atMin(rows []row, services []*v1alpha1.LLMInferenceService) bool {
	for i, r := range rows {
		if r.desired > services[i].Spec.Autoscaling.MinReplicas || r.ready > services[i].Spec.Autoscaling.MinReplicas {
			return false
		}
	}
	return len(rows) > 0
}

func draw(w io.Writer, rows []row, gens map[string]*loadgen.Generator, since time.Duration) {
	fmt.Fprintf(w, "\033[H\033[2J") // a live table: redraw in place
	fmt.Fprintf(w, "llm-d demo  t=%s\n\n", since.Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tREADY/DESIRED\tWAITING\tRUNNING\tDECODE TOK/S/POD\tRULE\tREASON")
	for _, r := range rows {
		reason := r.reason
		if len(reason) > 80 {
			reason = reason[:77] + "..."
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%.0f\t%.0f\t%.0f\t%s\t%s\n", r.name, r.ready, r.desired, r.waiting, r.running, r.tps, r.rule, reason)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for name, g := range gens {
		p := g.Progress()
		fmt.Fprintf(w, "burst %-12s sent %d  done %d  in flight %d  errors %d  TTFT p50 %s\n", name, p.Sent, p.Done, p.InFlight, p.Errors, p.TTFTP50.Round(time.Millisecond))
	}
}

func writePlot(path string, series map[string][]sim.Point) error {
	var results []sim.Result
	for name, pts := range series {
		results = append(results, sim.Result{Policy: name, Series: pts})
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := plot.PNG(f, "llm-d demo: replicas and queue per service", results); err != nil {
		return err
	}
	abs, _ := filepath.Abs(path)
	fmt.Fprintln(os.Stderr, "demo: timeline written to", abs)
	return nil
}

func sample(file string, into any) error {
	data, err := os.ReadFile(filepath.Join(repo.Root(), "config", "samples", file))
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}
