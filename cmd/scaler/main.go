// Command scaler runs the llm-d scaler: a KEDA external scaler (gRPC) that scrapes every ready vLLM pod of
// each autoscaled LLMInferenceService and answers KEDA from the decisions it keeps in memory.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/llm-d/llm-d/api/v1alpha1"
	pb "github.com/llm-d/llm-d/proto/externalscaler"
	"github.com/llm-d/llm-d/scaler/discovery"
	"github.com/llm-d/llm-d/scaler/engine"
	"github.com/llm-d/llm-d/scaler/mtls"
	"github.com/llm-d/llm-d/scaler/report"
	"github.com/llm-d/llm-d/scaler/scrape"
	"github.com/llm-d/llm-d/scaler/server"
	"github.com/llm-d/llm-d/version"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scaler:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		grpcAddr, metricsAddr, probeAddr string
		cfg                              = engine.Config{ReadErrors: &discovery.ReadErrors{}}
		scrapeTimeout                    time.Duration
		maxBytes                         int64
		tlsFiles                         mtls.Files
	)
	flag.StringVar(&grpcAddr, "grpc-address", ":9090", "address of the KEDA external scaler gRPC service")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint; 0 disables it")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.DurationVar(&cfg.Interval, "scrape-interval", 5*time.Second, "time between two scrapes of a service's pods (and its decisions)")
	flag.DurationVar(&cfg.MaxAge, "max-sample-age", 0, "oldest pod sample a decision uses (default 3x --scrape-interval)")
	flag.IntVar(&cfg.Workers, "scrape-workers", 64, "scrapes in flight at once, across all services")
	flag.DurationVar(&scrapeTimeout, "scrape-timeout", 2*time.Second, "deadline of one pod's scrape, connection to last byte")
	flag.Int64Var(&maxBytes, "max-payload-bytes", 4<<20, "largest /metrics payload read from a pod, before and after gzip")
	flag.StringVar(&tlsFiles.Cert, "tls-cert-file", "", "PEM certificate of the gRPC service; with the key and client CA, KEDA must present a client certificate")
	flag.StringVar(&tlsFiles.Key, "tls-key-file", "", "PEM key of --tls-cert-file")
	flag.StringVar(&tlsFiles.ClientCA, "tls-client-ca-file", "", "PEM CA that signs the client certificates KEDA presents; others are refused")
	opts := zap.Options{TimeEncoder: zapcore.ISO8601TimeEncoder}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	if cfg.Interval <= 0 || scrapeTimeout <= 0 || maxBytes <= 0 || cfg.Workers <= 0 {
		fmt.Fprintln(os.Stderr, "scaler: --scrape-interval, --scrape-timeout, --max-payload-bytes and --scrape-workers must be positive")
		os.Exit(2)
	}
	if err := tlsFiles.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "scaler:", err)
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("scaler")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes configuration (use --kubeconfig or run in a pod): %w", err)
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		Cache:                  discovery.CacheOptions(cfg.ReadErrors),
	})
	if err != nil {
		return err
	}
	rep := &report.Reporter{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("llm-d-scaler"), Log: log}
	eng := engine.New(mgr.GetClient(), scrape.NewFetcher(scrapeTimeout, maxBytes), engine.ParseVLLM, cfg,
		engine.NewMetrics(metrics.Registry), rep.Observe, log)
	if err := mgr.Add(manager.RunnableFunc(eng.Start)); err != nil {
		return err
	}

	lis, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return fmt.Errorf("listening on --grpc-address %s: %w", grpcAddr, err)
	}
	var grpcOpts []grpc.ServerOption
	if tlsFiles.Enabled() {
		tlsCfg, err := mtls.ServerConfig(tlsFiles, func(err error) {
			log.Error(err, "renewed TLS files are unusable: still serving with the previous certificates")
		})
		if err != nil {
			return err
		}
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	gs := grpc.NewServer(grpcOpts...)
	pb.RegisterExternalScalerServer(gs, &server.Server{Source: eng, StreamInterval: cfg.Interval})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		go func() { <-ctx.Done(); hs.Shutdown(); gs.GracefulStop() }()
		log.Info("serving KEDA external scaler", "address", lis.Addr().String(), "mutualTLS", tlsFiles.Enabled(),
			"version", version.Version, "revision", version.Revision)
		return gs.Serve(lis)
	})); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("informers", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return fmt.Errorf("informers not synced")
		}
		return nil
	}); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}
