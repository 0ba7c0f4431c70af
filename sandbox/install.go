package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/images"
	"github.com/llm-d/llm-d/internal/repo"
	"github.com/llm-d/llm-d/localcluster"
)

// An Installation is llm-d installed the way a user installs it, on a local cluster whose one real node runs
// every component as a pod: KEDA from its own manifests, llm-d with `helm install` of charts/llm-d and the
// images built from this checkout, model servers as simulated vLLM pods (the chart's vLLM image override for
// clusters without GPUs). test/e2e/install drives the whole scaling path through it; `make demo` runs on it
// where the machine allows a real node.

const (
	// Release and ReleaseNamespace are the helm release, as README's install command names it.
	Release          = "llm-d"
	ReleaseNamespace = "llm-d-system"
	// StorageClass binds claims to volumes made in advance on the node (static provisioning, as Kubernetes
	// documents local storage without a provisioner): the controller manager's PersistentVolume binder binds
	// each model-cache claim to one of them, and the kubelet mounts its directory.
	StorageClass = "local-hostpath"
)

// InstallOptions shape an Installation.
type InstallOptions struct {
	// GPUs is the node's nvidia.com/gpu count (declared, not real).
	GPUs int
	// Volumes is how many model-cache volumes StorageClass offers: one per service.
	Volumes int
	// HPASyncPeriod is the HPA's sync period (Kubernetes' default 15 s is slow for a test or a demo).
	HPASyncPeriod time.Duration
	// WaitForMachine is how long Start waits while another cluster's real node runs on this machine.
	WaitForMachine time.Duration
	// KeepDir keeps the cluster's directory (every program's log) after Stop.
	KeepDir bool
	// Logf receives a line per step.
	Logf func(format string, args ...any)
}

// Installation is a local cluster with a real node, KEDA and llm-d installed by helm.
type Installation struct {
	Cluster *localcluster.Cluster
	helm    string   // the helm binary
	env     []string // helm's environment: the cluster's kubeconfig, its own config and cache directories
	dir     string
}

// Install builds the images, starts the cluster with KEDA as pods, loads the images, offers the storage, and
// runs `helm install llm-d charts/llm-d -n llm-d-system --create-namespace` with the storage class and the
// simulated vLLM image set, as a user on a cluster without GPUs would.
func Install(ctx context.Context, opts InstallOptions) (in *Installation, err error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	helmDir, err := repo.Tools("helm")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "llmd-install-")
	if err != nil {
		return nil, err
	}
	in = &Installation{dir: dir, helm: filepath.Join(helmDir, "helm")}
	defer func() {
		if err != nil {
			in.Stop()
		}
	}()
	opts.Logf("sandbox: building the operator, scaler and vllm-sim images")
	archive, vllmSim, err := buildImages(ctx, filepath.Join(dir, "images"))
	if err != nil {
		return nil, err
	}
	in.Cluster, err = localcluster.Start(ctx, localcluster.Options{
		RealNode: &localcluster.RealNode{Name: "gpu-node-0", GPUs: opts.GPUs, GPUProduct: "NVIDIA-A10G", GPUMemoryMiB: 23028,
			WaitForMachine: opts.WaitForMachine},
		KEDA:          localcluster.KEDAPods,
		HPASyncPeriod: opts.HPASyncPeriod,
		Timeout:       5 * time.Minute,
		KeepDir:       opts.KeepDir,
		Logf:          opts.Logf,
	})
	if err != nil {
		return nil, err
	}
	in.env = append(os.Environ(), "KUBECONFIG="+in.Cluster.Kubeconfig,
		"HELM_CONFIG_HOME="+filepath.Join(dir, "helm", "config"), "HELM_CACHE_HOME="+filepath.Join(dir, "helm", "cache"),
		"HELM_DATA_HOME="+filepath.Join(dir, "helm", "data"))
	if err := in.Cluster.LoadImages(ctx, archive); err != nil {
		return nil, err
	}
	if err := in.createLocalStorage(ctx, opts.Volumes); err != nil {
		return nil, err
	}
	if err := in.fitOnOneMachine(ctx); err != nil {
		return nil, err
	}
	opts.Logf("sandbox: helm install %s charts/llm-d -n %s", Release, ReleaseNamespace)
	if err := in.Helm(ctx, "install", Release, ChartDir(), "-n", ReleaseNamespace, "--create-namespace",
		"--set", "global.storageClass="+StorageClass, "--set", "operator.vllmImage="+vllmSim,
		"--wait", "--timeout", "5m"); err != nil {
		return nil, err
	}
	return in, nil
}

// ChartDir is charts/llm-d in this checkout.
func ChartDir() string { return filepath.Join(repo.Root(), "charts", "llm-d") }

// Helm runs helm against the cluster, as a user runs it.
func (in *Installation) Helm(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, in.helm, args...)
	cmd.Env = in.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// ApplySample applies one of config/samples, verbatim, as `kubectl apply --server-side -f` does.
