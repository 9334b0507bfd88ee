package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/internal/gcfloor"
	"github.com/tokenstore/tokenstore/raftstore"
	"github.com/tokenstore/tokenstore/raftstore/transport"
	"github.com/tokenstore/tokenstore/server/clock"
	"github.com/tokenstore/tokenstore/server/discovery"
	"github.com/tokenstore/tokenstore/server/lastused"
	"github.com/tokenstore/tokenstore/server/state"
)

// Server is one running member.
type Server struct {
	cfg     Config
	log     *slog.Logger
	node    *raftstore.Node
	state   *state.State
	metrics *metrics
	// admission bounds the client requests in flight (overload.go).
	admission *admission
	grpc      *grpc.Server
	http      *http.Server
	health    *health.Server
	// clock is the member's time for every time check (clustertime.go).
	clock *clock.Clock
	// lastUsed is nil when tracking is disabled.
	lastUsed *lastused.Tracker
	// oidc validates JWTs and keeps OIDC key sets current (oidc.go).
	oidc *oidcParts
	// rbac answers authorization (rbac_service.go).
	rbac   *rbacService
	cancel context.CancelFunc
	// disc is nil without --listen-gossip.
	disc  *discovery.Discovery
	meta  discovery.Meta
	wg    sync.WaitGroup
	stopc chan struct{}
	// draining is set once Stop begins: readiness is false from then on
	// while requests are still answered (--shutdown-delay).
	draining atomic.Bool

	clientAddr string
	// sec is the TLS material of listeners and peer dials (security.go).
	sec *security
	// refusals rate-limits the log of refused callers (authz.go).
	refusals refusalLog
}

// Run starts a member and serves until ctx ends or the node stops on a
// fatal error. It returns that error, or nil after a clean shutdown.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	// Process-wide, so here rather than in Start: tests run several
	// members in one process.
	gcfloor.Run(ctx, uint64(cfg.GCHeapFloorMiB)<<20, log)
	s, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		s.Stop()
		return nil
	case <-s.node.Done():
		s.Stop()
		return fmt.Errorf("raft node stopped: %w", s.node.Err())
	}
}

