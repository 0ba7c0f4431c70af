package mtls_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/llm-d/llm-d/scaler/mtls"
)

type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *ca {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &ca{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM cert and key for name, usable as server (DNS/IP SANs) and client.
func (c *ca) issue(t *testing.T, name string, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{name}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	// Written beside and renamed, as the kubelet swaps a Secret volume's files.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// serve starts a gRPC server (health service only) with the mutual-TLS configuration on 127.0.0.1.
func serve(t *testing.T, files mtls.Files, onError func(error)) string {
	t.Helper()
	cfg, err := mtls.ServerConfig(files, onError)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// call makes one health call as KEDA's client would (its TLS config from CA, cert and key PEM).
func call(t *testing.T, addr string, roots *x509.CertPool, client *tls.Certificate) error {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots, ServerName: "llm-d-scaler.llm-d-system.svc", MinVersion: tls.VersionTLS12}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	root := newCA(t, "llm-d-ca")
	files := mtls.Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), ClientCA: filepath.Join(dir, "ca.crt")}
	crt, key := root.issue(t, "llm-d-scaler.llm-d-system.svc", 2)
	write(t, files.Cert, crt)
	write(t, files.Key, key)
	write(t, files.ClientCA, root.pem)
	var reloadErrs []error
	addr := serve(t, files, func(err error) { reloadErrs = append(reloadErrs, err) })

	roots := x509.NewCertPool()
	roots.AddCert(root.cert)
	kedaCrt, kedaKey := root.issue(t, "keda-operator", 3)
	keda, err := tls.X509KeyPair(kedaCrt, kedaKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := call(t, addr, roots, &keda); err != nil {
		t.Fatalf("a client with a certificate of the CA was refused: %v", err)
	}

	if err := call(t, addr, roots, nil); status.Code(err) != codes.Unavailable {
		t.Errorf("a client without a certificate: %v, want Unavailable (handshake refused)", err)
	}
	other := newCA(t, "someone-else")
	strangerCrt, strangerKey := other.issue(t, "keda-operator", 4)
	stranger, _ := tls.X509KeyPair(strangerCrt, strangerKey)
	if err := call(t, addr, roots, &stranger); status.Code(err) != codes.Unavailable {
		t.Errorf("a client certificate from another CA: %v, want Unavailable", err)
	}

	// Rotation: a new CA and server certificate written in place are used by the next connection.
	next := newCA(t, "llm-d-ca-2")
	crt2, key2 := next.issue(t, "llm-d-scaler.llm-d-system.svc", 5)
	later := time.Now().Add(time.Second) // mod times must differ even on coarse file systems
	write(t, files.Cert, crt2)
	write(t, files.Key, key2)
	write(t, files.ClientCA, next.pem)
	for _, f := range []string{files.Cert, files.Key, files.ClientCA} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	roots2 := x509.NewCertPool()
	roots2.AddCert(next.cert)
	keda2Crt, keda2Key := next.issue(t, "keda-operator", 6)
	keda2, _ := tls.X509KeyPair(keda2Crt, keda2Key)
	if err := call(t, addr, roots2, &keda2); err != nil {
		t.Fatalf("after rotation, a client of the new CA was refused: %v", err)
	}
	if err := call(t, addr, roots, &keda); status.Code(err) != codes.Unavailable {
		t.Errorf("after rotation, the old CA's client: %v, want Unavailable", err)
	}

	// A broken rotation (garbage key) keeps the working certificates and says why.
	write(t, files.Key, []byte("not a key"))
	if err := os.Chtimes(files.Key, later.Add(time.Second), later.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := call(t, addr, roots2, &keda2); err != nil {
		t.Fatalf("a broken rotation took the server down: %v", err)
	}
	if len(reloadErrs) == 0 || !strings.Contains(reloadErrs[len(reloadErrs)-1].Error(), "tls.key") {
		t.Errorf("broken rotation not reported: %v", reloadErrs)
	}
}

func TestFilesValidate(t *testing.T) {
	if err := (mtls.Files{Cert: "a", Key: "b"}).Validate(); err == nil || !strings.Contains(err.Error(), "--tls-client-ca-file") {
		t.Errorf("partial set accepted: %v", err)
	}
	if err := (mtls.Files{}).Validate(); err != nil {
		t.Error(err)
	}
	if _, err := mtls.ServerConfig(mtls.Files{Cert: "/nonexistent/tls.crt", Key: "/nonexistent/tls.key", ClientCA: "/nonexistent/ca.crt"}, nil); err == nil {
		t.Error("missing files accepted")
	}
}
