// Package scheme registers the kinds a client of a cluster running llm-d reads and writes: Kubernetes',
// llm-d's and KEDA's.
package scheme

import (
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/llm-d/llm-d/api/v1alpha1"
)

// New returns a scheme with Kubernetes', llm-d's and KEDA's kinds.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	utilruntime.Must(kedav1alpha1.AddToScheme(s))
	return s
}
