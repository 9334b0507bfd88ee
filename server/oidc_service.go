package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/oidc"
)

// maxOIDCIssuers bounds the issuers of one PutIssuers.
const maxOIDCIssuers = 100

// oidcService implements tokenstorev1.OIDCServiceServer. Writes are
// replicated entries; reads answer from the published issuer View after
// the read gate, like every other read.
type oidcService struct {
	tokenstorev1.UnimplementedOIDCServiceServer
	s *Server
}

// apiIssuer is an issuer as the API shows it.
func apiIssuer(r *raftstorev1.OIDCIssuer) *tokenstorev1.OIDCIssuer {
	out := &tokenstorev1.OIDCIssuer{Url: r.GetName(), Config: r.GetConfig(), ConfigRevision: r.GetConfigRevision(), KeysRevision: r.GetKeysRevision()}
	if n := r.GetKeysFetchedUnixNano(); n != 0 {
		out.KeysFetchedAt = ts(n)
	}
	if ks, _, err := oidc.ParseKeySet(r.GetJwks()); err == nil {
		out.KeyIds = ks.IDs()
	}
	return out
}

// PutIssuers parses and validates every document here, so a mistake is
// refused with its reason before anything is replicated, then puts every
// issuer in one entry.
func (o *oidcService) PutIssuers(ctx context.Context, req *tokenstorev1.PutIssuersRequest) (*tokenstorev1.PutIssuersResponse, error) {
	put := &raftstorev1.PutOIDCIssuers{}
	seen := map[string]bool{}
	for i, d := range req.GetDocuments() {
		cs, err := oidc.ParseDocuments(d)
		if err != nil {
			return nil, invalid("document %d: %v", i+1, err)
		}
		for _, c := range cs {
			if seen[c.Issuer.URL] {
				return nil, invalid("issuer %s given twice", c.Issuer.URL)
			}
			seen[c.Issuer.URL] = true
			b, err := c.Encode()
			if err != nil {
				return nil, status.Errorf(codes.Internal, "encode issuer %s: %v", c.Issuer.URL, err)
			}
			put.Issuers = append(put.Issuers, &raftstorev1.OIDCIssuer{Name: c.Issuer.URL, Config: b, KeySource: c.KeySource()})
		}
	}
	if len(put.Issuers) == 0 {
		return nil, invalid("no issuer given")
	}
	if len(put.Issuers) > maxOIDCIssuers {
		return nil, invalid("%d issuers in one put; at most %d", len(put.Issuers), maxOIDCIssuers)
	}
	res, idx, err := o.s.proposeOIDC(ctx, "put OIDC issuers", &raftstorev1.Command{Op: &raftstorev1.Command_PutOidcIssuers{PutOidcIssuers: put}})
	if err != nil {
		return nil, err
	}
	out := &tokenstorev1.PutIssuersResponse{Header: o.s.header(idx)}
	for _, r := range res.Issuers {
		out.Issuers = append(out.Issuers, apiIssuer(r))
	}
	return out, nil
}

// GetIssuer returns one issuer.
func (o *oidcService) GetIssuer(ctx context.Context, req *tokenstorev1.GetIssuerRequest) (*tokenstorev1.GetIssuerResponse, error) {
	if req.GetUrl() == "" {
		return nil, invalid("url is required")
	}
	if err := o.s.readGate(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	v := o.s.state.OIDC().View()
	is := v.Issuer(req.GetUrl())
	if is == nil {
		return nil, status.Errorf(codes.NotFound, "issuer %s: %v", req.GetUrl(), oidc.ErrNotFound)
	}
	return &tokenstorev1.GetIssuerResponse{Header: o.s.header(v.Applied), Issuer: apiIssuer(is.Record)}, nil
}

// ListIssuers returns every issuer from one View.
func (o *oidcService) ListIssuers(ctx context.Context, req *tokenstorev1.ListIssuersRequest) (*tokenstorev1.ListIssuersResponse, error) {
	if err := o.s.readGate(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	v := o.s.state.OIDC().View()
	out := &tokenstorev1.ListIssuersResponse{Header: o.s.header(v.Applied)}
	for _, is := range v.Issuers() {
		out.Issuers = append(out.Issuers, apiIssuer(is.Record))
	}
	return out, nil
}

// DeleteIssuer deletes an issuer in one entry.
func (o *oidcService) DeleteIssuer(ctx context.Context, req *tokenstorev1.DeleteIssuerRequest) (*tokenstorev1.DeleteIssuerResponse, error) {
	if req.GetUrl() == "" {
		return nil, invalid("url is required")
	}
	_, idx, err := o.s.proposeOIDC(ctx, "delete OIDC issuer", &raftstorev1.Command{Op: &raftstorev1.Command_DeleteOidcIssuer{DeleteOidcIssuer: &raftstorev1.DeleteOIDCIssuer{Name: req.GetUrl()}}})
	if err != nil {
		return nil, err
	}
	return &tokenstorev1.DeleteIssuerResponse{Header: o.s.header(idx)}, nil
}

// RefreshIssuer has the leader fetch the keys now; the answer shows the
// issuer as this member has applied it afterwards.
func (o *oidcService) RefreshIssuer(ctx context.Context, req *tokenstorev1.RefreshIssuerRequest) (*tokenstorev1.RefreshIssuerResponse, error) {
	if req.GetUrl() == "" {
		return nil, invalid("url is required")
	}
	if o.s.state.OIDC().View().Issuer(req.GetUrl()) == nil {
		return nil, status.Errorf(codes.NotFound, "issuer %s: %v", req.GetUrl(), oidc.ErrNotFound)
	}
	changed, err := o.s.refreshOIDC(ctx, req.GetUrl())
	if err != nil {
		if _, ok := status.FromError(err); ok && !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, status.Errorf(codes.Unavailable, "refresh OIDC keys of %s: %v", req.GetUrl(), err)
	}
	v := o.s.state.OIDC().View()
	is := v.Issuer(req.GetUrl())
	if is == nil {
		return nil, status.Errorf(codes.NotFound, "issuer %s: %v", req.GetUrl(), oidc.ErrNotFound)
	}
	return &tokenstorev1.RefreshIssuerResponse{Header: o.s.header(v.Applied), Issuer: apiIssuer(is.Record), Changed: changed}, nil
}
