package tlsconfig

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"

	"google.golang.org/grpc/credentials"
)

// grpcCreds are gRPC transport credentials that build a fresh TLS
// configuration from a Source for every handshake, so a long-lived
// grpc.Server or grpc.ClientConn uses rotated files for its next connection.
// (credentials.NewTLS alone would freeze the configuration it was given.)
type grpcCreds struct {
	src        *Source
	clientAuth tls.ClientAuthType
	verify     func(tls.ConnectionState) error
	serverName string
}

// ServerCredentials returns gRPC server credentials serving src's
// certificate; clientAuth and verify are as in Source.ServerConfig.
func ServerCredentials(src *Source, clientAuth tls.ClientAuthType, verify func(tls.ConnectionState) error) credentials.TransportCredentials {
	return &grpcCreds{src: src, clientAuth: clientAuth, verify: verify}
}

// ClientCredentials returns gRPC client credentials presenting src's
// certificate (if any) and verifying servers against its CA bundle.
func ClientCredentials(src *Source, verify func(tls.ConnectionState) error) credentials.TransportCredentials {
	return &grpcCreds{src: src, verify: verify}
}

func (c *grpcCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(c.src.ClientConfig(c.serverName, c.verify)).ClientHandshake(ctx, authority, conn)
}

func (c *grpcCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(c.src.serverConfig(c.clientAuth, nil, c.verify)).ServerHandshake(conn)
}

func (c *grpcCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (c *grpcCreds) Clone() credentials.TransportCredentials {
	cc := *c
	return &cc
}

// OverrideServerName is part of credentials.TransportCredentials.
func (c *grpcCreds) OverrideServerName(name string) error {
	c.serverName = name
	return nil
}

// PeerURI is the URI SAN that binds a peer certificate to one cluster:
// tokenstore://cluster/<name>, where name is the cluster's
// --initial-cluster-token.
func PeerURI(cluster string) string {
	return (&url.URL{Scheme: "tokenstore", Host: "cluster", Path: "/" + cluster}).String()
}

// RequireURI returns a VerifyConnection check that the other side's
// (already verified) certificate carries the URI SAN uri. Peers use it with
// PeerURI so that a certificate of another cluster, even one signed by the
// same CA, is refused.
func RequireURI(uri string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("no peer certificate")
		}
		for _, u := range cs.PeerCertificates[0].URIs {
			if u.String() == uri {
				return nil
			}
		}
		return errors.New("peer certificate is not for this cluster: it lacks the URI SAN " + uri)
	}
}
