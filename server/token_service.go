package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/rancher"
	"github.com/tokenstore/tokenstore/server/state"
	"github.com/tokenstore/tokenstore/server/token"
)

// Input limits: requests beyond them are refused with InvalidArgument.
const (
	maxNameLen        = 253
	maxGroups         = 256
	maxExtraKeys      = 64
	maxDescriptionLen = 1024
	maxLabels         = 64
	maxAudiences      = 32
	maxAudienceLen    = 512
	defaultPageSize   = 100
	maxPageSize       = 1000
	// maxImportBatch bounds the tokens of one ImportTokens request (one
	// raft entry); tokenctl sends smaller batches.
	maxImportBatch = 1000
)

// tokenService implements tokenstorev1.TokenServiceServer.
type tokenService struct {
	tokenstorev1.UnimplementedTokenServiceServer
	s *Server
}

// propose replicates cmd and returns the state's outcome at its index.
func (s *Server) propose(ctx context.Context, what string, cmd *raftstorev1.Command) (state.Outcome, uint64, error) {
	b, err := proto.Marshal(cmd)
	if err != nil {
		return state.Outcome{}, 0, status.Errorf(codes.Internal, "%s: encode: %v", what, err)
	}
	res, err := s.node.Propose(ctx, b)
	if err != nil {
		s.metrics.proposals.WithLabelValues("failed").Inc()
		return state.Outcome{}, 0, rpcError(what, err)
	}
	s.metrics.proposals.WithLabelValues("applied").Inc()
	out, _ := res.Value.(state.Outcome)
	if out.Err != nil {
		// Refusals name the token already ("token "x": not found").
		return out, res.Index, rpcError("refused", out.Err)
	}
	return out, res.Index, nil
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func validateUser(u *tokenstorev1.UserInfo) error {
	if u.GetUsername() == "" {
		return invalid("user.username is required")
	}
	if len(u.GetUsername()) > maxNameLen || len(u.GetUid()) > maxNameLen {
		return invalid("user.username and user.uid must be at most %d bytes", maxNameLen)
	}
	if len(u.GetGroups()) > maxGroups {
		return invalid("at most %d groups", maxGroups)
	}
	for _, g := range u.GetGroups() {
		if g == "" || len(g) > maxNameLen {
			return invalid("group %q: must be 1 to %d bytes", g, maxNameLen)
		}
	}
	if len(u.GetExtra()) > maxExtraKeys {
		return invalid("at most %d extra keys", maxExtraKeys)
	}
	for k := range u.GetExtra() {
		if k == "" || len(k) > maxNameLen {
			return invalid("extra key %q: must be 1 to %d bytes", k, maxNameLen)
		}
	}
	return nil
}

// validateAudiences checks the audiences a token is bound to.
func validateAudiences(auds []string) error {
	if len(auds) > maxAudiences {
		return invalid("at most %d audiences", maxAudiences)
	}
	for i, a := range auds {
		if a == "" || len(a) > maxAudienceLen {
			return invalid("audience %q: must be 1 to %d bytes", a, maxAudienceLen)
		}
		for _, b := range auds[:i] {
			if a == b {
				return invalid("audience %q given twice", a)
			}
		}
	}
	return nil
}

func validateMeta(description string, labels map[string]string, audiences []string) error {
	if len(description) > maxDescriptionLen {
		return invalid("description must be at most %d bytes", maxDescriptionLen)
	}
	if len(labels) > maxLabels {
		return invalid("at most %d labels", maxLabels)
	}
	return validateAudiences(audiences)
}

// storedUser converts an API user to the stored form.
func storedUser(u *tokenstorev1.UserInfo) *raftstorev1.User {
	user := &raftstorev1.User{Username: u.GetUsername(), Uid: u.GetUid(), Groups: u.GetGroups()}
	if len(u.GetExtra()) > 0 {
		user.Extra = map[string]*raftstorev1.ExtraValues{}
		for k, v := range u.GetExtra() {
			user.Extra[k] = &raftstorev1.ExtraValues{Values: v.GetValues()}
		}
	}
	return user
}

func (t *tokenService) CreateToken(ctx context.Context, req *tokenstorev1.CreateTokenRequest) (*tokenstorev1.CreateTokenResponse, error) {
	if err := validateUser(req.GetUser()); err != nil {
		return nil, err
	}
	if err := validateMeta(req.GetDescription(), req.GetLabels(), req.GetAudiences()); err != nil {
		return nil, err
	}
	var ttl time.Duration
	if req.GetTtl() != nil {
		if err := req.GetTtl().CheckValid(); err != nil {
			return nil, invalid("ttl: %v", err)
		}
		if ttl = req.GetTtl().AsDuration(); ttl <= 0 {
			return nil, invalid("ttl must be positive")
		}
	}
	user := storedUser(req.GetUser())
	// An id collision (80 random bits) is refused by apply; try a new one.
	for attempt := 0; ; attempt++ {
		id, err := token.NewID(t.s.clock.Now())
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		secret, err := token.NewSecret()
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		salt, err := token.NewSalt()
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		hash := token.Hash(salt, secret)
		now := t.s.clock.Now()
		rec := &raftstorev1.TokenRecord{
			Format: 1, Id: id, Salt: salt, SecretHash: hash[:], User: user,
			CreatedUnixNano: now.UnixNano(), Description: req.GetDescription(), Labels: req.GetLabels(),
			Audiences: req.GetAudiences(),
		}
		if ttl > 0 {
			rec.ExpiresUnixNano = now.Add(ttl).UnixNano()
		}
		// A token bound to audiences travels as a one-record import: a
		// member without audience support stops on it rather than store a
		// token it would accept for any audience.
		cmd := &raftstorev1.Command{Op: &raftstorev1.Command_CreateToken{CreateToken: &raftstorev1.CreateToken{Record: rec}}}
		if len(rec.GetAudiences()) > 0 {
			cmd = &raftstorev1.Command{Op: &raftstorev1.Command_ImportTokens{ImportTokens: &raftstorev1.ImportTokens{Records: []*raftstorev1.TokenRecord{rec}}}}
		}
		out, idx, err := t.s.propose(ctx, "create token", cmd)
		if errors.Is(out.Err, state.ErrExists) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, err
		}
		created := out.Record
		if created == nil && len(out.Imported) == 1 {
			created = out.Imported[0]
		}
		return &tokenstorev1.CreateTokenResponse{Header: t.s.header(idx), Token: apiToken(created), BearerToken: token.Bearer(id, secret)}, nil
	}
}

