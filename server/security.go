package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tokenstore/tokenstore/internal/devcerts"
	"github.com/tokenstore/tokenstore/server/tlsconfig"
)

// security holds the TLS material of a member's listeners and peer dials.
// Both sources are nil with --insecure.
type security struct {
	client *tlsconfig.Source // --tls-cert/--tls-key/--tls-client-ca
	peer   *tlsconfig.Source // --peer-cert/--peer-key/--peer-ca
	// clientAuth is what the client listeners ask of callers' certificates.
	clientAuth tls.ClientAuthType
	// peerVerify binds peer certificates to this cluster (both directions).
	peerVerify func(tls.ConnectionState) error
}

// newSecurity loads the certificates of cfg, generating them first with
// --dev.
func newSecurity(cfg Config, log *slog.Logger) (*security, error) {
	if cfg.Insecure {
		log.Warn("--insecure: every listener is plain text and peers are not authenticated")
		return &security{}, nil
	}
	if cfg.Dev {
		if err := makeDevCerts(cfg); err != nil {
			return nil, fmt.Errorf("--dev: %w", err)
		}
	}
	sec := &security{clientAuth: tls.NoClientCert, peerVerify: tlsconfig.RequireURI(tlsconfig.PeerURI(cfg.InitialClusterToken))}
	var err error
	sec.client, err = tlsconfig.NewSource(tlsconfig.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSClientCA}, log)
	if err != nil {
		return nil, fmt.Errorf("client TLS (--tls-cert, --tls-key, --tls-client-ca): %w", err)
	}
	if cfg.TLSClientCA != "" {
		sec.clientAuth = tls.VerifyClientCertIfGiven
	}
	sec.peer, err = tlsconfig.NewSource(tlsconfig.Files{Cert: cfg.PeerCert, Key: cfg.PeerKey, CA: cfg.PeerCA}, log)
	if err != nil {
		return nil, fmt.Errorf("peer TLS (--peer-cert, --peer-key, --peer-ca): %w", err)
	}
	return sec, nil
}

// clientServerOption is the client gRPC listener's transport security.
func (sec *security) clientServerOption() []grpc.ServerOption {
	if sec.client == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.Creds(tlsconfig.ServerCredentials(sec.client, sec.clientAuth, nil))}
}

// httpListener wraps the HTTP listener in TLS (h2 and HTTP/1.1).
func (sec *security) httpListener(l net.Listener) net.Listener {
	if sec.client == nil {
		return l
	}
	return tls.NewListener(l, sec.client.ServerConfig(sec.clientAuth, []string{"h2", "http/1.1"}, nil))
}

// peerServerOptions make the peer listener mutual TLS: a member without a
// certificate from --peer-ca for this cluster does not get past the
// handshake, so it can neither join nor send raft messages.
func (sec *security) peerServerOptions() []grpc.ServerOption {
	if sec.peer == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.Creds(tlsconfig.ServerCredentials(sec.peer, tls.RequireAndVerifyClientCert, sec.peerVerify))}
}

// peerDialOptions are the credentials for dialing other members.
func (sec *security) peerDialOptions() []grpc.DialOption {
	if sec.peer == nil {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(tlsconfig.ClientCredentials(sec.peer, sec.peerVerify))}
}

// makeDevCerts creates (once) the --dev CA in --dev-ca-dir, with an admin
// client certificate beside it, and this member's certificates under
// <data-dir>/tls. Existing files are kept, so replacing them by hand is a
// rotation like any other.
func makeDevCerts(cfg Config) error {
	ca, err := devcerts.LoadOrCreateCA(cfg.DevCADir, "tokenstore dev CA", func(ca *devcerts.CA, dir string) error {
		_, _, err := devcerts.IssueClient(ca, dir, "admin", devAdminSubject)
		return err
	})
	if err != nil {
		return err
	}
	if _, err := os.Stat(cfg.TLSCert); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	hosts := []string{"127.0.0.1", "::1", "localhost"}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	for _, a := range []string{cfg.ListenClient, cfg.ListenPeer, cfg.ListenHTTP, cfg.AdvertiseClient, cfg.AdvertisePeer} {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" {
			if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
				hosts = append(hosts, h)
			}
		}
	}
	_, err = devcerts.IssueMember(ca, filepath.Dir(cfg.TLSCert), cfg.Name, hosts, []string{tlsconfig.PeerURI(cfg.InitialClusterToken)})
	return err
}
