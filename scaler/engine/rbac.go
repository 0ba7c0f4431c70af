package engine

// The scaler's permissions, generated into config/rbac/scaler by `make manifests`: it reads services,
// pools, and the operator's Deployments, ReplicaSets and pods (to find ready pods and their IPs), and
// writes only status.autoscaler and events.
//
// +kubebuilder:rbac:groups=inference.llm-d.ai,resources=llminferenceservices;llminferencepools,verbs=get;list;watch
// +kubebuilder:rbac:groups=inference.llm-d.ai,resources=llminferenceservices/status,verbs=patch
// +kubebuilder:rbac:groups=apps,resources=deployments;replicasets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
