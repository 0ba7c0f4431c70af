package localcluster

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/llm-d/llm-d/images"
)

// KEDA's images as its releases name them; the local cluster builds them from the binaries hack/tools.sh
// built from the same module, so the tags are that module's version.
const (
	kedaOperatorImage = "ghcr.io/kedacore/keda"
	kedaAdapterImage  = "ghcr.io/kedacore/keda-metrics-apiserver"
)

// kedaVersion is the version of the KEDA module in the module cache directory dir (".../keda/v2@v2.21.0"),
// as KEDA tags its images ("2.21.0").
func kedaVersion(moduleDir string) string {
	_, v, _ := strings.Cut(filepath.Base(moduleDir), "@")
	return strings.TrimPrefix(v, "v")
}

// installKEDAPods runs KEDA on the real node as its users install it: the objects of KEDA's own kustomization
// config/minimal (everything but the admission webhooks, which only validate ScaledObjects and would need a
// third image), from the module KEDA's binaries were built from. Their images are those binaries, each in a
// layer of its own on nothing; the manifests name moving tags with imagePullPolicy Always, which are rewritten
// to the built version and IfNotPresent, so that nothing is pulled, and the pods are placed on the real node.
// KEDA makes its own certificates and puts its CA into the external metrics APIService.
func (c *Cluster) installKEDAPods(ctx context.Context, t *tools) error {
	version := kedaVersion(t.kedaModule)
	archive := c.path("node", "images", "keda.tar")
	if err := c.loadPrebuilt(ctx, archive, []prebuilt{
		{images.Image{Name: "keda", Command: "keda", Description: "KEDA's operator."}, kedaOperatorImage + ":" + version, filepath.Join(t.keda, "operator")},
		{images.Image{Name: "keda-metrics-apiserver", Command: "keda-adapter", Description: "KEDA's metrics API server."}, kedaAdapterImage + ":" + version, filepath.Join(t.keda, "adapter")},
	}); err != nil {
		return fmt.Errorf("KEDA images: %w", err)
	}
	objs, err := kustomizationResources(filepath.Join(t.kedaModule, "config", "minimal"))
	if err != nil {
		return fmt.Errorf("reading KEDA's manifests: %w", err)
	}
	for _, o := range objs {
		if err := pinKEDA(o, version, c.opts.RealNode.Name); err != nil {
			return err
		}
	}
	if err := c.Apply(ctx, objs...); err != nil {
		return err
	}
	return nil
}

// waitKEDAPods waits until KEDA's operator and metrics server are available and serve the external metrics API.
func (c *Cluster) waitKEDAPods(ctx context.Context) error {
	kubelet := c.process("kubelet")
	for _, d := range []string{"keda-operator", "keda-metrics-apiserver"} {
		if err := kubelet.WaitReady(ctx, func() error { return c.deploymentAvailable(ctx, KEDANamespace, d) }); err != nil {
			return fmt.Errorf("KEDA: %w", err)
		}
	}
	return kubelet.WaitReady(ctx, func() error { return c.apiServiceAvailable(ctx) })
}

// pinKEDA rewrites a Deployment's KEDA images to tag version and imagePullPolicy IfNotPresent, and places
// its pods on the real node (kwok's fake nodes run no containers).
func pinKEDA(o *unstructured.Unstructured, version, node string) error {
	if o.GetKind() != "Deployment" {
		return nil
	}
	if err := unstructured.SetNestedField(o.Object, node, "spec", "template", "spec", "nodeSelector", "kubernetes.io/hostname"); err != nil {
		return err
	}
	containers, _, err := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	if err != nil {
		return err
	}
	for i, ci := range containers {
		ctr, _ := ci.(map[string]any)
		image, _ := ctr["image"].(string)
		repo, _, _ := strings.Cut(image, ":")
		switch repo {
		case kedaOperatorImage, kedaAdapterImage:
		default:
			return fmt.Errorf("KEDA deployment %s runs image %q, which the local cluster does not build", o.GetName(), image)
		}
		ctr["image"] = repo + ":" + version
		ctr["imagePullPolicy"] = "IfNotPresent"
		containers[i] = ctr
	}
	return unstructured.SetNestedSlice(o.Object, containers, "spec", "template", "spec", "containers")
}
