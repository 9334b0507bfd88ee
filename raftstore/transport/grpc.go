package transport

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/raftstore"
)

// Config configures a GRPC transport.
type Config struct {
	ClusterID uint64
	LocalID   uint64
	// Listener is the peer listener; the transport serves on it and closes it
	// on Stop.
	Listener net.Listener
	// QueueSize bounds the messages queued per peer (default 4096).
	QueueSize int
	Logger    *slog.Logger
	// ServerOptions and DialOptions are added to the defaults (for TLS).
	ServerOptions []grpc.ServerOption
	DialOptions   []grpc.DialOption
}

const (
	maxBatchBytes    = 4 << 20
	maxMessageBytes  = 64 << 20
	snapshotChunk    = 1 << 20
	reconnectBackoff = 100 * time.Millisecond
	// windowBytes is the HTTP/2 flow-control window of peer connections,
	// stream and connection alike. Setting it turns off grpc-go's
	// bandwidth-delay estimation, which pings the sender once per round
	// trip for as long as data flows: on a raft stream carrying a small
	// message per Ready that was a ping and its ack per message or two,
	// each a TLS record and a wakeup on both sides.
	windowBytes = 4 << 20
)

// GRPC is a raftstore.Transport over gRPC.
type GRPC struct {
	cfg     Config
	log     *slog.Logger
	h       raftstore.Handler
	srv     *grpc.Server
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	peers   map[uint64]*peer
	stopped bool
}

// peerServer serves the PeerService for a GRPC transport.
type peerServer struct {
	raftstorev1.UnimplementedPeerServiceServer
	t *GRPC
}

// New returns a transport; it serves once the node calls Start.
func New(cfg Config) *GRPC {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &GRPC{cfg: cfg, log: cfg.Logger.With("component", "transport"), ctx: ctx, cancel: cancel, peers: map[uint64]*peer{}}
}

// Start implements raftstore.Transport.
func (t *GRPC) Start(h raftstore.Handler) error {
	t.h = h
	opts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMessageBytes),
		grpc.MaxSendMsgSize(maxMessageBytes),
		grpc.ChainUnaryInterceptor(deadlineInterceptor(defaultPeerTimeout)), // limits.go
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.InitialWindowSize(windowBytes),
		grpc.InitialConnWindowSize(windowBytes),
	}, t.cfg.ServerOptions...)
	t.srv = grpc.NewServer(opts...)
	raftstorev1.RegisterPeerServiceServer(t.srv, peerServer{t: t})
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		if err := t.srv.Serve(t.cfg.Listener); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.log.Error("peer server stopped", "err", err)
		}
	}()
	return nil
}

// Stop implements raftstore.Transport.
func (t *GRPC) Stop() {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	t.stopped = true
	peers := t.peers
	t.peers = map[uint64]*peer{}
	t.mu.Unlock()
	t.cancel()
	for _, p := range peers {
		p.stop()
	}
	if t.srv != nil {
		t.srv.Stop()
	}
	t.wg.Wait()
}

// AddPeer implements raftstore.Transport. Adding a known peer with a new
// address reconnects to the new address.
func (t *GRPC) AddPeer(id uint64, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || id == t.cfg.LocalID {
		return
	}
	if p, ok := t.peers[id]; ok {
		if p.addr == addr {
			return
		}
		go p.stop()
	}
	p, err := t.newPeer(id, addr)
	if err != nil {
		t.log.Error("cannot add peer", "peer", fmt.Sprintf("%016x", id), "addr", addr, "err", err)
		return
	}
	t.peers[id] = p
}

// RemovePeer implements raftstore.Transport.
func (t *GRPC) RemovePeer(id uint64) {
	t.mu.Lock()
	p, ok := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if ok {
		p.stop()
	}
}

