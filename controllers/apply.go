package controllers

import (
	"bytes"
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/applyconfigurations"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/csaupgrade"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
	"sigs.k8s.io/structured-merge-diff/v6/value"
)

// FieldManager is the server-side apply field manager of every object the operator writes. The API server
// keeps, per object, the set of fields each manager set; a field the operator stops setting is removed
// by its next apply, a field another manager set (the HPA's replicas, a user's annotation) is never
// touched by it.
const FieldManager = "llm-d-operator"

// handoverManager holds Deployment.spec.replicas for the HPA: when autoscaling turns on, the operator
// stops setting the count, and a field its manager alone owned would be removed (and defaulted to 1)
// by that apply. Applying the live count under this manager first keeps it, until the HPA's first
// scale writes it and becomes its owner.
const handoverManager = "llm-d-handover-to-hpa"

// errNotOwned means an object with the name the operator needs exists and belongs to someone else.
type errNotOwned struct{ kind, namespace, name string }

func (e errNotOwned) Error() string {
	return fmt.Sprintf("%s %s/%s exists and is not managed by this LLMInferenceService: delete or rename it",
		e.kind, e.namespace, e.name)
}

// result says what a write did, for events and for counting writes.
type result string

const (
	unchanged result = "Unchanged"
	created   result = "Created"
	updated   result = "Updated"
	// migrated is a move of field ownership from the operator's earlier update writes to its apply manager.
	migrated result = "Migrated"
)

// apply makes the live object hold exactly the fields desired sets, through server-side apply under
// FieldManager, with owner as desired's controller. It reads live through the cache and writes only when
// the fields the operator owns differ from desired (in value, or because a field was added or removed),
// so a steady state costs no request. An existing object of another controller is refused, never taken
// over. existing, when set, runs on an object that exists and that the operator controls, before the
// comparison: it may adjust desired to the live object and returns fields of desired to leave out of the
// apply (a Deployment's replicas while the HPA owns them). Each write is passed to record.
func apply[T client.Object](ctx context.Context, c client.Client, owner client.Object, desired, live T,
	record func(result), existing func(live T) (omit [][]string, err error)) (T, error) {
	if err := controllerutil.SetControllerReference(owner, desired, c.Scheme()); err != nil {
		return live, err
	}
	err := c.Get(ctx, client.ObjectKeyFromObject(desired), live)
	if apierrors.IsNotFound(err) {
		cfg, err := applyConfiguration(desired, c.Scheme())
		if err != nil {
			return live, err
		}
		if err := serverSideApply(ctx, c, cfg, live); err != nil {
			return live, err
		}
		record(created)
		return live, nil
	}
	if err != nil {
		return live, err
	}
	if !metav1.IsControlledBy(live, owner) {
		gvk, _ := apiutil.GVKForObject(desired, c.Scheme())
		return live, errNotOwned{gvk.Kind, live.GetNamespace(), live.GetName()}
	}
	if done, err := migrateUpdateManagers(ctx, c, owner, live); err != nil {
		return live, err
	} else if done {
		record(migrated)
	}
	var omit [][]string
	if existing != nil {
		if omit, err = existing(live); err != nil {
			return live, err
		}
	}
	cfg, err := applyConfiguration(desired, c.Scheme(), omit...)
	if err != nil {
		return live, err
	}
	same, err := ownsExactly(live, cfg)
	if err != nil || same {
		return live, err
	}
	if err := serverSideApply(ctx, c, cfg, live); err != nil {
		return live, err
	}
	record(updated)
	return live, nil
}

// serverSideApply applies cfg under FieldManager, taking over fields other managers set (the operator's
// spec wins over a hand edit), and decodes the object the API server returns into out.
func serverSideApply(ctx context.Context, c client.Client, cfg *unstructured.Unstructured, out client.Object) error {
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(cfg), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return err
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(cfg.Object, out)
}

