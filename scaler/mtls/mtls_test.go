package mtls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"github.com/llm-d/llm-d/scaler/mtls/mtlstest"
)

func newCA(t *testing.T, name string) *mtlstest.CA {
	t.Helper()
	c, err := mtlstest.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func issue(t *testing.T, c *mtlstest.CA, name string) (certPEM, keyPEM []byte) {
	t.Helper()
	crt, key, err := c.Issue(name)
	if err != nil {
		t.Fatal(err)
	}
	return crt, key
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
	crt, key := issue(t, root, "llm-d-scaler.llm-d-system.svc")
	write(t, files.Cert, crt)
	write(t, files.Key, key)
	write(t, files.ClientCA, root.PEM)
	var reloadErrs []error
	addr := serve(t, files, func(err error) { reloadErrs = append(reloadErrs, err) })

	roots := x509.NewCertPool()
	roots.AddCert(root.Cert)
	kedaCrt, kedaKey := issue(t, root, "keda-operator")
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
	strangerCrt, strangerKey := issue(t, other, "keda-operator")
	stranger, _ := tls.X509KeyPair(strangerCrt, strangerKey)
	if err := call(t, addr, roots, &stranger); status.Code(err) != codes.Unavailable {
		t.Errorf("a client certificate from another CA: %v, want Unavailable", err)
	}

	// Rotation: a new CA and server certificate written in place are used by the next connection.
	next := newCA(t, "llm-d-ca-2")
	crt2, key2 := issue(t, next, "llm-d-scaler.llm-d-system.svc")
	later := time.Now().Add(time.Second) // mod times must differ even on coarse file systems
	write(t, files.Cert, crt2)
	write(t, files.Key, key2)
	write(t, files.ClientCA, next.PEM)
	for _, f := range []string{files.Cert, files.Key, files.ClientCA} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	roots2 := x509.NewCertPool()
	roots2.AddCert(next.Cert)
	keda2Crt, keda2Key := issue(t, next, "keda-operator")
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