// Send implements raftstore.Transport.
func (t *GRPC) Send(msgs []*raftpb.Message) {
	if len(msgs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range msgs {
		p, ok := t.peers[m.GetTo()]
		if !ok {
			continue
		}
		if m.GetType() == raftpb.MessageType_MsgSnap {
			p.sendSnapshot(m)
			continue
		}
		select {
		case p.queue <- m:
		default:
			// Queue full: drop. raft resends what it needs; a forwarded
			// proposal goes back to its proposer (ReportUndelivered).
			go t.h.ReportUnreachable(m.GetTo())
			if m.GetType() == raftpb.MessageType_MsgProp {
				go t.h.ReportUndelivered([]*raftpb.Message{m})
			}
		}
	}
}

// PeerStatus implements raftstore.Transport.
func (t *GRPC) PeerStatus(ctx context.Context, id uint64) (*raftstore.MemberStatus, error) {
	t.mu.Lock()
	p, ok := t.peers[id]
	t.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("member %016x is not a known peer", id)
	}
	r, err := p.client.MemberStatus(ctx, &raftstorev1.MemberStatusRequest{ClusterId: t.cfg.ClusterID})
	if err != nil {
		return nil, fmt.Errorf("ask member %016x at %s: %w", id, p.addr, err)
	}
	return &raftstore.MemberStatus{
		Name: r.GetName(), ID: r.GetId(), PeerAddress: r.GetPeerAddress(), ClientAddress: r.GetClientAddress(),
		State: r.GetState(), Learner: r.GetLearner(), Term: r.GetTerm(), AppliedIndex: r.GetAppliedIndex(),
		CommitIndex: r.GetCommitIndex(), LeaderID: r.GetLeaderId(), ServingReads: r.GetServingReads(),
		Clock: r.GetClock(), Features: r.GetFeatures(),
	}, nil
}

// Forward implements raftstore.Transport.
func (t *GRPC) Forward(ctx context.Context, id uint64, kind string, payload []byte) ([]byte, error) {
	t.mu.Lock()
	p, ok := t.peers[id]
	t.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("member %016x is not a known peer", id)
	}
	r, err := p.client.Forward(ctx, &raftstorev1.ForwardRequest{ClusterId: t.cfg.ClusterID, From: t.cfg.LocalID, Kind: kind, Payload: payload})
	if err != nil {
		return nil, fmt.Errorf("forward %s to member %016x at %s: %w", kind, id, p.addr, err)
	}
	return r.GetPayload(), nil
}

// Forward implements raftstorev1.PeerServiceServer.
func (ps peerServer) Forward(ctx context.Context, req *raftstorev1.ForwardRequest) (*raftstorev1.ForwardResponse, error) {
	t := ps.t
	if err := t.checkCluster(req.GetClusterId()); err != nil {
		return nil, err
	}
	out, err := t.h.HandleForward(ctx, req.GetFrom(), req.GetKind(), req.GetPayload())
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	return &raftstorev1.ForwardResponse{Payload: out}, nil
}

// Join implements raftstorev1.PeerServiceServer.
func (ps peerServer) Join(ctx context.Context, req *raftstorev1.JoinRequest) (*raftstorev1.JoinResponse, error) {
	resp, err := ps.t.h.HandleJoin(ctx, req)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "join: %v", err)
	}
	return resp, nil
}

// Join asks the member whose peer listener is at addr to add the caller
// (see raftstore.Node.HandleJoin). It is used before the caller's own node
// exists, so it dials directly.
func Join(ctx context.Context, addr string, req *raftstorev1.JoinRequest, opts ...grpc.DialOption) (*raftstorev1.JoinResponse, error) {
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return raftstorev1.NewPeerServiceClient(conn).Join(ctx, req)
}

func (t *GRPC) checkCluster(id uint64) error {
	if id != t.cfg.ClusterID {
		return status.Errorf(codes.FailedPrecondition, "peer belongs to cluster %016x, this member to cluster %016x", id, t.cfg.ClusterID)
	}
	return nil
}

// Stream implements raftstorev1.PeerServiceServer.
func (ps peerServer) Stream(stream raftstorev1.PeerService_StreamServer) error {
	t := ps.t
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&raftstorev1.StreamResponse{})
		}
		if err != nil {
			return err
		}
		if err := t.checkCluster(req.GetClusterId()); err != nil {
			t.log.Warn("refused peer stream", "from", fmt.Sprintf("%016x", req.GetFrom()), "err", err)
			return err
		}
		for _, b := range req.GetMessages() {
			m := &raftpb.Message{}
			if err := proto.Unmarshal(b, m); err != nil {
				return status.Errorf(codes.InvalidArgument, "decode raft message: %v", err)
			}
			if err := t.h.Process(stream.Context(), m); err != nil {
				return status.Errorf(codes.Unavailable, "process raft message: %v", err)
			}
		}
	}
}

// SendSnapshot implements raftstorev1.PeerServiceServer.
func (ps peerServer) SendSnapshot(stream raftstorev1.PeerService_SendSnapshotServer) error {
	t := ps.t
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return status.Error(codes.InvalidArgument, "snapshot stream must start with a header")
	}
	if err := t.checkCluster(hdr.GetClusterId()); err != nil {
		return err
	}
	m := &raftpb.Message{}
	if err := proto.Unmarshal(hdr.GetMessage(), m); err != nil || m.GetType() != raftpb.MessageType_MsgSnap {
		return status.Errorf(codes.InvalidArgument, "snapshot header does not hold a MsgSnap (%v)", err)
	}
	r := &chunkReader{stream: stream, remaining: hdr.GetSize()}
	if err := t.h.ReceiveSnapshot(stream.Context(), m, r, func() []byte { return r.sum }); err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	return stream.SendAndClose(&raftstorev1.SendSnapshotResponse{})
}

