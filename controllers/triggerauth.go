package controllers

import (
	"context"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/api/contract"
)

const (
	// TriggerAuthenticationName names the ClusterTriggerAuthentication every ScaledObject's trigger refers
	// to when the scaler requires mutual TLS.
	TriggerAuthenticationName = "llm-d-scaler"
	// MetadataEnableTLS tells KEDA's external scaler client to dial the scaler over TLS.
	MetadataEnableTLS = "enableTLS"
)

// BuildTriggerAuthentication builds the credentials KEDA presents to the scaler: the CA that signed the
// scaler's serving certificate and KEDA's client certificate and key, all from one Secret in KEDA's own
// namespace (where KEDA reads a ClusterTriggerAuthentication's Secrets). It is cluster-scoped so that one
// Secret serves the services of every namespace: the operator never copies or reads a key.
func BuildTriggerAuthentication(cfg Config) *kedav1alpha1.ClusterTriggerAuthentication {
	ref := func(param, key string) kedav1alpha1.AuthSecretTargetRef {
		return kedav1alpha1.AuthSecretTargetRef{Parameter: param, Name: cfg.ScalerTLSSecret, Key: key}
	}
	return &kedav1alpha1.ClusterTriggerAuthentication{
		ObjectMeta: metav1.ObjectMeta{
			Name:   TriggerAuthenticationName,
			Labels: map[string]string{contract.LabelManagedBy: contract.ManagedByValue, LabelPartOf: "llm-d", LabelComponent: "autoscaler"},
		},
		Spec: kedav1alpha1.TriggerAuthenticationSpec{SecretTargetRef: []kedav1alpha1.AuthSecretTargetRef{
			ref("caCert", "ca.crt"), ref("tlsClientCert", "tls.crt"), ref("tlsClientKey", "tls.key"),
		}},
	}
}

// +kubebuilder:rbac:groups=keda.sh,resources=clustertriggerauthentications,verbs=get;list;watch;create;update

// ensureTriggerAuthentication creates or repairs the ClusterTriggerAuthentication. It has no owner (a
// cluster-scoped object cannot be owned by a namespaced one), so it outlives services and is kept by label:
// one made by someone else is refused, not taken over.
func ensureTriggerAuthentication(ctx context.Context, c client.Client, cfg Config) (result, error) {
	desired := BuildTriggerAuthentication(cfg)
	live := &kedav1alpha1.ClusterTriggerAuthentication{}
	err := c.Get(ctx, client.ObjectKeyFromObject(desired), live)
	if apierrors.IsNotFound(err) {
		return created, c.Create(ctx, desired, client.FieldOwner(FieldManager))
	}
	if err != nil {
		return unchanged, err
	}
	if live.Labels[contract.LabelManagedBy] != contract.ManagedByValue {
		return unchanged, errNotOwned{"ClusterTriggerAuthentication", "", live.Name}
	}
	if equality.Semantic.DeepEqual(desired.Spec.SecretTargetRef, live.Spec.SecretTargetRef) &&
		live.Spec.PodIdentity == nil && len(live.Spec.Env) == 0 && live.Spec.HashiCorpVault == nil {
		return unchanged, nil
	}
	live.Spec = desired.Spec
	return updated, c.Update(ctx, live, client.FieldOwner(FieldManager))
}
