package server

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"
)

// DefaultAdminGroup is the group whose token holders are administrators.
const DefaultAdminGroup = "tokenstore:admins"

// devAdminSubject is the subject (CN) of the client certificate --dev
// writes next to its CA; --dev makes it an admin subject.
const devAdminSubject = "tokenstore-admin"

// SecurityConfig is the transport security and caller authorization part
// of Config (docs/security.md).
type SecurityConfig struct {
	TLSCert, TLSKey, TLSClientCA string
	PeerCert, PeerKey, PeerCA    string
	Insecure                     bool
	Dev                          bool
	DevCADir                     string
	AdminSubjects                []string
	AdminGroup                   string
	RequireClientAuth            bool
	GossipKeyFile                string
	BootstrapAdminToken          bool

	// gossipKey is the decoded --gossip-key-file (Validate).
	gossipKey []byte
}

func (c *SecurityConfig) registerSecurityFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.TLSCert, "tls-cert", "", "certificate (PEM) served on --listen-client and --listen-http; re-read when the file changes")
	fs.StringVar(&c.TLSKey, "tls-key", "", "key of --tls-cert")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", "", "CA bundle verifying client certificates on the client listeners (empty: callers authenticate with tokens only)")
	fs.StringVar(&c.PeerCert, "peer-cert", "", "certificate for mutual TLS between members (server and client usage, URI SAN tokenstore://cluster/<--initial-cluster-token>)")
	fs.StringVar(&c.PeerKey, "peer-key", "", "key of --peer-cert")
	fs.StringVar(&c.PeerCA, "peer-ca", "", "CA bundle verifying other members' peer certificates (one CA per cluster is best)")
	fs.BoolVar(&c.Insecure, "insecure", false, "plain text on every listener and no peer authentication; refused unless every listen and advertise address is loopback")
	fs.BoolVar(&c.Dev, "dev", false, "generate a local CA and certificates under the data directory (or --dev-ca-dir) and serve TLS with them; for local clusters, not production")
	fs.StringVar(&c.DevCADir, "dev-ca-dir", "", "with --dev: directory of the CA shared by local members (default <data-dir>/tls/ca); an admin client certificate admin.crt/admin.key is written next to it")
	fs.StringSliceVar(&c.AdminSubjects, "admin-subjects", nil, "client certificate subjects (CN, or the full RFC 2253 subject) that are administrators")
	fs.StringVar(&c.AdminGroup, "admin-group", DefaultAdminGroup, "holders of a token whose user is in this group are administrators")
	fs.BoolVar(&c.RequireClientAuth, "require-client-auth", true, "Authenticate, Authorize and the webhooks need a verified client certificate or a valid token; false leaves them open to anyone who reaches the listener")
	fs.BoolVar(&c.BootstrapAdminToken, "bootstrap-admin-token", true, "create the cluster's bootstrap administrator token once; the member that creates it writes it to <data-dir>/admin.token (mode 0600)")
	fs.StringVar(&c.GossipKeyFile, "gossip-key-file", "", "file holding a base64 16, 24 or 32 byte key that encrypts and authenticates gossip (memberlist); every member needs the same key")
}

// validateSecurity checks the security flags once the addresses and data
// directory are known, and fills in the --dev file names.
func (c *Config) validateSecurity() error {
	s := &c.SecurityConfig
	if s.Insecure && s.Dev {
		return errors.New("--insecure and --dev exclude each other")
	}
	if s.Insecure {
		for _, a := range []struct{ flag, addr string }{
			{"listen-client", c.ListenClient}, {"listen-peer", c.ListenPeer}, {"listen-http", c.ListenHTTP},
			{"advertise-client", c.AdvertiseClient}, {"advertise-peer", c.AdvertisePeer},
			{"listen-gossip", c.ListenGossip}, {"advertise-gossip", c.AdvertiseGossip},
		} {
			if a.addr != "" && !isLoopback(a.addr) {
				return fmt.Errorf("--insecure serves plain text and is refused on a non-loopback address: --%s %s (give certificates with --tls-cert/--peer-cert, or use --dev)", a.flag, a.addr)
			}
		}
	}
	if s.Dev {
		dir := filepath.Join(c.DataDir, "tls")
		if s.DevCADir == "" {
			s.DevCADir = filepath.Join(dir, "ca")
		}
		// Validate may run more than once on one Config: accept what an
		// earlier run filled in.
		if (s.TLSCert != "" && s.TLSCert != filepath.Join(dir, "server.crt")) || (s.PeerCert != "" && s.PeerCert != filepath.Join(dir, "peer.crt")) {
			return errors.New("--dev generates its own certificates: do not combine it with --tls-cert or --peer-cert")
		}
		s.TLSCert, s.TLSKey = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
		s.PeerCert, s.PeerKey, s.PeerCA = filepath.Join(dir, "peer.crt"), filepath.Join(dir, "peer.key"), filepath.Join(dir, "ca.crt")
		if s.TLSClientCA == "" {
			s.TLSClientCA = filepath.Join(dir, "ca.crt")
		}
		if !slices.Contains(s.AdminSubjects, devAdminSubject) {
			s.AdminSubjects = append(s.AdminSubjects, devAdminSubject)
		}
	}
	if !s.Insecure {
		if s.TLSCert == "" || s.TLSKey == "" || s.PeerCert == "" || s.PeerKey == "" || s.PeerCA == "" {
			return errors.New("TLS is required: give --tls-cert and --tls-key (client listeners) and --peer-cert, --peer-key and --peer-ca (members), or --dev to generate local ones, or --insecure on loopback only")
		}
	}
	if s.AdminGroup == "" {
		return errors.New("--admin-group must not be empty")
	}
	if s.GossipKeyFile != "" {
		b, err := os.ReadFile(s.GossipKeyFile)
		if err != nil {
			return fmt.Errorf("--gossip-key-file: %w", err)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("--gossip-key-file %s: not base64: %w", s.GossipKeyFile, err)
		}
		if n := len(key); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("--gossip-key-file %s: key is %d bytes, want 16, 24 or 32", s.GossipKeyFile, n)
		}
		s.gossipKey = key
	}
	return nil
}

// isLoopback reports whether host:port names a loopback address. An empty
// host (every interface) is not loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
