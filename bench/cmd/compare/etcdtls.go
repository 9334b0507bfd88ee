package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tokenstore/tokenstore/internal/devcerts"
)

// transportMode is said in the output so a reader knows what the figures
// include: the harness runs tokenstore with TLS 1.3 and client certificates
// (cluster-test/harness/tls.go), so etcd runs the same way. TLS costs a
// measurable share of each call (record encryption, larger writes), and a
// comparison where only one side pays it is not a comparison.
const transportMode = "TLS with client certificates on both sides (client and peer connections, ECDSA P-256 certificates from a per-cluster CA, same client options)"

// etcdTLS is an etcd cluster's certificate authority and the client
// configuration the comparison's etcd clients use. Certificates are made
// by internal/devcerts, the same code and key type the harness uses for
// tokenstore, so both sides do the same handshake and record work.
type etcdTLS struct {
	dir    string
	ca     *devcerts.CA
	client *tls.Config
}

func newEtcdTLS(dir string) (*etcdTLS, error) {
	t := &etcdTLS{dir: filepath.Join(dir, "tls")}
	ca, err := devcerts.LoadOrCreateCA(filepath.Join(t.dir, "ca"), "etcd bench CA", nil)
	if err != nil {
		return nil, fmt.Errorf("etcd CA: %w", err)
	}
	t.ca = ca
	certFile, keyFile, err := devcerts.IssueClient(ca, filepath.Join(t.dir, "ca"), "client", "bench-client")
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	// The same settings the harness gives tokenstore's clients (tls.go
	// clientConfig): the CA as the only root, the client certificate, TLS
	// 1.2 at least (both negotiate 1.3).
	t.client = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, Certificates: []tls.Certificate{pair}}
	return t, nil
}

// memberFlags issues m's serving and peer certificates and returns
// etcdmember's TLS flags.
func (t *etcdTLS) memberFlags(m *etcdMember) ([]string, error) {
	f, err := devcerts.IssueMember(t.ca, filepath.Join(t.dir, m.Name), m.Name, []string{"127.0.0.1", "localhost"}, nil)
	if err != nil {
		return nil, fmt.Errorf("certificates for %s: %w", m.Name, err)
	}
	return []string{"--cert", f.ServerCert, "--key", f.ServerKey, "--ca", f.CA,
		"--peer-cert", f.PeerCert, "--peer-key", f.PeerKey, "--peer-ca", f.CA}, nil
}

// newClient returns an etcd client of the member at addr alone, over TLS
// with the client certificate. No dial options beyond etcd's own: like
// tokenstore's clients (harness Member.Dial), gRPC's default window and
// buffer sizes.
func (t *etcdTLS) newClient(addr string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints: []string{clientURL(addr)}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		TLS: t.client.Clone(),
	})
}

// clientURL and peerURL are a member's URLs (https: TLS on both).
func clientURL(addr string) string { return "https://" + addr }
func peerURL(addr string) string   { return "https://" + addr }
