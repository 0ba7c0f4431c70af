package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/llm-d/llm-d/api/contract"
)

// testConfig runs fast servers that are ready at once.
func testConfig() Config {
	c := DefaultConfig()
	c.Server.Model = "default-model"
	c.Server.Params.StartupDelay = 0
	c.Server.Speed = 50
	c.ShutdownTimeout = 5 * time.Second
	return c
}

// testPod is a Running, Ready pod of service at ip, shaped as the operator makes them.
func testPod(namespace, name, service, ip string, args ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name, UID: types.UID("uid-" + name),
			Labels: map[string]string{contract.LabelManagedBy: contract.ManagedByValue, contract.LabelInstance: service, contract.LabelName: contract.NameVLLM},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "vllm", Image: "vllm/vllm-openai", Args: args,
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8000}},
		}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

var httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// modelAt asks the server at addr for its model, as a client would.
func modelAt(addr string) (string, error) {
	resp, err := httpClient.Get("http://" + addr + "/v1/models")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Data) != 1 {
		return "", fmt.Errorf("GET /v1/models: %s, %v", resp.Status, err)
	}
	return list.Data[0].ID, nil
}

// refused reports nil once nothing listens at addr any more.
func refused(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s still accepts connections", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("dialing %s: %v, want connection refused", addr, err)
	}
	return nil
}

func newFleet(t *testing.T, cfg Config) *Fleet {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
