package controllers

import (
	"context"
	"fmt"
	"maps"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
)

// errNotOwned means an object with the name the operator needs exists and belongs to someone else.
type errNotOwned struct{ kind, namespace, name string }

func (e errNotOwned) Error() string {
	return fmt.Sprintf("%s %s/%s exists and is not managed by this LLMInferenceService: delete or rename it",
		e.kind, e.namespace, e.name)
}

// result says what apply did, for events and for counting writes.
type result string

const (
	unchanged result = "Unchanged"
	created   result = "Created"
	updated   result = "Updated"
)

// apply makes the live object match desired in the fields the operator manages. It reads live through the
// cache, creates desired when absent, and otherwise writes only when inSync says the managed fields drifted,
// after sync has copied them onto live: a steady state costs no write, and fields other controllers set
// (annotations, defaults, status) are kept. owner becomes desired's controller.
func apply[T client.Object](ctx context.Context, c client.Client, owner client.Object, kind string,
	desired, live T, inSync func(live T) bool, sync func(live T)) (T, result, error) {
	if err := controllerutil.SetControllerReference(owner, desired, c.Scheme()); err != nil {
		return live, unchanged, err
	}
	err := c.Get(ctx, client.ObjectKeyFromObject(desired), live)
	if apierrors.IsNotFound(err) {
		if err := c.Create(ctx, desired); err != nil {
			return live, unchanged, err
		}
		return desired, created, nil
	}
	if err != nil {
		return live, unchanged, err
	}
	if !metav1.IsControlledBy(live, owner) {
		return live, unchanged, errNotOwned{kind, live.GetNamespace(), live.GetName()}
	}
	labels := live.GetLabels()
	labelsInSync := true
	for k, v := range desired.GetLabels() {
		if labels[k] != v {
			labelsInSync = false
		}
	}
	if labelsInSync && inSync(live) {
		return live, unchanged, nil
	}
	merged := maps.Clone(labels)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, desired.GetLabels())
	live.SetLabels(merged)
	sync(live)
	if err := c.Update(ctx, live); err != nil {
		return live, unchanged, err
	}
	return live, updated, nil
}