// applyConfiguration turns a built object into the apply configuration the operator sends: every field
// the builder set and nothing else. A typed object also carries empty values (a null creationTimestamp,
// an empty status, empty structs); they are dropped, as applying one would claim a field the operator does
// not set. The builders never mean anything by an empty object or list.
func applyConfiguration(obj client.Object, scheme *runtime.Scheme, omit ...[]string) (*unstructured.Unstructured, error) {
	gvk, err := apiutil.GVKForObject(obj, scheme)
	if err != nil {
		return nil, err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	for _, path := range omit {
		unstructured.RemoveNestedField(m, path...)
	}
	u := &unstructured.Unstructured{Object: prune(m).(map[string]any)}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

// prune drops nulls and empty maps and lists, recursively.
func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e = prune(e); e == nil {
				delete(x, k)
			} else {
				x[k] = e
			}
		}
		if len(x) == 0 {
			return nil
		}
	case []any:
		out := x[:0]
		for _, e := range x {
			if e = prune(e); e != nil {
				out = append(out, e)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	return v
}

// builtinTypes and deducedTypes read objects with their schema: Kubernetes' own kinds with client-go's copy of the
// API server's, others (KEDA's ScaledObject) by deduction, where maps merge by key and lists are atomic.
// That matches how the API server treats KEDA's CRD, whose lists are all atomic.
var (
	builtinTypes = applyconfigurations.NewTypeConverter(clientgoscheme.Scheme)
	deducedTypes = managedfields.NewDeducedTypeConverter()
)

// ownsExactly reports whether the fields FieldManager owns on live are exactly the fields of cfg, with
// cfg's values. A field the manager owns that cfg no longer sets (a removed arg, env var or volume) makes
// it false, as does a field cfg sets that another manager took over or changed, or a value that differs.
// Fields other managers own (the HPA's replicas, a user's annotation, defaults) are not looked at.
func ownsExactly(live client.Object, cfg *unstructured.Unstructured) (bool, error) {
	owned, ok := appliedFields(live, FieldManager)
	if !ok {
		return false, nil
	}
	gvk := cfg.GroupVersionKind()
	tc := deducedTypes
	if clientgoscheme.Scheme.Recognizes(gvk) {
		tc = builtinTypes
	}
	obj, ok := live.DeepCopyObject().(client.Object)
	if !ok {
		return false, fmt.Errorf("%T is not a client.Object", live)
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	// Only the operator's own controller reference is compared: the deduced schema treats the list as
	// atomic, and references others add to an object are theirs.
	var refs []metav1.OwnerReference
	if ctrlRef := metav1.GetControllerOfNoCopy(cfg); ctrlRef != nil {
		for _, r := range obj.GetOwnerReferences() {
			if r.UID == ctrlRef.UID {
				refs = append(refs, r)
			}
		}
	}
	obj.SetOwnerReferences(refs)
	liveTV, err := tc.ObjectToTyped(obj, typed.AllowDuplicates)
	if err != nil {
		return false, fmt.Errorf("reading %s %s: %w", gvk.Kind, live.GetName(), err)
	}
	// The API server never records these in a field set: they name the object.
	want := cfg.DeepCopy()
	delete(want.Object, "apiVersion")
	delete(want.Object, "kind")
	unstructured.RemoveNestedField(want.Object, "metadata", "name")
	unstructured.RemoveNestedField(want.Object, "metadata", "namespace")
	wantTV, err := typed.AsTyped(value.NewValueInterface(want.Object), liveTV.Schema(), liveTV.TypeRef())
	if err != nil {
		return false, fmt.Errorf("the %s the operator builds does not match its schema: %w", gvk.Kind, err)
	}
	cmp, err := liveTV.ExtractItems(owned.Leaves()).Compare(wantTV)
	if err != nil {
		return false, err
	}
	return cmp.IsSame(), nil
}

// appliedFields is the set of fields manager owns on obj through apply.
func appliedFields(obj client.Object, manager string) (*fieldpath.Set, bool) {
	for _, e := range obj.GetManagedFields() {
		if e.Manager == manager && e.Operation == metav1.ManagedFieldsOperationApply && e.Subresource == "" && e.FieldsV1 != nil {
			set := &fieldpath.Set{}
			if err := set.FromJSON(bytes.NewReader(e.FieldsV1.Raw)); err != nil {
				return nil, false
			}
			return set, true
		}
	}
	return nil, false
}

// ownsField reports whether manager owns the field at path on obj through apply.
func ownsField(obj client.Object, manager string, path ...any) bool {
	set, ok := appliedFields(obj, manager)
	return ok && set.Has(fieldpath.MakePathOrDie(path...))
}

// migrateUpdateManagers moves the fields that earlier versions of the operator wrote with create and update
// (recorded under a manager named after their binary, with operation Update) to FieldManager, as
// client-go's csaupgrade does for kubectl. Without it those fields would stay owned by a manager that no
// longer writes, and removing them from the spec would never remove them from the object. Such a manager
// is recognised by what only the operator writes: the controller reference to owner. Other managers (a
// user's kubectl edit, the HPA, the deployment controller) keep their fields. The patch is conditional on
// the resourceVersion read, so a concurrent write makes it fail with a conflict and the reconcile retries.
func migrateUpdateManagers(ctx context.Context, c client.Client, owner, live client.Object) (bool, error) {
	controllerRef := fieldpath.MakePathOrDie("metadata", "ownerReferences", fieldpath.KeyByFields("uid", string(owner.GetUID())))
	legacy := sets.New[string]()
	for _, e := range live.GetManagedFields() {
		if e.Operation != metav1.ManagedFieldsOperationUpdate || e.Subresource != "" || e.FieldsV1 == nil {
			continue
		}
		set := &fieldpath.Set{}
		if err := set.FromJSON(bytes.NewReader(e.FieldsV1.Raw)); err == nil && set.Has(controllerRef) {
			legacy.Insert(e.Manager)
		}
	}
	if legacy.Len() == 0 {
		return false, nil
	}
	patch, err := csaupgrade.UpgradeManagedFieldsPatch(live, legacy, FieldManager)
	if err != nil || patch == nil {
		return false, err
	}
	if err := c.Patch(ctx, live, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		return false, err
	}
	return true, nil
}
