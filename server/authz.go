package server

import (
	"context"
	"crypto/x509"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/webhook"
)

// Authorization of callers (docs/security.md). Every client gRPC method and
// HTTP route needs one of three roles:
//
//   - public: health checks, probes and /metrics (load balancers and
//     Prometheus carry no credentials; none of them reveals a secret);
//   - authenticator: Authenticate, Authorize, the reflection service and the
//     webhooks. With --require-client-auth (the default) the caller needs a
//     verified client certificate or a valid token; without it they are
//     public;
//   - admin: everything else. The default is deliberate: a method not listed
//     below, including every method of a service added later, needs an
//     administrator, so a new service is protected without anyone
//     remembering to protect it.
//
// A caller is an administrator when its verified client certificate's
// subject (CN or full RFC 2253 subject) is in --admin-subjects, or when it
// presents (gRPC metadata "authorization: Bearer <token>", HTTP
// Authorization header) a valid token whose user is in --admin-group.
// Identities are never logged with a secret: a token caller is named by its
// token id and user.

// role is what a method requires of its caller.
type role int

const (
	rolePublic role = iota
	roleAuthenticator
	roleAdmin
)

func (r role) String() string {
	return [...]string{"public", "authenticator", "admin"}[r]
}

// methodRoles are the gRPC methods that need less than an administrator.
var methodRoles = map[string]role{
	healthpb.Health_Check_FullMethodName:                                   rolePublic,
	healthpb.Health_List_FullMethodName:                                    rolePublic,
	healthpb.Health_Watch_FullMethodName:                                   rolePublic,
	reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      roleAuthenticator,
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: roleAuthenticator,
	tokenstorev1.AuthService_Authenticate_FullMethodName:                   roleAuthenticator,
	tokenstorev1.AuthService_Authorize_FullMethodName:                      roleAuthenticator,
}

// MethodRole returns the role ("public", "authenticator" or "admin") the
// client gRPC method fullMethod requires; tests use it to iterate the API.
func MethodRole(fullMethod string) string { return methodRole(fullMethod).String() }

func methodRole(fullMethod string) role {
	if r, ok := methodRoles[fullMethod]; ok {
		return r
	}
	return roleAdmin
}

// httpRole is the role an HTTP route needs.
func httpRole(path string) role {
	switch {
	case path == "/healthz" || path == "/livez" || path == "/readyz" || path == "/metrics":
		return rolePublic
	case strings.HasPrefix(path, "/apis/authentication.k8s.io/"), strings.HasPrefix(path, "/apis/authorization.k8s.io/"),
		path == "/v1/authenticate":
		return roleAuthenticator
	}
	return roleAdmin
}

// caller is who sent a request.
type caller struct {
	// subject is the verified client certificate's subject CN ("" without).
	subject string
	// tokenID and user name a token caller.
	tokenID, user string
	// admin is worked out only for something that needs an administrator
	// (identify); false otherwise.
	admin bool
}

func (c caller) authenticated() bool { return c.subject != "" || c.tokenID != "" }

// identify works out the caller from its verified certificate and bearer
// token, for something that needs need. A token that is given but not
// valid is an error: a caller that means to present credentials and gets
// them wrong must hear so. Whether a certificate names an administrator is
// only worked out when need is roleAdmin: it formats the whole subject
// (RFC 2253), which costs more than the rest of an authentication, and an
// authenticator (kube-apiserver's webhook certificate, a proxy) calls
// Authenticate thousands of times a second.
func (s *Server) identify(cert *x509.Certificate, authorization string, need role) (caller, error) {
	var c caller
	if cert != nil {
		c.subject = cert.Subject.CommonName
		if c.subject == "" {
			c.subject = cert.Subject.String()
		}
		if need == roleAdmin {
			c.admin = slices.Contains(s.cfg.AdminSubjects, cert.Subject.CommonName) || slices.Contains(s.cfg.AdminSubjects, cert.Subject.String())
		}
	}
	if authorization == "" {
		return c, nil
	}
	bearer, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok {
		return c, status.Error(codes.Unauthenticated, "authorization: want \"Bearer <token>\"")
	}
	d := s.state.Authenticate(strings.TrimSpace(bearer), s.clock.Now()) // cluster time, as for every token check
	if d.Busy {
		return c, status.Error(codes.Unavailable, "caller's token: verification capacity exhausted, retry")
	}
	if !d.Authenticated {
		return c, status.Errorf(codes.Unauthenticated, "caller's token refused: %s", refusal(d.Reason))
	}
	c.tokenID, c.user = d.TokenID, d.User.GetUsername()
	if slices.Contains(d.User.GetGroups(), s.cfg.AdminGroup) {
		c.admin = true
	}
	return c, nil
}

