package ctl

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// memberDouble is a TEST DOUBLE standing in for one tokenstore member. It
// serves the real generated gRPC interfaces over a real socket, but holds
// no state machine and no rules: it returns fixed values (or one fixed
// error) and records what it was asked. It exists only to prove the CLI's
// own behaviour on the wire: which endpoint a request goes to (failover),
// what is sent (flags to request fields), and how answers are rendered.
// Server behaviour is tested against real server processes elsewhere.
type memberDouble struct {
	name string
	// fail, when set, is returned by every RPC instead of an answer.
	fail error
	// block makes every RPC wait until its context ends, like a member
	// that accepted the request and hangs.
	block bool
	// tokens are what ListTokens pages through; page tokens are offsets.
	tokens []*tokenstorev1.Token

	mu       sync.Mutex
	calls    []string
	requests []proto.Message
}

// doubleBearer is the bearer token the double hands out and accepts.
const doubleBearer = "tok-1:s3cret-value"

// start serves d on a loopback port until the test ends and returns the
// address.
func (d *memberDouble) start(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := grpc.NewServer()
	tokenstorev1.RegisterTokenServiceServer(s, tokenDouble{m: d})
	tokenstorev1.RegisterAuthServiceServer(s, authDouble{m: d})
	tokenstorev1.RegisterClusterServiceServer(s, clusterDouble{m: d})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return l.Addr().String()
}

// answer records a call and returns the double's fixed error, if any.
func (d *memberDouble) answer(ctx context.Context, method string, req proto.Message) error {
	d.mu.Lock()
	d.calls = append(d.calls, method)
	d.requests = append(d.requests, proto.Clone(req))
	d.mu.Unlock()
	if d.block {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	return d.fail
}

// called returns the methods called so far, in order.
func (d *memberDouble) called() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

// received returns the requests received so far, in order.
func (d *memberDouble) received() []proto.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]proto.Message(nil), d.requests...)
}

func (d *memberDouble) header(rev uint64) *tokenstorev1.ResponseHeader {
	return &tokenstorev1.ResponseHeader{Revision: rev, Member: d.name, MemberId: 0xa1, ClusterId: 0xc1}
}

// doubleToken is the token every token RPC of the double answers with.
func doubleToken(id string) *tokenstorev1.Token {
	return &tokenstorev1.Token{
		Id:             id,
		User:           &tokenstorev1.UserInfo{Username: "alice", Uid: "1000", Groups: []string{"dev", "ops"}},
		CreatedAt:      timestamppb.New(testNow.Add(-24 * time.Hour)),
		Description:    "ci deploys",
		CreateRevision: 7,
		UpdateRevision: 9,
	}
}

type tokenDouble struct {
	tokenstorev1.UnimplementedTokenServiceServer
	m *memberDouble
}

func (s tokenDouble) CreateToken(ctx context.Context, req *tokenstorev1.CreateTokenRequest) (*tokenstorev1.CreateTokenResponse, error) {
	if err := s.m.answer(ctx, "CreateToken", req); err != nil {
		return nil, err
	}
	tok := doubleToken("tok-1")
	tok.User = req.GetUser()
	if req.GetTtl() != nil {
		tok.ExpiresAt = timestamppb.New(testNow.Add(req.GetTtl().AsDuration()))
	}
	return &tokenstorev1.CreateTokenResponse{Header: s.m.header(10), Token: tok, BearerToken: doubleBearer}, nil
}

func (s tokenDouble) GetToken(ctx context.Context, req *tokenstorev1.GetTokenRequest) (*tokenstorev1.GetTokenResponse, error) {
	if err := s.m.answer(ctx, "GetToken", req); err != nil {
		return nil, err
	}
	return &tokenstorev1.GetTokenResponse{Header: s.m.header(11), Token: doubleToken(req.GetId())}, nil
}

func (s tokenDouble) ListTokens(ctx context.Context, req *tokenstorev1.ListTokensRequest) (*tokenstorev1.ListTokensResponse, error) {
	if err := s.m.answer(ctx, "ListTokens", req); err != nil {
		return nil, err
	}
	start := 0
	if req.GetPageToken() != "" {
		n, err := strconv.Atoi(req.GetPageToken())
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, "bad page token")
		}
		start = n
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 100
	}
	end := min(start+size, len(s.m.tokens))
	resp := &tokenstorev1.ListTokensResponse{Header: s.m.header(uint64(20 + start)), Tokens: s.m.tokens[start:end]}
	if end < len(s.m.tokens) {
		resp.NextPageToken = strconv.Itoa(end)
	}
	return resp, nil
}

