package harness

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tokenstore/tokenstore/internal/devcerts"
	"github.com/tokenstore/tokenstore/server/tlsconfig"
)

// AdminSubject is the CN of the client certificate the harness's clients
// present; every member lists it in --admin-subjects.
const AdminSubject = "harness-admin"

// clusterTLS is a cluster's certificate authority and the administrator's
// client certificate. Every member gets serving and peer certificates from
// the CA (tls/<name>/ under the cluster directory), so the whole suite runs
// over TLS with mutual TLS between members, as production does.
type clusterTLS struct {
	dir       string
	ca        *devcerts.CA
	caFile    string
	adminCert string
	adminKey  string
	client    *tls.Config
	httpOnce  sync.Once
	http      *http.Client
	issueMu   sync.Mutex
	issued    map[string][2]string // name -> cert, key files
}

func newClusterTLS(dir string) (*clusterTLS, error) {
	t := &clusterTLS{dir: filepath.Join(dir, "tls")}
	ca, err := devcerts.LoadOrCreateCA(filepath.Join(t.dir, "ca"), "harness CA", func(ca *devcerts.CA, dir string) error {
		_, _, err := devcerts.IssueClient(ca, dir, "admin", AdminSubject)
		return err
	})
	if err != nil {
		return nil, err
	}
	t.ca = ca
	t.caFile = filepath.Join(t.dir, "ca", devcerts.CACertFile)
	t.adminCert, t.adminKey = filepath.Join(t.dir, "ca", "admin.crt"), filepath.Join(t.dir, "ca", "admin.key")
	pair, err := tls.LoadX509KeyPair(t.adminCert, t.adminKey)
	if err != nil {
		return nil, fmt.Errorf("admin client certificate: %w", err)
	}
	t.client = t.clientConfig(&pair)
	return t, nil
}

func (t *clusterTLS) clientConfig(pair *tls.Certificate) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(t.ca.Cert)
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if pair != nil {
		c.Certificates = []tls.Certificate{*pair}
	}
	return c
}

// memberFlags issues m's certificates (again: cheap, and it follows a
// changed --initial-cluster-token) and returns the TLS flags of its start.
// They come before Cluster.Extra and Member.Flags, which may override them.
func (t *clusterTLS) memberFlags(m *Member, args []string) ([]string, error) {
	f, err := devcerts.IssueMember(t.ca, filepath.Join(t.dir, m.Name), m.Name, []string{"127.0.0.1", "localhost"},
		[]string{tlsconfig.PeerURI(clusterToken(args))})
	if err != nil {
		return nil, fmt.Errorf("certificates for %s: %w", m.Name, err)
	}
	return []string{
		"--tls-cert", f.ServerCert, "--tls-key", f.ServerKey, "--tls-client-ca", f.CA,
		"--peer-cert", f.PeerCert, "--peer-key", f.PeerKey, "--peer-ca", f.CA,
		"--admin-subjects", AdminSubject,
		// Tests count the tokens they create; TestBootstrapAdminToken
		// turns the bootstrap token back on.
		"--bootstrap-admin-token=false",
	}, nil
}

// clusterToken is the --initial-cluster-token in args (default tokenstore).
func clusterToken(args []string) string {
	tok := "tokenstore"
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--initial-cluster-token="); ok {
			tok = v
		} else if a == "--initial-cluster-token" && i+1 < len(args) {
			tok = args[i+1]
		}
	}
	return tok
}

// CAFile is the PEM file of the cluster's CA (for kubeconfigs and curl).
func (c *Cluster) CAFile() string { return c.tls.caFile }

// AdminCertFiles are the administrator's client certificate and key files.
func (c *Cluster) AdminCertFiles() (cert, key string) { return c.tls.adminCert, c.tls.adminKey }

// MemberTLSDir is the directory holding m's certificates (server.crt,
// peer.crt, their keys and ca.crt), rewritten at each Start.
func (c *Cluster) MemberTLSDir(m *Member) string { return filepath.Join(c.tls.dir, m.Name) }

// IssueClientCert returns a client certificate of the cluster's CA for
// name with common name cn, made on the first call for name and the same
// files afterwards. A caller that rewrote the files on every call would
// rotate the certificate under clients that watch them: client-go reloads
// a kubeconfig's certificate files and closes every connection when they
// change, failing the requests in flight.
func (c *Cluster) IssueClientCert(name, cn string) (cert, key string, err error) {
	c.tls.issueMu.Lock()
	defer c.tls.issueMu.Unlock()
	if f, ok := c.tls.issued[name]; ok {
		return f[0], f[1], nil
	}
	cert, key, err = devcerts.IssueClient(c.tls.ca, filepath.Join(c.tls.dir, "clients"), name, cn)
	if err != nil {
		return "", "", err
	}
	if c.tls.issued == nil {
		c.tls.issued = map[string][2]string{}
	}
	c.tls.issued[name] = [2]string{cert, key}
	return cert, key, nil
}

// ClientTLS returns a client TLS configuration trusting the cluster's CA
// that presents the certificate in certFile/keyFile, or none when both are
// empty.
func (c *Cluster) ClientTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return c.tls.clientConfig(nil), nil
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return c.tls.clientConfig(&pair), nil
}

// Dial opens a new client gRPC connection to m with the administrator's
// credentials (for tests and load generators that want several
// connections); extra options come after the harness's. The caller closes
// it.
func (m *Member) Dial(extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(m.tls.client.Clone()))}, extra...)
	return grpc.NewClient(m.ClientAddr, opts...)
}

// CA is the cluster's certificate authority, for tests that issue
// certificates of their own (rotation, other clusters).
func (c *Cluster) CA() *devcerts.CA { return c.tls.ca }
