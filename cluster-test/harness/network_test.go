package harness

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// echo serves a line echo on loopback and returns its address.
func echo(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return l.Addr().String()
}

// roundTrip writes a line on c and reads it back within d.
func roundTrip(c net.Conn, r *bufio.Reader, d time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = c.SetDeadline(start.Add(d))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return 0, err
	}
	if _, err := r.ReadString('\n'); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func TestNetworkModes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("connections are attributed to processes through /proc")
	}
	self := os.Getpid()
	n := newNetwork(func(c net.Conn) (string, bool) {
		if pid, closed := socketOwner(c, []int{self}); pid == self || closed {
			return "a", closed
		}
		return "", false
	})
	defer n.Close()
	if err := n.listen("b", "127.0.0.1:0", echo(t)); err != nil {
		t.Fatal(err)
	}
	link := Link{From: "a", To: "b"}
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", n.Addr("b"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}

	c, r := dial()
	if _, err := roundTrip(c, r, time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}
	if n.Unknown() != 0 || n.Accepted()[link] != 1 {
		t.Fatalf("connection not attributed to a→b: unknown %d, accepted %v", n.Unknown(), n.Accepted())
	}

	id := n.Apply(Rule{Link: link, Mode: Delay, Delay: 100 * time.Millisecond})
	if d, err := roundTrip(c, r, 2*time.Second); err != nil || d < 200*time.Millisecond {
		t.Fatalf("delay 100ms each way: round trip %v, %v", d, err)
	}
	n.Remove(id)

	// A rule on another link changes nothing here.
	other := n.Apply(Rule{Link: Link{From: "b", To: "a"}, Mode: Blackhole})
	if _, err := roundTrip(c, r, time.Second); err != nil {
		t.Fatalf("rule on b→a broke a→b: %v", err)
	}
	n.Remove(other)

	for _, mode := range []Mode{Blackhole, CutForward} {
		id = n.Apply(Rule{Link: link, Mode: mode})
		if _, err := roundTrip(c, r, 300*time.Millisecond); err == nil {
			t.Fatalf("%s: bytes went through", mode)
		}
		n.Remove(id)
		// The stream lost bytes: healing resets it.
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := r.ReadString('\n'); err == nil || os.IsTimeout(err) {
			t.Fatalf("%s healed: want the corrupted connection closed, got %v", mode, err)
		}
		c, r = dial()
		if _, err := roundTrip(c, r, time.Second); err != nil {
			t.Fatalf("after %s: new connection: %v", mode, err)
		}
	}

	id = n.Apply(Rule{Link: link, Mode: Refuse})
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := r.ReadString('\n'); err == nil || os.IsTimeout(err) {
		t.Fatalf("refuse: existing connection not reset: %v", err)
	}
	// A new connection is reset (possibly before connect returns).
	if rc, err := net.Dial("tcp", n.Addr("b")); err == nil {
		if _, err := roundTrip(rc, bufio.NewReader(rc), time.Second); err == nil {
			t.Fatal("refuse: new connection carried bytes")
		}
		rc.Close()
	}
	n.Remove(id)
	c, r = dial()
	if _, err := roundTrip(c, r, time.Second); err != nil {
		t.Fatalf("after refuse: %v", err)
	}
	if got := n.Describe(); got != "all links pass" {
		t.Fatalf("rules left: %s", got)
	}
}

// TestConnectionClosedBeforeAttributionIsRefused: a connection whose
// opener closed it before the proxy could look it up (a member SIGKILLed
// just after connecting) is told apart from one of an unknown process,
// counted as dead and carried nowhere.
func TestConnectionClosedBeforeAttributionIsRefused(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("connections are attributed to processes through /proc")
	}
	self := os.Getpid()
	openerClosed := make(chan struct{})
	looked := make(chan bool, 1)
	n := newNetwork(func(c net.Conn) (string, bool) {
		<-openerClosed
		pid, closed := socketOwner(c, []int{self})
		looked <- closed
		if pid == self {
			return "a", false
		}
		return "", closed
	})
	defer n.Close()
	if err := n.listen("b", "127.0.0.1:0", echo(t)); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", n.Addr("b"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	close(openerClosed)
	if closed := <-looked; !closed {
		t.Fatal("a connection its opener had closed was not seen as closed")
	}
	deadline := time.Now().Add(5 * time.Second)
	for n.Dead() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("dead %d, unknown %d, accepted %v", n.Dead(), n.Unknown(), n.Accepted())
		}
		time.Sleep(time.Millisecond) // the proxy counts after the lookup returns; no event to wait on
	}
	if n.Unknown() != 0 || len(n.Accepted()) != 0 {
		t.Fatalf("unknown %d, accepted %v: the dead connection was carried", n.Unknown(), n.Accepted())
	}
}

func TestProcAddr(t *testing.T) {
	if runtime.GOOS != "linux" || binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("vectors as a little-endian Linux prints them")
	}
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"0000000000000000FFFF00000100007F:0050": "127.0.0.1:80",
	} {
		if got := procAddr(in); got != want {
			t.Errorf("procAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
