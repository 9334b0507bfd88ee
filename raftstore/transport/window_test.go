package transport

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/raftstore"
)

// countingListener counts the writes of the connections it accepts.
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, writes: &l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// receiver is a Handler that passes each message it is given to a channel.
type receiver struct{ got chan *raftpb.Message }

func (r *receiver) Process(_ context.Context, m *raftpb.Message) error { r.got <- m; return nil }
func (r *receiver) ReceiveSnapshot(context.Context, *raftpb.Message, io.Reader, func() []byte) error {
	return nil
}
func (r *receiver) OpenSnapshot(*raftpb.Message) (*raftstore.SnapshotStream, error) { return nil, nil }
func (r *receiver) ReportUnreachable(uint64)                                        {}
func (r *receiver) ReportUndelivered([]*raftpb.Message)                             {}
func (r *receiver) ReportSnapshot(uint64, bool)                                     {}
func (r *receiver) Status() *raftstore.MemberStatus                                 { return &raftstore.MemberStatus{} }
func (r *receiver) HandleJoin(context.Context, *raftstorev1.JoinRequest) (*raftstorev1.JoinResponse, error) {
	return nil, nil
}
func (r *receiver) HandleForward(context.Context, uint64, string, []byte) ([]byte, error) {
	return nil, nil
}

// TestRaftStreamReceiverStaysQuiet: the member receiving a raft stream
// writes next to nothing back, however many messages arrive one at a time.
// With grpc-go's bandwidth-delay estimation on (windows left at their
// defaults) the receiver pings the sender about once per message here,
// each ping a TLS record, a syscall and a wakeup on both members.
func TestRaftStreamReceiverStaysQuiet(t *testing.T) {
	const cluster, from, to = 7, 1, 2
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: l}
	recv := &receiver{got: make(chan *raftpb.Message, 1)}
	dst := New(Config{ClusterID: cluster, LocalID: to, Listener: cl})
	if err := dst.Start(recv); err != nil {
		t.Fatal(err)
	}
	defer dst.Stop()
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	src := New(Config{ClusterID: cluster, LocalID: from, Listener: sl})
	if err := src.Start(&receiver{got: make(chan *raftpb.Message, 1)}); err != nil {
		t.Fatal(err)
	}
	defer src.Stop()
	src.AddPeer(to, l.Addr().String())

	send := func(i int) {
		t.Helper()
		src.Send([]*raftpb.Message{{Type: raftpb.MessageType_MsgApp.Enum(), From: ptr[uint64](from), To: ptr[uint64](to), Index: ptr(uint64(i)),
			Entries: []*raftpb.Entry{{Index: ptr(uint64(i)), Data: make([]byte, 300)}}}})
		select {
		case m := <-recv.got:
			if m.GetIndex() != uint64(i) {
				t.Fatalf("message %d arrived as %d", i, m.GetIndex())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d did not arrive", i)
		}
	}
	send(0) // the stream is open: what follows is steady state
	before := cl.writes.Load()
	const n = 500
	for i := 1; i <= n; i++ {
		send(i)
	}
	w := cl.writes.Load() - before
	t.Logf("receiver wrote %d times for %d messages", w, n)
	if w > n/20 {
		t.Fatalf("receiver wrote %d times for %d messages received one at a time, want at most %d (flow-control pings back?)", w, n, n/20)
	}
}

func ptr[T any](v T) *T { return &v }
