package devcerts

import (
	"fmt"
	"os"
	"path/filepath"
)

// MemberFiles are the paths IssueMember writes.
type MemberFiles struct {
	CA         string // the CA certificate (trust bundle for clients and peers)
	ServerCert string // client listeners (gRPC and HTTP)
	ServerKey  string
	PeerCert   string // peer listener and peer dials (server and client usage)
	PeerKey    string
}

// IssueMember writes a member's serving and peer certificates into dir, with
// SANs for hosts, and peerURIs (the cluster binding) on the peer
// certificate. It copies the CA certificate into dir as ca.crt.
func IssueMember(ca *CA, dir, name string, hosts, peerURIs []string) (MemberFiles, error) {
	f := MemberFiles{
		CA:         filepath.Join(dir, CACertFile),
		ServerCert: filepath.Join(dir, "server.crt"), ServerKey: filepath.Join(dir, "server.key"),
		PeerCert: filepath.Join(dir, "peer.crt"), PeerKey: filepath.Join(dir, "peer.key"),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return f, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := writeFile(f.CA, ca.CertPEM, 0o644); err != nil {
		return f, err
	}
	cert, key, err := ca.Issue(Leaf{CommonName: name, Hosts: hosts, Server: true})
	if err != nil {
		return f, err
	}
	if err := WritePair(dir, "server", cert, key); err != nil {
		return f, err
	}
	cert, key, err = ca.Issue(Leaf{CommonName: name, Hosts: hosts, URIs: peerURIs, Server: true, Client: true})
	if err != nil {
		return f, err
	}
	return f, WritePair(dir, "peer", cert, key)
}

// IssueClient writes a client certificate with subject CN cn into dir as
// <name>.crt and <name>.key and returns their paths.
func IssueClient(ca *CA, dir, name, cn string) (certFile, keyFile string, err error) {
	cert, key, err := ca.Issue(Leaf{CommonName: cn, Client: true})
	if err != nil {
		return "", "", err
	}
	if err := WritePair(dir, name, cert, key); err != nil {
		return "", "", err
	}
	return filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), nil
}