func (t *tokenService) GetToken(ctx context.Context, req *tokenstorev1.GetTokenRequest) (*tokenstorev1.GetTokenResponse, error) {
	if !token.ValidID(req.GetId()) {
		return nil, invalid("token id %q is not a valid id", req.GetId())
	}
	if err := t.s.readGate(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	var rec *raftstorev1.TokenRecord
	var rev uint64
	err := t.s.node.View(func(tx *bolt.Tx, applied uint64) error {
		var err error
		rec, err = state.Get(tx, req.GetId())
		rev = applied
		return err
	})
	if err != nil {
		return nil, rpcError("get token", err)
	}
	if rec == nil {
		return nil, status.Errorf(codes.NotFound, "token %s not found", req.GetId())
	}
	return &tokenstorev1.GetTokenResponse{Header: t.s.header(rev), Token: apiToken(rec)}, nil
}

func (t *tokenService) ListTokens(ctx context.Context, req *tokenstorev1.ListTokensRequest) (*tokenstorev1.ListTokensResponse, error) {
	size := int(req.GetPageSize())
	if size == 0 {
		size = defaultPageSize
	}
	if size > maxPageSize {
		size = maxPageSize
	}
	var after string
	if req.GetPageToken() != "" {
		b, err := base64.RawURLEncoding.DecodeString(req.GetPageToken())
		if err != nil || !token.ValidID(string(b)) {
			return nil, invalid("page_token is not one this server issued")
		}
		after = string(b)
	}
	if err := t.s.readGate(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	var recs []*raftstorev1.TokenRecord
	var more bool
	var rev uint64
	err := t.s.node.View(func(tx *bolt.Tx, applied uint64) error {
		var err error
		recs, more, err = state.List(tx, after, size)
		rev = applied
		return err
	})
	if err != nil {
		return nil, rpcError("list tokens", err)
	}
	resp := &tokenstorev1.ListTokensResponse{Header: t.s.header(rev)}
	for _, r := range recs {
		resp.Tokens = append(resp.Tokens, apiToken(r))
	}
	if more && len(recs) > 0 {
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(recs[len(recs)-1].GetId()))
	}
	return resp, nil
}

func (t *tokenService) UpdateToken(ctx context.Context, req *tokenstorev1.UpdateTokenRequest) (*tokenstorev1.UpdateTokenResponse, error) {
	if !token.ValidID(req.GetId()) {
		return nil, invalid("token id %q is not a valid id", req.GetId())
	}
	u := &raftstorev1.UpdateToken{Id: req.GetId(), Disabled: req.Disabled, Description: req.Description, ExpectedUpdateRevision: req.GetExpectedUpdateRevision()}
	if req.GetExpiresAt() != nil && req.GetClearExpiry() {
		return nil, invalid("expires_at and clear_expiry exclude each other")
	}
	if req.GetExpiresAt() != nil {
		if err := req.GetExpiresAt().CheckValid(); err != nil {
			return nil, invalid("expires_at: %v", err)
		}
		v := req.GetExpiresAt().AsTime().UnixNano()
		u.ExpiresUnixNano = &v
	}
	if req.GetClearExpiry() {
		var zero int64
		u.ExpiresUnixNano = &zero
	}
	if u.Disabled == nil && u.ExpiresUnixNano == nil && u.Description == nil {
		return nil, invalid("nothing to update: set disabled, expires_at, clear_expiry or description")
	}
	if len(req.GetDescription()) > maxDescriptionLen {
		return nil, invalid("description must be at most %d bytes", maxDescriptionLen)
	}
	out, idx, err := t.s.propose(ctx, fmt.Sprintf("update token %s", req.GetId()), &raftstorev1.Command{Op: &raftstorev1.Command_UpdateToken{UpdateToken: u}})
	if err != nil {
		return nil, err
	}
	return &tokenstorev1.UpdateTokenResponse{Header: t.s.header(idx), Token: apiToken(out.Record)}, nil
}

func (t *tokenService) RevokeToken(ctx context.Context, req *tokenstorev1.RevokeTokenRequest) (*tokenstorev1.RevokeTokenResponse, error) {
	if !token.ValidID(req.GetId()) {
		return nil, invalid("token id %q is not a valid id", req.GetId())
	}
	cmd := &raftstorev1.Command{Op: &raftstorev1.Command_RevokeToken{RevokeToken: &raftstorev1.RevokeToken{Id: req.GetId(), RevokedUnixNano: t.s.clock.Now().UnixNano()}}}
	out, idx, err := t.s.propose(ctx, fmt.Sprintf("revoke token %s", req.GetId()), cmd)
	if err != nil {
		return nil, err
	}
	return &tokenstorev1.RevokeTokenResponse{Header: t.s.header(idx), Token: apiToken(out.Record)}, nil
}

// ImportTokens stores one batch of tokens made elsewhere as one entry. Every
// token is checked first (id form, user, hash format, limits) and the
// problems are reported together.
func (t *tokenService) ImportTokens(ctx context.Context, req *tokenstorev1.ImportTokensRequest) (*tokenstorev1.ImportTokensResponse, error) {
	toks := req.GetTokens()
	if len(toks) == 0 {
		return nil, invalid("no tokens to import")
	}
	if len(toks) > maxImportBatch {
		return nil, invalid("%d tokens in one request: at most %d (send several batches)", len(toks), maxImportBatch)
	}
	now := t.s.clock.Now().UnixNano()
	recs := make([]*raftstorev1.TokenRecord, 0, len(toks))
	seen := make(map[string]bool, len(toks))
	var problems []string
	for _, tok := range toks {
		rec, err := importedRecord(tok, now)
		if err == nil && seen[tok.GetId()] {
			err = invalid("given twice")
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("token %q: %s", tok.GetId(), status.Convert(err).Message()))
			if len(problems) == 10 {
				problems = append(problems, "(further problems not listed)")
				break
			}
			continue
		}
		seen[tok.GetId()] = true
		recs = append(recs, rec)
	}
	if len(problems) > 0 {
		return nil, invalid("import refused: %s", strings.Join(problems, "; "))
	}
	cmd := &raftstorev1.Command{Op: &raftstorev1.Command_ImportTokens{ImportTokens: &raftstorev1.ImportTokens{Records: recs, SkipExisting: req.GetSkipExisting()}}}
	out, idx, err := t.s.propose(ctx, fmt.Sprintf("import %d tokens", len(recs)), cmd)
	if err != nil {
		return nil, err
	}
	resp := &tokenstorev1.ImportTokensResponse{Header: t.s.header(idx), SkippedIds: out.Skipped}
	for _, r := range out.Imported {
		resp.Imported = append(resp.Imported, apiToken(r))
	}
	return resp, nil
}

