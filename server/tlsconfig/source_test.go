package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/internal/devcerts"
)

// serverSerial dials l with a fresh TLS client and returns the serial of the
// certificate the server presented.
func serverSerial(t *testing.T, addr string, roots *x509.CertPool) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
}

// TestRotatedFilesAreServedWithoutRestart replaces the certificate and key
// files under a running listener and checks that a new handshake sees the
// new certificate, and that half-rotated files keep the old one in service.
func TestRotatedFilesAreServedWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	ca, err := devcerts.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	issue := func() string {
		cert, key, err := ca.Issue(devcerts.Leaf{CommonName: "member", Hosts: []string{"127.0.0.1"}, Server: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := devcerts.WritePair(dir, "server", cert, key); err != nil {
			t.Fatal(err)
		}
		b, _ := tlsPair(t, cert, key)
		return b
	}
	first := issue()
	src, err := NewSource(Files{Cert: filepath.Join(dir, "server.crt"), Key: filepath.Join(dir, "server.key")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", src.ServerConfig(tls.NoClientCert, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if got := serverSerial(t, l.Addr().String(), roots); got != first {
		t.Fatalf("first handshake: serial %s, want %s", got, first)
	}

	// A certificate without its key (mid-rotation) keeps the old pair.
	cert, _, err := ca.Issue(devcerts.Leaf{CommonName: "other", Hosts: []string{"127.0.0.1"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := ca.Issue(devcerts.Leaf{CommonName: "x", Server: true})
	if err := devcerts.WritePair(dir, "server", cert, otherKey); err != nil {
		t.Fatal(err)
	}
	time.Sleep(CheckInterval + 100*time.Millisecond) // let the next handshake look at the files
	if got := serverSerial(t, l.Addr().String(), roots); got != first {
		t.Fatalf("mismatched pair on disk: served %s, want the previous %s", got, first)
	}

	second := issue()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := serverSerial(t, l.Addr().String(), roots)
		if got == second {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotated certificate not served: still %s, want %s", got, second)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tlsPair(t *testing.T, cert, key []byte) (string, *x509.Certificate) {
	t.Helper()
	p, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return p.Leaf.SerialNumber.Text(16), p.Leaf
}

// TestRequireURIRefusesAnotherCluster checks the cluster binding of peer
// certificates: same CA, other cluster name, refused at the handshake.
func TestRequireURIRefusesAnotherCluster(t *testing.T) {
	dir := t.TempDir()
	ca, err := devcerts.NewCA("peer CA")
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name, cluster string) *Source {
		f, err := devcerts.IssueMember(ca, filepath.Join(dir, name), name, []string{"127.0.0.1"}, []string{PeerURI(cluster)})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSource(Files{Cert: f.PeerCert, Key: f.PeerKey, CA: f.CA}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	srv, same, other := mk("a", "blue"), mk("b", "blue"), mk("c", "green")
	l, err := tls.Listen("tcp", "127.0.0.1:0", srv.ServerConfig(tls.RequireAndVerifyClientCert, nil, RequireURI(PeerURI("blue"))))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = c.Write([]byte{1})
				}
			}()
		}
	}()
	dial := func(s *Source) error {
		conn, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := tls.Client(conn, s.ClientConfig("127.0.0.1", RequireURI(PeerURI("blue"))))
		if err := c.Handshake(); err != nil {
			return err
		}
		// TLS 1.3: the server's verdict on the client certificate arrives
		// with the first read.
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		return err
	}
	if err := dial(same); err != nil {
		t.Fatalf("peer of the same cluster refused: %v", err)
	}
	if err := dial(other); err == nil {
		t.Fatal("peer certificate of another cluster accepted")
	}
}
