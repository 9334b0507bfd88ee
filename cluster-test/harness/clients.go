package harness

import (
	"net/http"
	"os"

	"google.golang.org/grpc"
)

// Clients: every test reaches members through these accessors, never by
// dialing or building URLs itself, so how clients authenticate to the
// cluster (transport security, credentials) is decided in one place. The
// cluster serves TLS from its own CA (tls.go) and these clients present the
// administrator's client certificate (AdminSubject).

// Conn returns m's client gRPC connection (valid once m has been started).
// Build any service client on it: tokenstorev1.NewXClient(m.Conn()).
func (m *Member) Conn() *grpc.ClientConn { return m.conn }

// HTTPURL returns the URL of path on m's HTTP listener (webhooks, health,
// metrics).
func (m *Member) HTTPURL(path string) string { return "https://" + m.HTTPAddr + path }

// HTTPClient returns an HTTP client configured to talk to the cluster's
// HTTP listeners. Callers may set its Transport's connection-pool fields.
func (c *Cluster) HTTPClient() *http.Client {
	return newHTTPClient(c.tls)
}

func newHTTPClient(t *clusterTLS) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = t.client.Clone()
	return &http.Client{Transport: tr}
}

// httpClient is shared by m's cluster for Ready, so polling readiness
// does not make a new TLS connection each time.
func (m *Member) httpClient() *http.Client {
	m.tls.httpOnce.Do(func() { m.tls.http = newHTTPClient(m.tls) })
	return m.tls.http
}

// CtlEnv returns the environment for running tokenctl against c (the
// process environment plus whatever credentials c requires).
func (c *Cluster) CtlEnv() []string {
	return append(os.Environ(),
		"TOKENCTL_CACERT="+c.tls.caFile, "TOKENCTL_CERT="+c.tls.adminCert, "TOKENCTL_KEY="+c.tls.adminKey)
}