func (s tokenDouble) UpdateToken(ctx context.Context, req *tokenstorev1.UpdateTokenRequest) (*tokenstorev1.UpdateTokenResponse, error) {
	if err := s.m.answer(ctx, "UpdateToken", req); err != nil {
		return nil, err
	}
	return &tokenstorev1.UpdateTokenResponse{Header: s.m.header(12), Token: doubleToken(req.GetId())}, nil
}

func (s tokenDouble) RevokeToken(ctx context.Context, req *tokenstorev1.RevokeTokenRequest) (*tokenstorev1.RevokeTokenResponse, error) {
	if err := s.m.answer(ctx, "RevokeToken", req); err != nil {
		return nil, err
	}
	tok := doubleToken(req.GetId())
	tok.Revoked = true
	tok.RevokedAt = timestamppb.New(testNow)
	return &tokenstorev1.RevokeTokenResponse{Header: s.m.header(13), Token: tok}, nil
}

// ImportTokens stores nothing: it answers every token imported, except
// ids starting with "dup-", which it reports as skipped when asked to skip
// existing ids and refuses otherwise.
func (s tokenDouble) ImportTokens(ctx context.Context, req *tokenstorev1.ImportTokensRequest) (*tokenstorev1.ImportTokensResponse, error) {
	if err := s.m.answer(ctx, "ImportTokens", req); err != nil {
		return nil, err
	}
	resp := &tokenstorev1.ImportTokensResponse{Header: s.m.header(16)}
	for _, tok := range req.GetTokens() {
		if strings.HasPrefix(tok.GetId(), "dup-") {
			if !req.GetSkipExisting() {
				return nil, status.Errorf(codes.AlreadyExists, "refused: token %q: already exists", tok.GetId())
			}
			resp.SkippedIds = append(resp.SkippedIds, tok.GetId())
			continue
		}
		resp.Imported = append(resp.Imported, &tokenstorev1.Token{Id: tok.GetId(), User: tok.GetUser()})
	}
	return resp, nil
}

type authDouble struct {
	tokenstorev1.UnimplementedAuthServiceServer
	m *memberDouble
}

func (s authDouble) Authenticate(ctx context.Context, req *tokenstorev1.AuthenticateRequest) (*tokenstorev1.AuthenticateResponse, error) {
	if err := s.m.answer(ctx, "Authenticate", req); err != nil {
		return nil, err
	}
	id, _, _ := strings.Cut(req.GetToken(), ":")
	resp := &tokenstorev1.AuthenticateResponse{Header: s.m.header(14), TokenId: id}
	if req.GetToken() == doubleBearer {
		resp.Authenticated = true
		resp.User = &tokenstorev1.UserInfo{
			Username: "alice",
			Groups:   []string{"dev"},
			Extra:    map[string]*tokenstorev1.ExtraValue{"scope": {Values: []string{"a", "b"}}},
		}
	} else {
		resp.Reason = tokenstorev1.DenyReason_DENY_REASON_UNKNOWN
	}
	return resp, nil
}

type clusterDouble struct {
	tokenstorev1.UnimplementedClusterServiceServer
	m *memberDouble
}

func (s clusterDouble) Status(ctx context.Context, req *tokenstorev1.StatusRequest) (*tokenstorev1.StatusResponse, error) {
	if err := s.m.answer(ctx, "Status", req); err != nil {
		return nil, err
	}
	return &tokenstorev1.StatusResponse{
		Header:     s.m.header(15),
		ClusterId:  0xc1,
		LeaderId:   0xa1,
		LeaderName: s.m.name,
		Members: []*tokenstorev1.MemberStatus{
			{Name: s.m.name, Id: 0xa1, PeerAddress: "127.0.0.1:2380", ClientAddress: "127.0.0.1:23790",
				Role: tokenstorev1.MemberRole_MEMBER_ROLE_LEADER, Term: 3, AppliedIndex: 15, CommitIndex: 15,
				ServingReads: true, Reachable: true},
			{Name: "m2", Id: 0xa2, PeerAddress: "127.0.0.1:2381", ClientAddress: "127.0.0.1:23791",
				Reachable: false, Error: "connection refused"},
		},
	}, nil
}
