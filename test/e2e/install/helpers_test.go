package install

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/localcluster"
	"github.com/llm-d/llm-d/sandbox"
)

// releaseObjects is nil once no object of any kind, namespaced or not, carries the release's instance label,
// the release's namespace has no pods, and helm keeps no record of the release.
func releaseObjects(ctx context.Context, c *localcluster.Cluster) error {
	cfg := rest.CopyConfig(c.Config)
	cfg.WarningHandler = rest.NoWarnings{} // listing every kind lists deprecated ones too
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return err
	}
	var left []string
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			return err
		}
		for _, r := range l.APIResources {
			if !containsVerb(r.Verbs, "list") || strings.Contains(r.Name, "/") {
				continue
			}
			items, err := dyn.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + sandbox.Release})
			if err != nil {
				continue // some aggregated APIs list nothing without a selector they accept
			}
			for _, it := range items.Items {
				left = append(left, fmt.Sprintf("%s %s/%s", r.Kind, it.GetNamespace(), it.GetName()))
			}
		}
	}
	pods := &corev1.PodList{}
	if err := c.Client.List(ctx, pods, client.InNamespace(sandbox.ReleaseNamespace)); err != nil {
		return err
	}
	for _, p := range pods.Items {
		left = append(left, "Pod "+sandbox.ReleaseNamespace+"/"+p.Name)
	}
	// helm's own record of the release.
	secrets := &corev1.SecretList{}
	if err := c.Client.List(ctx, secrets, client.InNamespace(sandbox.ReleaseNamespace), client.MatchingLabels{"owner": "helm", "name": sandbox.Release}); err != nil {
		return err
	}
	for _, s := range secrets.Items {
		left = append(left, "Secret "+sandbox.ReleaseNamespace+"/"+s.Name)
	}
	if len(left) > 0 {
		sort.Strings(left)
		return errors.New("left after uninstall: " + strings.Join(left, ", "))
	}
	return nil
}

func containsVerb(verbs []string, v string) bool {
	for _, x := range verbs {
		if x == v {
			return true
		}
	}
	return false
}
