// Command operator runs the llm-d operator: it reconciles LLMInferenceServices into vLLM Deployments,
// Services, model-cache PersistentVolumeClaims and KEDA ScaledObjects.
package main

import (
	"flag"
	"fmt"
	"os"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
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
	opts := zap.Options{Development: false, TimeEncoder: zapcore.ISO8601TimeEncoder}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	utilruntime.Must(kedav1alpha1.AddToScheme(scheme))

	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes configuration (use --kubeconfig or run in a pod): %w", err)
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                  scheme,
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
	cfg.KEDA, err = servesScaledObjects(mgr.GetRESTMapper())
	if err != nil {
		return err
	}
	if !cfg.KEDA {
		log.Info("KEDA's ScaledObject API is not served: services with autoscaling enabled will wait and say so in status")
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
	log.Info("starting", "version", version.Version, "revision", version.Revision, "scalerAddress", cfg.ScalerAddress, "defaultStorageClass", cfg.DefaultStorageClass, "vllmImage", cfg.VLLMImage, "scalerTLSSecret", cfg.ScalerTLSSecret)
	return mgr.Start(ctrl.SetupSignalHandler())
}

// servesScaledObjects reports whether the cluster serves KEDA's ScaledObject kind.
func servesScaledObjects(m meta.RESTMapper) (bool, error) {
	_, err := m.RESTMapping(kedav1alpha1.SchemeGroupVersion.WithKind("ScaledObject").GroupKind(), "v1alpha1")
	if meta.IsNoMatchError(err) {
		return false, nil
	}
	return err == nil, err
}
