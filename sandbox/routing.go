package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	inferencev1 "sigs.k8s.io/gateway-api-inference-extension/api/v1"

	"github.com/llm-d/llm-d/localcluster"
	"github.com/llm-d/llm-d/localcluster/gateway"
)

// hostFlags are the picker's flags that RunPicker sets itself: kwok's pods share the machine's network, so
// each picker takes free ports; its configuration file is written where the host process reads it; its
// pool is the one it is started for.
var hostFlags = []string{"--grpc-port", "--grpc-health-port", "--metrics-port", "--config-file", "--pool-name", "--pool-namespace"}

// RunPicker does for the endpoint picker that the InferencePool ns/name names what a kubelet does for its
// pod: it runs the container of the picker's Deployment (the Gateway API Inference Extension's cmd/epp, built
// by hack/tools.sh) as a host process, with the Deployment's flags, the configuration file from the
// ConfigMap it mounts, and the identity of its ServiceAccount, so that the picker reads the cluster with
// exactly the permissions the operator's Role grants it. The stack must run with Options.Routing.
func (s *Stack) RunPicker(ctx context.Context, ns, name string) (*localcluster.EPP, error) {
	c := s.Cluster.Client
	pool := &inferencev1.InferencePool{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pool); err != nil {
		return nil, fmt.Errorf("the InferencePool: %w", err)
	}
	if pool.Spec.EndpointPickerRef == nil {
		return nil, fmt.Errorf("InferencePool %s/%s names no endpoint picker", ns, name)
	}
	dep := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: string(pool.Spec.EndpointPickerRef.Name)}, dep); err != nil {
		return nil, fmt.Errorf("the picker's Deployment: %w", err)
	}
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		return nil, fmt.Errorf("the picker's Deployment %s has %d containers, want 1", dep.Name, len(pod.Containers))
	}
	ctr := pod.Containers[0]
	config, err := mountedFile(ctx, c, ns, pod, ctr, flagValue(ctr.Args, "--config-file"))
	if err != nil {
		return nil, err
	}
	kubeconfig, err := s.Cluster.ServiceAccountKubeconfig(ns, pod.ServiceAccountName)
	if err != nil {
		return nil, err
	}
	var args []string
	for _, a := range ctr.Args {
		if !slices.Contains(hostFlags, strings.SplitN(a, "=", 2)[0]) {
			args = append(args, a)
		}
	}
	return s.Cluster.StartEPP(ctx, localcluster.EPPOptions{
		Pool: types.NamespacedName{Namespace: ns, Name: name}, Config: config, Kubeconfig: kubeconfig, Args: args,
	})
}

// flagValue is the value of --name=value in args, or "".
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// mountedFile reads file as ctr sees it: a key of a ConfigMap volume mounted at its directory.
func mountedFile(ctx context.Context, c client.Client, ns string, pod corev1.PodSpec, ctr corev1.Container, file string) (string, error) {
	if file == "" {
		return "", errors.New("the picker's container has no --config-file")
	}
	dir, key := path.Split(file)
	for _, m := range ctr.VolumeMounts {
		if path.Clean(m.MountPath) != path.Clean(dir) {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			cm := &corev1.ConfigMap{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: v.ConfigMap.Name}, cm); err != nil {
				return "", fmt.Errorf("the picker's ConfigMap: %w", err)
			}
			data, ok := cm.Data[key]
			if !ok {
				return "", fmt.Errorf("ConfigMap %s/%s has no key %s", ns, cm.Name, key)
			}
			return data, nil
		}
	}
	return "", fmt.Errorf("no ConfigMap volume is mounted at %s, where the picker reads %s", dir, file)
}

// Gateway serves the InferencePool ns/name through the test gateway (package localcluster/gateway), whose
// endpoint picker is picker, and returns it and its base URL for OpenAI clients: the routed counterpart of
// FrontDoor. It watches the pool until ctx ends; Stop closes its listener, the caller the gateway.
func (s *Stack) Gateway(ctx context.Context, ns, name string, picker *localcluster.EPP) (*gateway.Gateway, string, error) {
	pool := &inferencev1.InferencePool{}
	if err := s.Cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pool); err != nil {
		return nil, "", fmt.Errorf("the InferencePool: %w", err)
	}
	pickerName := pool.Spec.EndpointPickerRef.Name
	gw, err := gateway.New(ctx, s.Cluster.Config, gateway.Config{
		Pool: types.NamespacedName{Namespace: ns, Name: name},
		ResolvePicker: func(refNS string, ref inferencev1.EndpointPickerRef) (string, error) {
			if refNS != ns || ref.Name != pickerName {
				return "", fmt.Errorf("no picker Service %s/%s runs here", refNS, ref.Name)
			}
			return picker.GRPCAddr, nil
		},
		Log: logr.Discard(),
	})
	if err != nil {
		return nil, "", err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = gw.Close()
		return nil, "", err
	}
	hs := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(lis) }()
	s.mu.Lock()
	s.doors = append(s.doors, hs)
	s.mu.Unlock()
	return gw, "http://" + lis.Addr().String(), nil
}
