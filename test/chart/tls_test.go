package chart

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestMutualTLSGenerated checks the certificates the chart generates: one CA signs the scaler's serving
// certificate (valid for every name KEDA may dial) and KEDA's client certificate, the scaler requires
// client certificates, and the operator names KEDA's Secret.
func TestMutualTLSGenerated(t *testing.T) {
	objs := render(t, tlsOn)
	server := find(t, objs, "Secret", "llm-d-tls-scaler-tls")
	client := find(t, objs, "Secret", "llm-d-tls-scaler-client-tls")
	if server.GetNamespace() != "llm-d-tls" || client.GetNamespace() != "keda-tls" {
		t.Errorf("namespaces: server %s, client %s", server.GetNamespace(), client.GetNamespace())
	}
	ca := cert(t, client, "ca.crt")
	if !ca.Equal(cert(t, server, "ca.crt")) {
		t.Fatal("the two Secrets carry different CAs")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	srv := cert(t, server, "tls.crt")
	for _, name := range []string{"llm-d-tls-scaler.llm-d-tls.svc", "llm-d-tls-scaler.llm-d-tls.svc.cluster.local"} {
		if _, err := srv.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
	if _, err := cert(t, client, "tls.crt").Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("KEDA's client certificate: %v", err)
	}

	args := strings.Join(containerArgs(t, find(t, objs, "Deployment", "llm-d-tls-scaler")), " ")
	for _, want := range []string{"--tls-cert-file=/etc/llm-d/tls/tls.crt", "--tls-key-file=/etc/llm-d/tls/tls.key", "--tls-client-ca-file=/etc/llm-d/tls/ca.crt"} {
		if !strings.Contains(args, want) {
			t.Errorf("scaler args lack %s: %s", want, args)
		}
	}
	if op := containerArgs(t, find(t, objs, "Deployment", "llm-d-tls-operator")); !slices.Contains(op, "--scaler-tls-secret=llm-d-tls-scaler-client-tls") {
		t.Errorf("operator args: %v", op)
	}
}

func TestMutualTLSCertManagerAndExisting(t *testing.T) {
	cm := render(t, valueSet{"cert-manager", "llm-d", "llm-d-system", []string{
		"scaler.tls.enabled=true", "scaler.tls.source=certManager", "scaler.tls.certManager.issuerRef.name=internal-ca"}})
	for _, name := range []string{"llm-d-scaler-tls", "llm-d-scaler-client-tls"} {
		c := find(t, cm, "Certificate", name)
		if ref, _, _ := unstructured.NestedString(c.Object, "spec", "issuerRef", "name"); ref != "internal-ca" {
			t.Errorf("%s issuer %q", name, ref)
		}
		if sn, _, _ := unstructured.NestedString(c.Object, "spec", "secretName"); sn != name {
			t.Errorf("%s secretName %q", name, sn)
		}
	}
	for _, o := range cm {
		if o.GetKind() == "Secret" {
			t.Errorf("cert-manager mode renders Secret %s", o.GetName())
		}
	}
	if out, err := helm(t, "template", "llm-d", chartDir, "--set", "scaler.tls.enabled=true", "--set", "scaler.tls.source=certManager"); err == nil ||
		!strings.Contains(out, "scaler.tls.certManager.issuerRef.name is required") {
		t.Errorf("cert-manager without an issuer: %v\n%s", err, out)
	}

	ex := render(t, valueSet{"existing", "llm-d", "llm-d-system", []string{"scaler.tls.enabled=true", "scaler.tls.source=existing",
		"scaler.tls.existing.serverSecret=my-scaler-tls", "scaler.tls.existing.clientSecret=my-keda-client"}})
	vols, _, _ := unstructured.NestedSlice(find(t, ex, "Deployment", "llm-d-scaler").Object, "spec", "template", "spec", "volumes")
	if secret, _, _ := unstructured.NestedString(vols[0].(map[string]any), "secret", "secretName"); len(vols) != 1 || secret != "my-scaler-tls" {
		t.Errorf("scaler volumes %v", vols)
	}
	if !slices.Contains(containerArgs(t, find(t, ex, "Deployment", "llm-d-operator")), "--scaler-tls-secret=my-keda-client") {
		t.Error("operator does not name the existing client Secret")
	}
}

func cert(t *testing.T, secret *unstructured.Unstructured, key string) *x509.Certificate {
	t.Helper()
	b64, _, _ := unstructured.NestedString(secret.Object, "data", key)
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("%s %s: %v", secret.GetName(), key, err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatalf("%s %s: no PEM", secret.GetName(), key)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s %s: %v", secret.GetName(), key, err)
	}
	return c
}