// chunkReader reads a snapshot's database chunks and then its trailer.
type chunkReader struct {
	stream    raftstorev1.PeerService_SendSnapshotServer
	buf       []byte
	remaining uint64
	sum       []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.sum != nil {
			return 0, io.EOF
		}
		req, err := r.stream.Recv()
		if err != nil {
			return 0, fmt.Errorf("snapshot stream: %w", err)
		}
		switch part := req.GetPart().(type) {
		case *raftstorev1.SendSnapshotRequest_Chunk:
			if uint64(len(part.Chunk)) > r.remaining {
				return 0, errors.New("snapshot larger than its header says")
			}
			r.remaining -= uint64(len(part.Chunk))
			r.buf = part.Chunk
		case *raftstorev1.SendSnapshotRequest_Trailer:
			if r.remaining != 0 {
				return 0, fmt.Errorf("snapshot ended %d bytes short", r.remaining)
			}
			r.sum = part.Trailer.GetSha256()
			if r.sum == nil {
				r.sum = []byte{}
			}
		default:
			return 0, errors.New("unexpected part in snapshot stream")
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// MemberStatus implements raftstorev1.PeerServiceServer.
func (ps peerServer) MemberStatus(_ context.Context, req *raftstorev1.MemberStatusRequest) (*raftstorev1.MemberStatusResponse, error) {
	t := ps.t
	if err := t.checkCluster(req.GetClusterId()); err != nil {
		return nil, err
	}
	s := t.h.Status()
	return &raftstorev1.MemberStatusResponse{
		Name: s.Name, Id: s.ID, PeerAddress: s.PeerAddress, ClientAddress: s.ClientAddress, State: s.State,
		Learner: s.Learner, Term: s.Term, AppliedIndex: s.AppliedIndex, CommitIndex: s.CommitIndex,
		LeaderId: s.LeaderID, ServingReads: s.ServingReads, Clock: s.Clock, Features: s.Features,
	}, nil
}

// peer is the sending side towards one member.
type peer struct {
	t      *GRPC
	id     uint64
	addr   string
	conn   *grpc.ClientConn
	client raftstorev1.PeerServiceClient
	queue  chan *raftpb.Message
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	snapMu sync.Mutex
	snap   bool // a snapshot transfer is in progress
}

func (t *GRPC) newPeer(id uint64, addr string) (*peer, error) {
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WithInitialWindowSize(windowBytes),
		grpc.WithInitialConnWindowSize(windowBytes),
	}, t.cfg.DialOptions...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(t.ctx)
	p := &peer{t: t, id: id, addr: addr, conn: conn, client: raftstorev1.NewPeerServiceClient(conn),
		queue: make(chan *raftpb.Message, t.cfg.QueueSize), ctx: ctx, cancel: cancel}
	p.wg.Add(1)
	go p.run()
	return p, nil
}

func (p *peer) stop() {
	p.cancel()
	p.wg.Wait()
	p.conn.Close()
}

// run keeps a stream open and writes queued messages to it in batches.
func (p *peer) run() {
	defer p.wg.Done()
	var stream raftstorev1.PeerService_StreamClient
	var lastErr string
	for {
		var first *raftpb.Message
		select {
		case first = <-p.queue:
		case <-p.ctx.Done():
			if stream != nil {
				_, _ = stream.CloseAndRecv()
			}
			return
		}
		batch := [][]byte{}
		size := 0
		// props are the batch's forwarded proposals, handed back to the
		// node if the batch is dropped unsent.
		var props []*raftpb.Message
		add := func(m *raftpb.Message) {
			b, err := proto.Marshal(m)
			if err != nil {
				p.t.log.Error("encode raft message", "err", err)
				return
			}
			batch = append(batch, b)
			size += len(b)
			if m.GetType() == raftpb.MessageType_MsgProp {
				props = append(props, m)
			}
		}
		add(first)
	fill:
		for size < maxBatchBytes {
			select {
			case m := <-p.queue:
				add(m)
			default:
				break fill
			}
		}
		if stream == nil {
			s, err := p.client.Stream(p.ctx)
			if err != nil {
				p.undelivered(props)
				p.failed(err, &lastErr)
				continue
			}
			stream = s
		}
		if err := stream.Send(&raftstorev1.StreamRequest{ClusterId: p.t.cfg.ClusterID, From: p.t.cfg.LocalID, Messages: batch}); err != nil {
			// A failed Send handed nothing to the connection (grpc-go
			// queues a message whole or returns an error), so the batch
			// is undelivered; what earlier Sends queued may be lost too,
			// but may also have arrived, and is not reported.
			p.undelivered(props)
			// The real cause is in the stream's status.
			if _, rerr := stream.CloseAndRecv(); rerr != nil {
				err = rerr
			}
			stream = nil
			p.failed(err, &lastErr)
			continue
		}
		if lastErr != "" {
			p.t.log.Info("peer reachable again", "peer", fmt.Sprintf("%016x", p.id), "addr", p.addr)
			lastErr = ""
		}
	}
}

// failed reports the peer unreachable, logs a new kind of failure once, and
// drops what is queued (stale by the time the peer is back) after a pause.
func (p *peer) failed(err error, lastErr *string) {
	if p.ctx.Err() != nil {
		return
	}
	p.t.h.ReportUnreachable(p.id)
	if msg := err.Error(); msg != *lastErr {
		level := slog.LevelWarn
		if status.Code(err) == codes.FailedPrecondition {
			level = slog.LevelError
		}
		p.t.log.Log(p.ctx, level, "cannot reach peer", "peer", fmt.Sprintf("%016x", p.id), "addr", p.addr, "err", err)
		*lastErr = msg
	}
	t := time.NewTimer(reconnectBackoff)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.ctx.Done():
	}
	var props []*raftpb.Message
	for {
		select {
		case m := <-p.queue:
			if m.GetType() == raftpb.MessageType_MsgProp {
				props = append(props, m)
			}
		default:
			p.undelivered(props)
			return
		}
	}
}

