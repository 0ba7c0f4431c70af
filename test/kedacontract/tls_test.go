package kedacontract

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
	pb "github.com/llm-d/llm-d/proto/externalscaler"
	"github.com/llm-d/llm-d/scaler/mtls"
	"github.com/llm-d/llm-d/scaler/mtls/mtlstest"
	"github.com/llm-d/llm-d/scaler/server"
)

// TestMutualTLS: KEDA's own client, configured from the trigger and the ClusterTriggerAuthentication our
// operator writes (with the Secret's keys resolved into auth parameters, as KEDA resolves them), talks to
// the scaler over mutual TLS; the same client without its certificate is refused.
func TestMutualTLS(t *testing.T) {
	ca, err := mtlstest.NewCA("llm-d-scaler-ca")
	if err != nil {
		t.Fatal(err)
	}
	srvCrt, srvKey, err := ca.Issue("llm-d-scaler.llm-d-system.svc")
	if err != nil {
		t.Fatal(err)
	}
	kedaCrt, kedaKey, err := ca.Issue("keda-operator")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := mtls.Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), ClientCA: filepath.Join(dir, "ca.crt")}
	for f, data := range map[string][]byte{files.Cert: srvCrt, files.Key: srvKey, files.ClientCA: ca.PEM} {
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := mtls.ServerConfig(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := newSource()
	src.set("llama-tls", 3)
	addr := serveTLS(t, cfg, src)

	// The ScaledObject the operator writes with mutual TLS on.
	so := scaledObject("llama-tls", addr)
	opCfg := controllers.Config{ScalerAddress: addr, ScalerTLSSecret: "llm-d-scaler-client-tls"}
	svc := &v1alpha1.LLMInferenceService{ObjectMeta: so.ObjectMeta, Spec: v1alpha1.LLMInferenceServiceSpec{
		Autoscaling: &v1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: 1, MaxReplicas: 20}}}
	so.Spec = controllers.BuildScaledObject(svc, opCfg).Spec
	secret := map[string]string{"ca.crt": string(ca.PEM), "tls.crt": string(kedaCrt), "tls.key": string(kedaKey)}

	withCert := kedaConfig(t, so)
	for _, ref := range controllers.BuildTriggerAuthentication(opCfg).Spec.SecretTargetRef {
		withCert.AuthParams[ref.Parameter] = secret[ref.Key]
	}
	s := newKEDAScaler(t, withCert)
	if v, _ := value(t, s, wantMetricName()); v.Value.Value() != 3 {
		t.Errorf("over mutual TLS KEDA read %v, want 3", v.Value.String())
	}

	noCert := kedaConfig(t, so)
	noCert.AuthParams["caCert"] = secret["ca.crt"] // trusts the scaler, presents nothing
	s2 := newKEDAScaler(t, noCert)
	if _, _, err := s2.GetMetricsAndActivity(kedaCtx(t), wantMetricName()); err == nil {
		t.Error("KEDA without a client certificate was answered")
	}
}

func serveTLS(t *testing.T, cfg *tls.Config, src server.Source) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	pb.RegisterExternalScalerServer(gs, &server.Server{Source: src})
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}
