package controllers

import (
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/utils/ptr"
	inferencev1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/epp"
)

func routed(f func(*v1alpha1.RouterSpec)) *v1alpha1.LLMInferenceService {
	return svcWith(func(s *v1alpha1.LLMInferenceService) {
		s.Spec.Router = &v1alpha1.RouterSpec{}
		if f != nil {
			f(s.Spec.Router)
		}
	})
}

func TestBuildInferencePool(t *testing.T) {
	p := BuildInferencePool(routed(func(r *v1alpha1.RouterSpec) { r.FailureMode = v1alpha1.FailOpen }))
	if p.Name != "m" || p.Namespace != "ns" {
		t.Errorf("pool %s/%s, want ns/m", p.Namespace, p.Name)
	}
	for k, v := range contract.SelectorLabels("m") {
		if p.Spec.Selector.MatchLabels[inferencev1.LabelKey(k)] != inferencev1.LabelValue(v) {
			t.Errorf("selector %v lacks the server pods' %s=%s", p.Spec.Selector.MatchLabels, k, v)
		}
	}
	if len(p.Spec.Selector.MatchLabels) != len(contract.SelectorLabels("m")) {
		t.Errorf("selector %v selects more than the service's own Service does", p.Spec.Selector.MatchLabels)
	}
	if len(p.Spec.TargetPorts) != 1 || p.Spec.TargetPorts[0].Number != 8000 {
		t.Errorf("target ports %v, want vLLM's 8000", p.Spec.TargetPorts)
	}
	ref := p.Spec.EndpointPickerRef
	if ref == nil || ref.Kind != "Service" || ref.Name != "m-epp" || ref.Port == nil || ref.Port.Number != epp.PortGRPC ||
		ref.FailureMode != inferencev1.EndpointPickerFailOpen {
		t.Errorf("endpoint picker ref %+v", ref)
	}
	if got := BuildInferencePool(routed(nil)).Spec.EndpointPickerRef.FailureMode; got != inferencev1.EndpointPickerFailClose {
		t.Errorf("an unset failure mode gives %s, want the CRD's default FailClose", got)
	}
}

// The picker's Role reads its pods and pool in its own namespace and writes nothing.
func TestBuildPickerRoleIsReadOnly(t *testing.T) {
	role := BuildPickerRole(routed(nil))
	if role.Namespace != "ns" {
		t.Errorf("role namespace %q", role.Namespace)
	}
	var resources []string
	for _, rule := range role.Rules {
		for _, v := range rule.Verbs {
			if !slices.Contains([]string{"get", "list", "watch"}, v) {
				t.Errorf("rule %+v grants %q", rule, v)
			}
		}
		if len(rule.ResourceNames) != 0 || slices.Contains(rule.Resources, "*") || slices.Contains(rule.APIGroups, "*") {
			t.Errorf("rule %+v is broader than named resources", rule)
		}
		resources = append(resources, rule.Resources...)
	}
	for _, want := range []string{"pods", "inferencepools"} {
		if !slices.Contains(resources, want) {
			t.Errorf("role reads %v, lacks %s", resources, want)
		}
	}
	b := BuildPickerRoleBinding(routed(nil))
	if b.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "m-epp"}) || len(b.Subjects) != 1 ||
		b.Subjects[0].Name != BuildPickerServiceAccount(routed(nil)).Name || b.Subjects[0].Namespace != "ns" {
		t.Errorf("role binding %+v", b)
	}
}

