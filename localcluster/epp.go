package localcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/llm-d/llm-d/epp"
	"github.com/llm-d/llm-d/internal/repo"
)

// InferenceExtensionModule is the Go module of the Gateway API Inference Extension: its InferencePool CRD
// and typed API (api/v1) are the project's dependency; its endpoint picker is built by hack/tools.sh epp.
const InferenceExtensionModule = "sigs.k8s.io/gateway-api-inference-extension"

// EPPOptions describe one endpoint picker. Zero fields take the defaults noted.
type EPPOptions struct {
	// Pool is the InferencePool the picker serves: it watches it and the pods its selector names.
	Pool types.NamespacedName
	// Config is the picker's EndpointPickerConfig (YAML); empty means llm-d's, epp.DefaultScoring().
	Config string
	// RefreshMetricsInterval is how often the picker scrapes each pod (--refresh-metrics-interval);
	// zero keeps the picker's default, 50ms.
	RefreshMetricsInterval time.Duration
	// Kubeconfig is who the picker is in the cluster; empty means cluster-admin. A ServiceAccount's
	// (ServiceAccountKubeconfig) runs it with exactly the permissions its Role grants.
	Kubeconfig string
	// Args are further flags, after the ones StartEPP sets.
	Args []string
}

// EPP is a running endpoint picker: the extension's cmd/epp as a host process, as its Deployment would run
// it in a cluster.
type EPP struct {
	*Process
	// GRPCAddr is the ext_proc server (ip:port) a gateway sends requests to; it serves TLS with a
	// self-signed certificate (the picker's default --secure-serving).
	GRPCAddr string
	// HealthAddr is the gRPC health server, SERVING once the picker has read its InferencePool.
	HealthAddr string
	// MetricsURL is the picker's Prometheus endpoint, among its series inference_pool_per_pod_queue_size:
	// the pods it routes to and the queue it last scraped from each.
	MetricsURL string
}

// InstallInferencePoolCRD installs the InferencePool CRD (inference.networking.k8s.io/v1) from the
// extension's module, as a user installs the extension's CRDs before using them.
func (c *Cluster) InstallInferencePoolCRD(ctx context.Context) error {
	dir, err := repo.ModuleDir(InferenceExtensionModule)
	if err != nil {
		return err
	}
	_, err = envtest.InstallCRDs(c.Config, envtest.CRDInstallOptions{
		Paths:              []string{filepath.Join(dir, "config", "crd", "bases", "inference.networking.k8s.io_inferencepools.yaml")},
		ErrorIfPathMissing: true,
		MaxTime:            time.Until(deadlineOf(ctx)),
	})
	if err != nil {
		return fmt.Errorf("installing the InferencePool CRD: %w", err)
	}
	return nil
}

// StartEPP starts an endpoint picker for o.Pool and returns once it has read the pool (its gRPC health
// check answers SERVING) and its ext_proc server accepts connections, which comes a little later. The
// pool's CRD must be installed (InstallInferencePoolCRD). Its log is LogDir/epp-<pool>.log; Stop kills it,
// and so does Kill, as a crash would.
func (c *Cluster) StartEPP(ctx context.Context, o EPPOptions) (*EPP, error) {
	if o.Pool.Name == "" || o.Pool.Namespace == "" {
		return nil, errors.New("StartEPP: the pool's namespace and name are required")
	}
	dir, err := repo.Tools("epp")
	if err != nil {
		return nil, err
	}
	if o.Config == "" {
		o.Config = epp.DefaultScoring().Config()
	}
	if o.Kubeconfig == "" {
		o.Kubeconfig = c.Kubeconfig
	}
	name := "epp-" + o.Pool.Name
	configFile := c.path(name + ".yaml")
	if err := os.WriteFile(configFile, []byte(o.Config), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	args := []string{
		"--pool-name=" + o.Pool.Name, "--pool-namespace=" + o.Pool.Namespace,
		"--config-file=" + configFile,
		// The picker listens on every interface (it has no bind-address flag); free ports keep
		// pickers of several pools, and of parallel tests, apart.
		"--grpc-port=" + strconv.Itoa(ports[0]), "--grpc-health-port=" + strconv.Itoa(ports[1]),
		"--metrics-port=" + strconv.Itoa(ports[2]),
		// Its metrics are read by the tests without a token; nothing collects traces here.
		"--metrics-endpoint-auth=false", "--tracing=false",
		"--zap-encoder=console",
	}
	if o.RefreshMetricsInterval > 0 {
		args = append(args, "--refresh-metrics-interval="+o.RefreshMetricsInterval.String())
	}
	args = append(args, o.Args...)
	// controller-runtime reads KUBECONFIG: the picker registers its flags on pflag only, without --kubeconfig.
	p, err := c.startProcess(name, filepath.Join(dir, "epp"), args, "KUBECONFIG="+o.Kubeconfig)
	if err != nil {
		return nil, err
	}
	e := &EPP{
		Process:    p,
		GRPCAddr:   "127.0.0.1:" + strconv.Itoa(ports[0]),
		HealthAddr: "127.0.0.1:" + strconv.Itoa(ports[1]),
		MetricsURL: "http://127.0.0.1:" + strconv.Itoa(ports[2]) + "/metrics",
	}
	if err := p.WaitReady(ctx, e.serving); err != nil {
		_ = p.Kill()
		return nil, err
	}
	return e, nil
}

// serving asks the picker's gRPC health server whether it serves, as a kubelet's grpc probe would, and
// checks that its ext_proc server listens.
func (e *EPP) serving() error {
	conn, err := grpc.NewClient(e.HealthAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health: %s", s)
	}
	c, err := net.DialTimeout("tcp", e.GRPCAddr, 2*time.Second)
	if err != nil {
		return fmt.Errorf("the ext_proc server: %w", err)
	}
	return c.Close()
}

// Queues is what the picker knows of its pool: the waiting queue it last scraped from each pod, by pod
// name (its inference_pool_per_pod_queue_size).
func (e *EPP) Queues() (map[string]float64, error) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := hc.Get(e.MetricsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	queues := map[string]float64{}
	for _, m := range families["inference_pool_per_pod_queue_size"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "model_server_pod" {
				// An endpoint is a pod's target port: <pod>-rank-<index of the port>.
				pod, _, _ := strings.Cut(l.GetValue(), "-rank-")
				queues[pod] = m.GetGauge().GetValue()
			}
		}
	}
	return queues, nil
}
