package discovery

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestSecretKeyKeepsOutsidersOut: members sharing a gossip key find each
// other; a member with another key, seeded with their addresses, never
// appears in their view (and they never appear in its).
func TestSecretKeyKeepsOutsidersOut(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	key, other := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	a, b, x := freeAddr(t), freeAddr(t), freeAddr(t)
	start := func(name, bind string, k []byte, seeds ...string) *Discovery {
		d, err := Start(Config{Bind: bind, Seeds: seeds, Meta: Meta{Name: name, PeerAddr: "127.0.0.1:1"}, SecretKey: k, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Stop)
		return d
	}
	da := start("a", a, key)
	db := start("b", b, key, a)
	dx := start("x", x, other, a, b)
	names := func(d *Discovery) map[string]bool {
		out := map[string]bool{}
		for _, p := range d.Peers() {
			out[p.Name] = true
		}
		return out
	}
	deadline := time.Now().Add(10 * time.Second)
	for !names(da)["b"] || !names(db)["a"] {
		if time.Now().After(deadline) {
			t.Fatalf("members with the same key do not see each other: a sees %v, b sees %v", names(da), names(db))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// x has been trying its seeds all along; give it as long again as a
	// and b needed, plus a few gossip rounds.
	time.Sleep(2 * time.Second)
	if names(da)["x"] || names(db)["x"] || names(dx)["a"] || names(dx)["b"] {
		t.Fatalf("a member with another key got in: a %v, b %v, x %v", names(da), names(db), names(dx))
	}
}