// undelivered hands forwarded proposals that were never sent back to the
// node, so their proposers need not wait for their deadline.
func (p *peer) undelivered(props []*raftpb.Message) {
	if len(props) > 0 && p.ctx.Err() == nil {
		p.t.h.ReportUndelivered(props)
	}
}

// sendSnapshot starts one snapshot transfer unless one is in progress (raft
// asks again after ReportSnapshot).
func (p *peer) sendSnapshot(m *raftpb.Message) {
	p.snapMu.Lock()
	if p.snap {
		p.snapMu.Unlock()
		go p.t.h.ReportSnapshot(p.id, false)
		return
	}
	p.snap = true
	p.snapMu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		err := p.transferSnapshot(m)
		p.snapMu.Lock()
		p.snap = false
		p.snapMu.Unlock()
		if err != nil {
			p.t.log.Warn("snapshot transfer failed", "peer", fmt.Sprintf("%016x", p.id), "err", err)
		}
		p.t.h.ReportSnapshot(p.id, err == nil)
	}()
}

func (p *peer) transferSnapshot(m *raftpb.Message) error {
	s, err := p.t.h.OpenSnapshot(m)
	if err != nil {
		return err
	}
	defer s.Close()
	hdrMsg, err := proto.Marshal(s.Message)
	if err != nil {
		return err
	}
	stream, err := p.client.SendSnapshot(p.ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&raftstorev1.SendSnapshotRequest{Part: &raftstorev1.SendSnapshotRequest_Header{Header: &raftstorev1.SnapshotHeader{
		ClusterId: p.t.cfg.ClusterID, From: p.t.cfg.LocalID, Message: hdrMsg, Size: uint64(s.Size),
	}}}); err != nil {
		return closeErr(stream, err)
	}
	h := sha256.New()
	buf := make([]byte, snapshotChunk)
	for {
		n, rerr := io.ReadFull(s, buf)
		if n > 0 {
			h.Write(buf[:n])
			if err := stream.Send(&raftstorev1.SendSnapshotRequest{Part: &raftstorev1.SendSnapshotRequest_Chunk{Chunk: append([]byte(nil), buf[:n]...)}}); err != nil {
				return closeErr(stream, err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read state database: %w", rerr)
		}
	}
	if err := stream.Send(&raftstorev1.SendSnapshotRequest{Part: &raftstorev1.SendSnapshotRequest_Trailer{Trailer: &raftstorev1.SnapshotTrailer{Sha256: h.Sum(nil)}}}); err != nil {
		return closeErr(stream, err)
	}
	_, err = stream.CloseAndRecv()
	return err
}

func closeErr(stream raftstorev1.PeerService_SendSnapshotClient, err error) error {
	if _, rerr := stream.CloseAndRecv(); rerr != nil {
		return rerr
	}
	return err
}
