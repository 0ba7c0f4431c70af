// Package scheme registers the kinds a client of a cluster running llm-d reads and writes: Kubernetes',
// llm-d's, KEDA's, the Gateway API Inference Extension's InferencePool and the Gateway API's.
package scheme

import (
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	inferencev1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/llm-d/llm-d/api/v1alpha1"
)

// New returns a scheme with Kubernetes', llm-d's, KEDA's, the Gateway API Inference Extension's and the Gateway API's kinds.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	utilruntime.Must(kedav1alpha1.AddToScheme(s))
	utilruntime.Must(inferencev1.Install(s))
	utilruntime.Must(gatewayv1.Install(s))
	return s
}