// Start opens the data directory, joins or bootstraps the raft group and
// starts serving. Joining may wait for gossip to show a cluster; ctx bounds
// that wait.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log = log.With("member", cfg.Name)
	sec, err := newSecurity(cfg, log)
	if err != nil {
		return nil, err
	}

	peerL, err := net.Listen("tcp", cfg.ListenPeer)
	if err != nil {
		return nil, fmt.Errorf("listen on --listen-peer: %w", err)
	}
	clientL, err := net.Listen("tcp", cfg.ListenClient)
	if err != nil {
		peerL.Close()
		return nil, fmt.Errorf("listen on --listen-client: %w", err)
	}
	var httpL net.Listener
	if cfg.ListenHTTP != "" {
		if httpL, err = net.Listen("tcp", cfg.ListenHTTP); err != nil {
			peerL.Close()
			clientL.Close()
			return nil, fmt.Errorf("listen on --listen-http: %w", err)
		}
	}
	s := &Server{cfg: cfg, log: log, sec: sec, state: state.New(), stopc: make(chan struct{}), clientAddr: clientL.Addr().String()}
	closeAll := func() {
		peerL.Close()
		clientL.Close()
		if httpL != nil {
			httpL.Close()
		}
		if s.disc != nil {
			s.disc.Stop()
		}
	}
	if cfg.ListenGossip != "" {
		ident, _ := raftstore.ReadIdentity(cfg.DataDir)
		s.meta = discovery.Meta{Name: cfg.Name, PeerAddr: cfg.AdvertisePeer, ClientAddr: cfg.AdvertiseClient, Version: version(), Nonce: newNonce()}
		if ident != nil && hasRaftState(cfg.DataDir) {
			s.meta.MemberID, s.meta.ClusterID = ident.GetId(), ident.GetClusterId()
		}
		s.disc, err = discovery.Start(discovery.Config{
			Bind: cfg.ListenGossip, Advertise: cfg.AdvertiseGossip, Seeds: cfg.Join, Meta: s.meta, SecretKey: cfg.gossipKey,
			OnUpdate: s.onGossip, Logger: log,
		})
		if err != nil {
			closeAll()
			return nil, err
		}
	}
	p, err := s.makePlan(ctx, s.disc)
	if err != nil {
		closeAll()
		return nil, err
	}
	if s.clock, err = s.newClock(p.id); err != nil {
		closeAll()
		return nil, err
	}
	tr := transport.New(transport.Config{ClusterID: p.clusterID, LocalID: p.id, Listener: peerL, Logger: log,
		ServerOptions: sec.peerServerOptions(), DialOptions: sec.peerDialOptions()})
	s.node, err = raftstore.Open(raftstore.Config{
		Name: cfg.Name, ID: p.id, ClusterID: p.clusterID, DataDir: cfg.DataDir,
		InitialCluster: p.initial, JoinMembers: p.join, ForceNewCluster: cfg.ForceNewCluster,
		PeerAddress: cfg.AdvertisePeer, ClientAddress: cfg.AdvertiseClient,
		TickInterval: cfg.TickInterval, ElectionTicks: cfg.ElectionTicks, TestSyncDelay: cfg.TestFsyncDelay,
		SnapshotCount: cfg.SnapshotCount, CatchUpEntries: cfg.CatchUpEntries, MaxStaleness: cfg.MaxStaleness,
		StateMachine: s.state, Transport: tr, Logger: log, ClockStatus: s.clockStatus,
		Features: features(cfg),
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	if s.disc != nil {
		s.meta.MemberID, s.meta.ClusterID = p.id, p.clusterID
		if err := s.disc.SetMeta(s.meta); err != nil {
			log.Warn("could not gossip the cluster identity yet", "err", err)
		}
		s.refreshPeerAddresses()
	}
	s.metrics = newMetrics(s)
	s.wg.Add(1)
	go s.probePeers() // metrics.go
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.metrics.registerClock(s.clock, s.memberNames)
	s.runClock(bg)
	if cfg.LastUsedInterval > 0 {
		s.lastUsed = s.newLastUsedTracker()
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.lastUsed.Run(bg) }()
	}
	s.metrics.registerLastUsed(s.lastUsed)
	if cfg.BootstrapAdminToken {
		s.wg.Add(1)
		go s.bootstrapAdminLoop(bg) // admin_bootstrap.go
	}
	if cfg.TokenRetention > 0 {
		s.wg.Add(1)
		go s.retentionLoop(bg) // retention.go
	}
	if cfg.CleanupDeadAfter > 0 && s.disc != nil {
		s.wg.Add(1)
		go s.cleanupDeadLoop(bg)
	}

	// Admission runs first, so a refused request costs nothing further;
	// the peer transport's grpc.Server above has none of this (overload.go).
	s.admission = newAdmission(cfg.MaxInflight, cfg.OverloadRetryAfter, s.metrics.rejected)
	// Authorization (authz.go) comes right after admission.
	s.grpc = grpc.NewServer(append(append(clientServerTuning(), sec.clientServerOption()...), // grpc_tuning.go
		grpc.MaxRecvMsgSize(cfg.MaxRequestBytes), grpc.MaxSendMsgSize(MaxResponseBytes), // limits.go
		grpc.UnaryInterceptor(s.unaryInterceptor), // grpc_chain.go
		grpc.ChainStreamInterceptor(s.admission.streamInterceptor, s.authzStreamInterceptor),
	)...)
	s.rbac = newRBACService(s)
	s.oidc = s.startOIDC(bg) // oidc.go
	tokenstorev1.RegisterAuthServiceServer(s.grpc, &authService{s: s})
	tokenstorev1.RegisterRBACServiceServer(s.grpc, s.rbac)
	tokenstorev1.RegisterOIDCServiceServer(s.grpc, &oidcService{s: s})
	tokenstorev1.RegisterTokenServiceServer(s.grpc, &tokenService{s: s})
	tokenstorev1.RegisterClusterServiceServer(s.grpc, &clusterService{s: s})
	s.health = health.NewServer()
	// grpc's health server starts out SERVING; this member is not until
	// healthLoop has seen a confirmed read, so a client that watches health
	// right after start must not be told otherwise.
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	s.health.SetServingStatus(tokenstorev1.AuthService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.metrics.resolveMethods(s.grpc)

	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(clientL); err != nil {
			log.Error("client gRPC server stopped", "err", err)
		}
	}()
	go s.healthLoop()
	if httpL != nil {
		s.http = newHTTPServer(s.httpHandler(), defaultHTTPLimits) // limits.go
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.http.Serve(sec.httpListener(httpL)); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("HTTP server stopped", "err", err)
			}
		}()
	}
	log.Info("member started", "id", fmt.Sprintf("%016x", p.id), "cluster", fmt.Sprintf("%016x", p.clusterID),
		"client", clientL.Addr().String(), "peer", peerL.Addr().String(), "http", cfg.ListenHTTP, "data_dir", cfg.DataDir)
	return s, nil
}

// Node is the member's raft node.
func (s *Server) Node() *raftstore.Node { return s.node }

