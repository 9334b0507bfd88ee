// Package tlsconfig serves TLS configurations built from certificate, key
// and CA files that may be replaced while the process runs (cert-manager
// rotating a mounted Secret, an operator copying new files). A Source
// re-reads the files when their modification time or size changes, checking
// at most once per CheckInterval and only when a handshake asks for the
// configuration: there is no goroutine to stop, and a handshake costs at most
// three stat calls per interval.
//
// A rotation that leaves the files briefly inconsistent (the new certificate
// written, the old key still there) is not an error: the previous pair keeps
// being served and the files are read again at the next check.
//
// Every configuration is TLS 1.2 or newer. Listeners built on a Source pick
// up new files for new connections without a restart; established
// connections keep the certificate they were made with.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CheckInterval is how often a Source looks at its files' stamps.
const CheckInterval = time.Second

// Files names a certificate and key, and the CA bundle that verifies the
// other side. Any may be empty: a Source without a CA verifies against the
// system roots (a client) or asks for no client certificate (a server); a
// Source without a certificate presents none (a client without one).
type Files struct {
	Cert, Key, CA string
}

// Source hands out the current certificate and CA pool of its Files. Safe
// for concurrent use.
type Source struct {
	files Files
	log   *slog.Logger

	mu      sync.Mutex
	checked time.Time
	stamps  [3]stamp
	cert    *tls.Certificate
	pool    *x509.CertPool
}

// stamp identifies one version of a file.
type stamp struct {
	mod  time.Time
	size int64
}

// NewSource loads files; a missing or broken file is an error here (at
// start-up), and only a warning on later reloads.
func NewSource(files Files, log *slog.Logger) (*Source, error) {
	if (files.Cert == "") != (files.Key == "") {
		return nil, errors.New("a certificate needs its key and a key its certificate")
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Source{files: files, log: log}
	stamps, err := s.stat()
	if err != nil {
		return nil, err
	}
	if err := s.load(stamps); err != nil {
		return nil, err
	}
	s.checked = time.Now()
	return s, nil
}

// Files returns the files s reads.
func (s *Source) Files() Files { return s.files }

func (s *Source) stat() ([3]stamp, error) {
	var out [3]stamp
	for i, p := range []string{s.files.Cert, s.files.Key, s.files.CA} {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return out, fmt.Errorf("tls file: %w", err)
		}
		out[i] = stamp{mod: fi.ModTime(), size: fi.Size()}
	}
	return out, nil
}

// load reads the files and, when they are all valid, makes them current.
// s.mu is held (or s is not shared yet).
func (s *Source) load(stamps [3]stamp) error {
	var cert *tls.Certificate
	if s.files.Cert != "" {
		c, err := tls.LoadX509KeyPair(s.files.Cert, s.files.Key)
		if err != nil {
			return fmt.Errorf("load certificate %s with key %s: %w", s.files.Cert, s.files.Key, err)
		}
		cert = &c
	}
	var pool *x509.CertPool
	if s.files.CA != "" {
		b, err := os.ReadFile(s.files.CA)
		if err != nil {
			return fmt.Errorf("read CA bundle: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return fmt.Errorf("CA bundle %s holds no PEM certificate", s.files.CA)
		}
	}
	s.cert, s.pool, s.stamps = cert, pool, stamps
	return nil
}

// current returns the certificate and pool, re-reading the files first when
// the last check is older than CheckInterval and they changed since.
func (s *Source) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.checked) >= CheckInterval {
		s.checked = time.Now()
		stamps, err := s.stat()
		switch {
		case err != nil:
			s.log.Warn("TLS files unreadable; serving the previous certificate", "err", err)
		case stamps != s.stamps:
			if err := s.load(stamps); err != nil {
				s.log.Warn("TLS files changed but do not load (yet); serving the previous certificate", "err", err)
			} else {
				s.log.Info("TLS files reloaded", "cert", s.files.Cert, "ca", s.files.CA, "serial", serial(s.cert))
			}
		}
	}
	return s.cert, s.pool
}

// Leaf returns the current certificate (nil when s has none).
func (s *Source) Leaf() *x509.Certificate {
	c, _ := s.current()
	if c == nil {
		return nil
	}
	return c.Leaf
}

func serial(c *tls.Certificate) string {
	if c == nil || c.Leaf == nil {
		return ""
	}
	return c.Leaf.SerialNumber.Text(16)
}

// ServerConfig returns a server configuration that picks up new files for
// each new connection. clientAuth says whether client certificates are asked
// for and required; they are verified against the CA bundle. nextProtos are
// the ALPN protocols of the listener. verify, if not nil, runs after the
// standard checks (see RequireURI).
func (s *Source) ServerConfig(clientAuth tls.ClientAuthType, nextProtos []string, verify func(tls.ConnectionState) error) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.serverConfig(clientAuth, nextProtos, verify), nil
		},
	}
}

func (s *Source) serverConfig(clientAuth tls.ClientAuthType, nextProtos []string, verify func(tls.ConnectionState) error) *tls.Config {
	cert, pool := s.current()
	c := &tls.Config{
		MinVersion:       tls.VersionTLS12,
		NextProtos:       nextProtos,
		ClientAuth:       clientAuth,
		ClientCAs:        pool,
		VerifyConnection: verify,
	}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

// ClientConfig returns a client configuration with the current certificate
// (if any) and CA bundle (system roots when none). serverName may be empty:
// gRPC and net/http fill it in from the address dialed.
func (s *Source) ClientConfig(serverName string, verify func(tls.ConnectionState) error) *tls.Config {
	cert, pool := s.current()
	c := &tls.Config{
		MinVersion:       tls.VersionTLS12,
		ServerName:       serverName,
		RootCAs:          pool,
		VerifyConnection: verify,
	}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}
