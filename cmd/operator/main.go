// Command operator runs the llm-d operator: it reconciles LLMInferenceServices into vLLM Deployments,
// Services, model-cache PersistentVolumeClaims, KEDA ScaledObjects and, for routed services, InferencePools,
// endpoint pickers and HTTPRoutes.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	inferencev1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
	"github.com/llm-d/llm-d/internal/scheme"
	"github.com/llm-d/llm-d/version"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "operator:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := controllers.DefaultConfig()
	var (
		metricsAddr, probeAddr string
		leaderElect            bool
		leaderElectionNS       string
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint; 0 disables it")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect one active operator among replicas (enable with more than one)")
	flag.StringVar(&leaderElectionNS, "leader-election-namespace", "", "namespace of the leader-election Lease (default: the pod's own)")
	flag.StringVar(&cfg.ScalerAddress, "scaler-address", cfg.ScalerAddress, "host:port of the llm-d scaler's gRPC service, written into ScaledObject triggers")
	flag.StringVar(&cfg.DefaultStorageClass, "default-storage-class", "", "model-cache storage class for services that name none (empty: the cluster default)")
	flag.StringVar(&cfg.VLLMImage, "vllm-image", cfg.VLLMImage, "vLLM image for services that name none")
	flag.StringVar(&cfg.S3Image, "s3-downloader-image", cfg.S3Image, "image that copies weights from S3 (needs the aws CLI)")
	flag.StringVar(&cfg.GCSImage, "gcs-downloader-image", cfg.GCSImage, "image that copies weights from GCS (needs gcloud)")
	flag.StringVar(&cfg.ScalerTLSSecret, "scaler-tls-secret", "", "Secret in KEDA's namespace with ca.crt, tls.crt and tls.key: KEDA then calls the scaler over mutual TLS (ClusterTriggerAuthentication "+controllers.TriggerAuthenticationName+")")
	flag.StringVar(&cfg.ClusterDomain, "cluster-domain", cfg.ClusterDomain, "cluster DNS domain, for the endpoint URL in status")
	flag.StringVar(&cfg.EPPImage, "epp-image", cfg.EPPImage, "endpoint picker image (the Gateway API Inference Extension's) of services with spec.router")
	flag.Var(gatewayFlag{&cfg.Gateway}, "gateway", "[namespace/]name of the Gateway whose HTTPRoutes send routed services' traffic to their InferencePools, when their spec.router names none (empty: none)")
	opts := zap.Options{Development: false, TimeEncoder: zapcore.ISO8601TimeEncoder}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes configuration (use --kubeconfig or run in a pod): %w", err)
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                  scheme.New(),
		Cache:                   controllers.CacheOptions(),
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "llm-d-operator.inference.llm-d.ai",
		LeaderElectionNamespace: leaderElectionNS,
	})
	if err != nil {
		return err
	}
	m := mgr.GetRESTMapper()
	if cfg.KEDA, err = serves(m, kedav1alpha1.SchemeGroupVersion.WithKind("ScaledObject")); err != nil {
		return err
	}
	if !cfg.KEDA {
		log.Info("KEDA's ScaledObject API is not served: services with autoscaling enabled will wait and say so in status")
	}
	if cfg.InferencePools, err = serves(m, inferencev1.SchemeGroupVersion.WithKind("InferencePool")); err != nil {
		return err
	}
	if !cfg.InferencePools {
		log.Info("the InferencePool API is not served: services with spec.router will wait and say so in status")
	}
	if cfg.HTTPRoutes, err = serves(m, gatewayv1.SchemeGroupVersion.WithKind("HTTPRoute")); err != nil {
		return err
	}
	if !cfg.HTTPRoutes {
		log.Info("the Gateway API's HTTPRoute is not served: routed services get no route and say so in status")
	}
	if err := controllers.Setup(mgr, cfg, metrics.Registry); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	log.Info("starting", "version", version.Version, "revision", version.Revision, "scalerAddress", cfg.ScalerAddress, "defaultStorageClass", cfg.DefaultStorageClass, "vllmImage", cfg.VLLMImage, "scalerTLSSecret", cfg.ScalerTLSSecret, "eppImage", cfg.EPPImage, "gateway", gatewayFlag{&cfg.Gateway}.String())
	return mgr.Start(ctrl.SetupSignalHandler())
}

// serves reports whether the cluster serves the kind gvk.
func serves(m meta.RESTMapper, gvk schema.GroupVersionKind) (bool, error) {
	_, err := m.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		return false, nil
	}
	return err == nil, err
}

// gatewayFlag is --gateway: [namespace/]name.
type gatewayFlag struct{ ref *v1alpha1.GatewayRef }

func (g gatewayFlag) String() string {
	if g.ref == nil || g.ref.Name == "" {
		return ""
	}
	if g.ref.Namespace == "" {
		return g.ref.Name
	}
	return g.ref.Namespace + "/" + g.ref.Name
}

func (g gatewayFlag) Set(v string) error {
	ns, name, found := strings.Cut(v, "/")
	if !found {
		ns, name = "", v
	}
	if name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("want namespace/name or name, got %q", v)
	}
	*g.ref = v1alpha1.GatewayRef{Namespace: ns, Name: name}
	return nil
}