// Stop shuts the member down (on SIGTERM, as a StatefulSet rolling update
// or a scale-down sends it) without failing a request:
//
//  1. readiness turns false (/readyz 503, gRPC health NOT_SERVING), so load
//     balancers and kube-proxy stop sending new requests here;
//  2. a leader hands leadership to the most caught-up voter, so the cluster
//     does not wait out an election timeout (about a round trip instead of
//     a second or more without a leader);
//  3. requests are still answered for --shutdown-delay after the signal:
//     endpoint removal takes a moment to propagate, and a connection
//     refused meanwhile is an error kube-apiserver's webhook client does
//     not retry;
//  4. the listeners close, in-flight requests finish (up to 5 s each for
//     gRPC and HTTP), then raft and storage stop.
func (s *Server) Stop() {
	select {
	case <-s.stopc:
		return
	default:
	}
	drained := time.After(s.cfg.ShutdownDelay)
	s.health.Shutdown()
	s.draining.Store(true)
	close(s.stopc)
	s.transferLeadership()
	if s.cfg.ShutdownDelay > 0 {
		s.log.Info("draining before shutdown", "shutdown_delay", s.cfg.ShutdownDelay.String())
		<-drained
		s.transferLeadership() // in case an election made this member leader again meanwhile
	}
	s.cancel()
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.grpc.Stop()
	}
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.http.Shutdown(ctx)
		cancel()
	}
	s.wg.Wait()
	s.node.Stop()
	if s.disc != nil {
		s.disc.Stop()
	}
	s.log.Info("member stopped")
}

func (s *Server) transferLeadership() {
	if s.node.Leader() != s.node.ID() {
		return
	}
	members, err := s.node.Members()
	if err != nil {
		return
	}
	var best uint64
	var bestApplied uint64
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, m := range members {
		if m.GetId() == s.node.ID() {
			continue
		}
		st, err := s.node.PeerStatus(ctx, m.GetId())
		if err != nil || st.Learner {
			continue
		}
		if best == 0 || st.AppliedIndex > bestApplied {
			best, bestApplied = m.GetId(), st.AppliedIndex
		}
	}
	if best == 0 {
		return
	}
	if err := s.node.TransferLeadership(ctx, best); err != nil {
		s.log.Warn("leadership transfer before shutdown did not finish", "err", err)
		return
	}
	s.log.Info("handed leadership over before shutdown", "to", fmt.Sprintf("%016x", best))
}

// readyErr says why this member must not get new requests from a load
// balancer, or nil: it is shutting down, or it cannot serve bounded reads.
// It backs /readyz and the gRPC health status.
func (s *Server) readyErr() error {
	if s.draining.Load() {
		return errors.New("shutting down")
	}
	if err := s.clock.Ready(); err != nil {
		return err
	}
	return s.node.BoundedReadCheck()
}

// healthLoop keeps the gRPC health status in step with read readiness.
func (s *Server) healthLoop() {
	defer s.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	last := healthpb.HealthCheckResponse_UNKNOWN
	for {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if s.readyErr() == nil {
			st = healthpb.HealthCheckResponse_SERVING
		}
		if st != last {
			s.health.SetServingStatus("", st)
			s.health.SetServingStatus(tokenstorev1.AuthService_ServiceDesc.ServiceName, st)
			last = st
		}
		select {
		case <-t.C:
		case <-s.stopc:
			return
		}
	}
}

// deadlineInterceptor gives a unary call that brings no deadline
// --request-timeout, except the methods that wait only in the read gate
// (readGateMethods), which bound their own wait there: a deadline is a
// timer and four allocations, and a bounded read never waits at all.
func (s *Server) deadlineInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if readGateMethods[info.FullMethod] {
		return h(ctx, req)
	}
	ctx, cancel := s.requestContext(ctx)
	defer cancel()
	return h(ctx, req)
}

// readGateMethods are the unary methods that wait for nothing but the read
// gate (readGate applies --request-timeout to that wait): everything else
// they do is a lookup in memory and CPU work bounded by the request.
var readGateMethods = map[string]bool{
	tokenstorev1.AuthService_Authenticate_FullMethodName: true,
	tokenstorev1.AuthService_Authorize_FullMethodName:    true,
}

// requestContext returns ctx with --request-timeout when it has no
// deadline of its own; the caller calls cancel when done.
func (s *Server) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

func (s *Server) header(rev uint64) *tokenstorev1.ResponseHeader {
	return &tokenstorev1.ResponseHeader{Revision: rev, Member: s.cfg.Name, MemberId: s.node.ID(), ClusterId: s.node.ClusterID()}
}

// ClientAddr is the address the client gRPC listener is bound to.
func (s *Server) ClientAddr() string { return s.clientAddr }