// importedRecord checks one token to import and makes its record.
func importedRecord(tok *tokenstorev1.ImportedToken, now int64) (*raftstorev1.TokenRecord, error) {
	if !token.ValidID(tok.GetId()) {
		return nil, invalid("id must be 1 to 253 lowercase letters, digits, '-' or '.'")
	}
	if err := validateUser(tok.GetUser()); err != nil {
		return nil, err
	}
	if err := validateMeta(tok.GetDescription(), tok.GetLabels(), tok.GetAudiences()); err != nil {
		return nil, err
	}
	if _, err := rancher.ParseHash(tok.GetRancherHash()); err != nil {
		return nil, invalid("rancher_hash: %v", err)
	}
	rec := &raftstorev1.TokenRecord{
		Format: 1, Id: tok.GetId(), RancherHash: tok.GetRancherHash(), User: storedUser(tok.GetUser()),
		CreatedUnixNano: now, Disabled: tok.GetDisabled(), Description: tok.GetDescription(),
		Labels: tok.GetLabels(), Audiences: tok.GetAudiences(),
	}
	if e := tok.GetExpiresAt(); e != nil {
		if err := e.CheckValid(); err != nil {
			return nil, invalid("expires_at: %v", err)
		}
		if rec.ExpiresUnixNano = e.AsTime().UnixNano(); rec.ExpiresUnixNano == 0 {
			rec.ExpiresUnixNano = 1 // the epoch itself: expired, not "never"
		}
	}
	return rec, nil
}

func ts(unixNano int64) *timestamppb.Timestamp {
	if unixNano == 0 {
		return nil
	}
	return timestamppb.New(time.Unix(0, unixNano))
}

// apiToken converts a stored record to the API form; the hash and salt stay
// inside.
func apiToken(r *raftstorev1.TokenRecord) *tokenstorev1.Token {
	if r == nil {
		return nil
	}
	return &tokenstorev1.Token{
		Id: r.GetId(), User: state.UserInfo(r.GetUser()),
		CreatedAt: ts(r.GetCreatedUnixNano()), ExpiresAt: ts(r.GetExpiresUnixNano()),
		Disabled: r.GetDisabled(), Revoked: r.GetRevoked(), RevokedAt: ts(r.GetRevokedUnixNano()),
		Description: r.GetDescription(), Labels: r.GetLabels(), LastUsedAt: ts(r.GetLastUsedUnixNano()),
		CreateRevision: r.GetCreateRevision(), UpdateRevision: r.GetUpdateRevision(),
		Audiences: r.GetAudiences(), HashFormat: state.HashFormat(r),
	}
}
