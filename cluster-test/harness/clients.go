package harness

import (
	"net/http"
	"os"

	"google.golang.org/grpc"
)

// Clients: every test reaches members through these accessors, never by
// dialing or building URLs itself, so how clients authenticate to the
// cluster (transport security, credentials) is decided in one place.

// Conn returns m's client gRPC connection (valid once m has been started).
// Build any service client on it: tokenstorev1.NewXClient(m.Conn()).
func (m *Member) Conn() *grpc.ClientConn { return m.conn }

// HTTPURL returns the URL of path on m's HTTP listener (webhooks, health,
// metrics).
func (m *Member) HTTPURL(path string) string { return "http://" + m.HTTPAddr + path }

// HTTPClient returns an HTTP client configured to talk to the cluster's
// HTTP listeners. Callers may set its Transport's connection-pool fields.
func (c *Cluster) HTTPClient() *http.Client {
	return &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
}

// CtlEnv returns the environment for running tokenctl against c (the
// process environment plus whatever credentials c requires).
func (c *Cluster) CtlEnv() []string { return os.Environ() }