func TestPickerScoringConfig(t *testing.T) {
	cases := []struct {
		name     string
		scoring  v1alpha1.RouterScoring
		contains []string
		lacks    []string
	}{
		{"defaults", v1alpha1.RouterScoring{}, []string{
			"pluginRef: queue-scorer\n    weight: 2", "pluginRef: kv-cache-utilization-scorer\n    weight: 2",
			"pluginRef: prefix-cache-scorer\n    weight: 3", "pluginRef: " + epp.MaxScore}, nil},
		{"weights from the CR, 0 leaves a scorer out",
			v1alpha1.RouterScoring{QueueWeight: ptr.To[int32](5), PrefixCacheWeight: ptr.To[int32](0), Picker: v1alpha1.PickerWeightedRandom},
			[]string{"pluginRef: queue-scorer\n    weight: 5", "pluginRef: kv-cache-utilization-scorer\n    weight: 2", "pluginRef: " + epp.WeightedRandom},
			[]string{"prefix-cache-scorer", epp.MaxScore}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := routed(func(r *v1alpha1.RouterSpec) { r.Scoring = c.scoring })
			if err := Scoring(s.Spec.Router).Validate(); err != nil {
				t.Fatal(err)
			}
			cfg := BuildPickerConfigMap(s).Data[pickerConfigKey]
			for _, want := range c.contains {
				if !strings.Contains(cfg, want) {
					t.Errorf("config lacks %q:\n%s", want, cfg)
				}
			}
			for _, no := range c.lacks {
				if strings.Contains(cfg, no) {
					t.Errorf("config has %q:\n%s", no, cfg)
				}
			}
		})
	}
}

// The picker reads its configuration once, at startup: a change of weights changes its pod template, which
// rolls it.
func TestPickerDeploymentRollsOnScoringChange(t *testing.T) {
	a := BuildPickerDeployment(routed(nil), DefaultEPPImage)
	b := BuildPickerDeployment(routed(func(r *v1alpha1.RouterSpec) { r.Scoring.KVCacheWeight = ptr.To[int32](7) }), DefaultEPPImage)
	if a.Spec.Template.Annotations[pickerConfigHash] == b.Spec.Template.Annotations[pickerConfigHash] {
		t.Error("a weight change leaves the pod template unchanged")
	}
	c := a.Spec.Template.Spec.Containers[0]
	if c.Image != DefaultEPPImage {
		t.Errorf("image %q", c.Image)
	}
	for _, want := range []string{"--pool-name=m", "--pool-namespace=ns", "--config-file=" + pickerConfigDir + "/" + pickerConfigKey} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %q lack %q", c.Args, want)
		}
	}
	if a.Spec.Template.Spec.ServiceAccountName != "m-epp" {
		t.Errorf("service account %q", a.Spec.Template.Spec.ServiceAccountName)
	}
	for k, v := range a.Spec.Selector.MatchLabels {
		if a.Spec.Template.Labels[k] != v {
			t.Errorf("template labels %v do not match the selector %v", a.Spec.Template.Labels, a.Spec.Selector.MatchLabels)
		}
	}
	// The picker's pods must never be taken for model servers: not by the service's Service, its
	// InferencePool or the scaler.
	if a.Spec.Template.Labels[contract.LabelName] == contract.SelectorLabels("m")[contract.LabelName] {
		t.Errorf("picker pods carry the model servers' %s", contract.LabelName)
	}
	svc := BuildPickerService(routed(nil))
	if svc.Name != string(BuildInferencePool(routed(nil)).Spec.EndpointPickerRef.Name) || svc.Spec.Ports[0].Port != epp.PortGRPC {
		t.Errorf("picker service %s ports %+v does not match the pool's endpointPickerRef", svc.Name, svc.Spec.Ports)
	}
}

func TestBuildHTTPRoute(t *testing.T) {
	r := BuildHTTPRoute(routed(nil), v1alpha1.GatewayRef{Name: "gw"})
	p := r.Spec.ParentRefs[0]
	if p.Name != "gw" || p.Namespace == nil || *p.Namespace != "ns" {
		t.Errorf("parent %+v, want the service's namespace for a Gateway named without one", p)
	}
	if r = BuildHTTPRoute(routed(nil), v1alpha1.GatewayRef{Name: "gw", Namespace: "infra"}); *r.Spec.ParentRefs[0].Namespace != "infra" {
		t.Errorf("parent %+v", r.Spec.ParentRefs[0])
	}
	be := r.Spec.Rules[0].BackendRefs[0]
	if *be.Group != inferencev1.GroupName || *be.Kind != "InferencePool" || be.Name != "m" {
		t.Errorf("backend %+v, want InferencePool m", be.BackendObjectReference)
	}
}