func (in *Installation) ApplySample(ctx context.Context, file string) error {
	b, err := os.ReadFile(filepath.Join(repo.Root(), "config", "samples", file))
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &u.Object); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return in.Cluster.Apply(ctx, u)
}

// ServiceURL is the base URL of a Service's port 80 at its ClusterIP, which the machine reaches through
// kube-proxy's rules (never through DNS: the machine's resolver knows no cluster name).
func (in *Installation) ServiceURL(ctx context.Context, namespace, name string) (string, error) {
	svc := &corev1.Service{}
	if err := in.Cluster.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, svc); err != nil {
		return "", err
	}
	return "http://" + svc.Spec.ClusterIP, nil
}

// Stop stops the cluster and removes what Start built.
func (in *Installation) Stop() error {
	var err error
	if in.Cluster != nil {
		err = in.Cluster.Stop()
	}
	_ = os.RemoveAll(in.dir)
	return err
}

// fastStartSim is the simulated vLLM image the installation runs: the released vllm-sim image's program and
// command line, but serving after a simulated model load of 5 s instead of the preset's 90 s, so that a scale-up
// takes seconds. Its own name keeps it apart from the released image.
func fastStartSim() images.Image {
	im := images.VLLMSim
	im.Name += "-fast-start"
	im.Args = append(slices.Clone(im.Args), "--startup-delay=5s")
	return im
}

// buildImages builds the operator, the scaler and the simulated vLLM for this machine's architecture, named
// as the chart's defaults name them (ghcr.io/llm-d/<name>:<appVersion>), into one archive for LoadImages. It
// returns the archive and the simulated vLLM's reference.
func buildImages(ctx context.Context, dir string) (archive, vllmSim string, err error) {
	built, err := images.Build(ctx, images.Options{Dir: dir, Images: []images.Image{images.Operator, images.Scaler, fastStartSim()}})
	if err != nil {
		return "", "", err
	}
	archive = filepath.Join(dir, "images.tar")
	if err := images.WriteArchive(archive, built); err != nil {
		return "", "", err
	}
	return archive, built[2].Ref, nil
}

// createLocalStorage creates StorageClass and n hostPath volumes large enough for a model cache each.
func (in *Installation) createLocalStorage(ctx context.Context, n int) error {
	c := in.Cluster
	if err := c.Client.Create(ctx, &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: StorageClass},
		Provisioner:       "kubernetes.io/no-provisioner",
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingImmediate),
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimRetain),
	}); err != nil {
		return err
	}
	for i := range n {
		// Writable by the images' non-root user, which the model-download init container runs as.
		dir := filepath.Join(c.Dir, "volumes", fmt.Sprintf("pv-%d", i))
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return err
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			return err
		}
		if err := c.Client.Create(ctx, &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("local-%d", i)},
			Spec: corev1.PersistentVolumeSpec{
				StorageClassName:              StorageClass,
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("200Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
					Path: dir, Type: ptr.To(corev1.HostPathDirectory)}},
			},
		}); err != nil {
			return err
		}
	}
	return nil
}

// fitPolicy lowers the memory request of the operator's model server pods as they are created (see
// fitOnOneMachine).
var fitPolicy = `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: llm-d-fit-one-machine}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}
  matchConditions:
  - name: model-server
    expression: >-
      has(object.metadata.labels) && "` + contract.LabelManagedBy + `" in object.metadata.labels &&
      object.metadata.labels["` + contract.LabelManagedBy + `"] == "` + contract.ManagedByValue + `" &&
      object.spec.containers.exists(c, c.name == "` + contract.ContainerName + `" && has(c.resources) &&
      has(c.resources.requests) && "memory" in c.resources.requests)
  failurePolicy: Fail
  reinvocationPolicy: Never
  mutations:
  - patchType: JSONPatch
    jsonPatch:
      expression: >-
        [JSONPatch{op: "replace", value: "64Mi", path: "/spec/containers/" +
        string(object.spec.containers.map(c, c.name).indexOf("` + contract.ContainerName + `")) + "/resources/requests/memory"}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: llm-d-fit-one-machine}
spec:
  policyName: llm-d-fit-one-machine
`

// fitOnOneMachine makes the samples' model servers fit the one real node. The manifests ask 24 GiB of memory
// per replica, a GPU server's share, more than this machine has in all; a simulated server uses a few MiB.
// A MutatingAdmissionPolicy, Kubernetes' own admission, lowers the request of the operator's model server
// pods as they are created, as the node's GPUs are declared in its status: the manifests stay verbatim.
func (in *Installation) fitOnOneMachine(ctx context.Context) error {
	for _, doc := range strings.Split(fitPolicy, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			return err
		}
		if err := in.Cluster.Apply(ctx, u); err != nil {
			return err
		}
	}
	return nil
}