// open reports whether anyone may call something that needs r, so the
// caller need not even be identified (no token hashed).
func (s *Server) open(r role) bool {
	return r == rolePublic || (r == roleAuthenticator && !s.cfg.RequireClientAuth)
}

// permit decides whether c may call something that needs r.
func (s *Server) permit(c caller, r role, what string) error {
	switch {
	case s.open(r):
		return nil
	case !c.authenticated():
		return status.Errorf(codes.Unauthenticated, "%s needs a client certificate or a token (authorization: Bearer <token>)", what)
	case r == roleAuthenticator || c.admin:
		return nil
	}
	s.logRefusal(c, what)
	return status.Errorf(codes.PermissionDenied, "%s needs an administrator (a client certificate in --admin-subjects or a token in group %q)", what, s.cfg.AdminGroup)
}

// refusalLog rate-limits the log of refused non-administrators: one line a
// second at most, with the number left out since, so a caller hammering
// admin methods cannot flood the log.
type refusalLog struct {
	mu         sync.Mutex
	next       time.Time
	suppressed uint64
}

func (s *Server) logRefusal(c caller, what string) {
	now := time.Now()
	s.refusals.mu.Lock()
	if now.Before(s.refusals.next) {
		s.refusals.suppressed++
		s.refusals.mu.Unlock()
		return
	}
	n := s.refusals.suppressed
	s.refusals.suppressed, s.refusals.next = 0, now.Add(time.Second)
	s.refusals.mu.Unlock()
	s.log.Info("refused a caller that is not an administrator", "what", what, "subject", c.subject,
		"token_id", c.tokenID, "user", c.user, "suppressed_since_last_line", n)
}

// authorizeRPC is the decision for one gRPC call.
func (s *Server) authorizeRPC(ctx context.Context, method string) error {
	r := methodRole(method)
	if s.open(r) {
		return nil
	}
	var cert *x509.Certificate
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			cert = ti.State.VerifiedChains[0][0]
		}
	}
	// ValueFromIncomingContext looks up the one key; FromIncomingContext
	// would copy every header of the call first.
	var authorization string
	if v := metadata.ValueFromIncomingContext(ctx, "authorization"); len(v) > 0 {
		authorization = v[0]
	}
	c, err := s.identify(cert, authorization, r)
	if err != nil {
		return err
	}
	return s.permit(c, r, method)
}

func (s *Server) authzStreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.authorizeRPC(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}

// authzHTTP refuses HTTP requests whose caller lacks the route's role:
// 401 without (valid) credentials, 403 for a non-administrator.
func (s *Server) authzHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need := httpRole(r.URL.Path)
		if !s.open(need) {
			var cert *x509.Certificate
			if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
				cert = r.TLS.VerifiedChains[0][0]
			}
			c, err := s.identify(cert, r.Header.Get("Authorization"), need)
			if err == nil {
				err = s.permit(c, need, r.URL.Path)
			}
			if err != nil {
				code := http.StatusForbidden
				switch status.Code(err) {
				case codes.Unauthenticated:
					code = http.StatusUnauthorized
				case codes.Unavailable:
					code = http.StatusServiceUnavailable
				}
				f := webhook.Failure{Code: code, Message: status.Convert(err).Message()}
				if code == http.StatusServiceUnavailable {
					f = webhook.Unavailable(f.Message)
				}
				webhook.WriteFailure(w, f)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
