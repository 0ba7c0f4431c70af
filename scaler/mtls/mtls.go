// Package mtls is the scaler's side of mutual TLS with KEDA: a server configuration that accepts only
// clients whose certificate the configured CA signed, and that picks up renewed files (cert-manager rotates
// them in place) without a restart.
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Files name the PEM files of the server's certificate and key and of the CA that signs client certificates.
type Files struct {
	Cert, Key, ClientCA string
}

// Enabled reports whether any file is named; Validate says whether the set is complete.
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" || f.ClientCA != "" }

// Validate reports a partial set: TLS without client verification is not a mode the scaler offers.
func (f Files) Validate() error {
	if f.Enabled() && (f.Cert == "" || f.Key == "" || f.ClientCA == "") {
		return errors.New("--tls-cert-file, --tls-key-file and --tls-client-ca-file go together: give all three for mutual TLS, or none")
	}
	return nil
}

// ServerConfig loads the files and returns a configuration that requires and verifies a client certificate
// on every connection. Each handshake checks whether the files changed (one stat each) and reloads them; a
// reload that fails keeps the previous certificates and is reported to onError, so a half-written rotation
// never takes the scaler off the air.
func ServerConfig(f Files, onError func(error)) (*tls.Config, error) {
	r := &reloader{files: f, onError: onError}
	if err := r.load(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return r.current(), nil },
	}, nil
}

type reloader struct {
	files   Files
	onError func(error)

	mu      sync.Mutex
	cfg     *tls.Config
	modTime [3]time.Time
}

func (r *reloader) current() *tls.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	if mt, err := r.modTimes(); err == nil && mt != r.modTime {
		if err := r.loadLocked(); err != nil && r.onError != nil {
			r.onError(err)
		}
	}
	return r.cfg
}

func (r *reloader) load() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loadLocked()
}

func (r *reloader) loadLocked() error {
	mt, err := r.modTimes()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
	if err != nil {
		return fmt.Errorf("loading the scaler's TLS certificate %s and key %s: %w", r.files.Cert, r.files.Key, err)
	}
	pem, err := os.ReadFile(r.files.ClientCA)
	if err != nil {
		return fmt.Errorf("reading the client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("the client CA file %s holds no PEM certificate", r.files.ClientCA)
	}
	r.cfg = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"h2"},
	}
	// Remember the times seen before reading, so a write during the read triggers one more reload.
	r.modTime = mt
	return nil
}

func (r *reloader) modTimes() ([3]time.Time, error) {
	var mt [3]time.Time
	for i, name := range []string{r.files.Cert, r.files.Key, r.files.ClientCA} {
		fi, err := os.Stat(name)
		if err != nil {
			return mt, fmt.Errorf("reading TLS file: %w", err)
		}
		mt[i] = fi.ModTime()
	}
	return mt, nil
}
