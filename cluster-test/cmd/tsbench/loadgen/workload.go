package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/token"
)

// ReadMode is a ReadConsistency with its report name.
type ReadMode struct {
	Name string
	C    tokenstorev1.ReadConsistency
}

var (
	Bounded      = ReadMode{"bounded", tokenstorev1.ReadConsistency_READ_CONSISTENCY_BOUNDED}
	Linearizable = ReadMode{"linearizable", tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE}
)

// TokenSet is the tokens the authentication rounds present, with the user
// each must authenticate as.
type TokenSet struct {
	Bearers []string
	Users   []string
}

// CreateTokens creates n tokens through clients (all connected to member)
// with conc concurrent callers.
func CreateTokens(ctx context.Context, clients []tokenstorev1.TokenServiceClient, member string, n, conc int) (*TokenSet, error) {
	set := &TokenSet{Bearers: make([]string, n), Users: make([]string, n)}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, conc)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				user := fmt.Sprintf("bench-user-%d", i)
				var r *tokenstorev1.CreateTokenResponse
				var err error
				// A member shedding load (RESOURCE_EXHAUSTED) is asked again
				// after a pause, as a well-behaved client would.
				for try := 0; ; try++ {
					rctx, cancel := context.WithTimeout(ctx, Grace)
					r, err = clients[w%len(clients)].CreateToken(rctx, &tokenstorev1.CreateTokenRequest{
						User: &tokenstorev1.UserInfo{Username: user, Groups: []string{"bench"}},
					})
					cancel()
					if status.Code(err) != codes.ResourceExhausted || try == 20 {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if err == nil {
					err = CheckCreated(r, member, user)
				}
				if err != nil {
					errs[w] = fmt.Errorf("create token %d at %s: %w", i, member, err)
					return
				}
				set.Bearers[i], set.Users[i] = r.GetBearerToken(), user
			}
		}(w)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted while creating tokens: %w", ctx.Err())
	}
	return set, nil
}

// CheckCreated checks a CreateToken answer: from the member asked, for the
// user asked, with a bearer of the token form whose id is the token's.
func CheckCreated(r *tokenstorev1.CreateTokenResponse, member, user string) error {
	if got := r.GetHeader().GetMember(); got != member {
		return Wrongf("create answered by %q, asked %s", got, member)
	}
	id, _, ok := token.Parse(r.GetBearerToken())
	if !ok {
		return Wrongf("create returned a malformed bearer token")
	}
	if id != r.GetToken().GetId() {
		return Wrongf("bearer id %q differs from token id %q", id, r.GetToken().GetId())
	}
	if got := r.GetToken().GetUser().GetUsername(); got != user {
		return Wrongf("token created for %q, asked %q", got, user)
	}
	return nil
}

// AuthOp authenticates the set's tokens in turn at member, each client
// starting at its own offset, and checks each answer: authenticated, by
// member, as the token's user.
func AuthOp(clients []tokenstorev1.AuthServiceClient, set *TokenSet, mode ReadMode, member string) Op {
	n := len(set.Bearers)
	return func(ctx context.Context, w, seq int) error {
		i := (w*7919 + seq) % n
		r, err := clients[w%len(clients)].Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: set.Bearers[i], Consistency: mode.C})
		if err != nil {
			return err
		}
		if !r.GetAuthenticated() {
			return Wrongf("token refused: %v", r.GetReason())
		}
		if got := r.GetHeader().GetMember(); got != member {
			return Wrongf("answered by %q, asked %s", got, member)
		}
		if got := r.GetUser().GetUsername(); got != set.Users[i] {
			return Wrongf("authenticated as %q, want %q", got, set.Users[i])
		}
		return nil
	}
}

// CreateOp creates tokens at member and checks every answer. last[w] holds
// client w's latest bearer, for VerifyCreated; only client w writes it.
func CreateOp(clients []tokenstorev1.TokenServiceClient, member, tag string, last []string) Op {
	return func(ctx context.Context, w, seq int) error {
		user := fmt.Sprintf("bench-%s-w%d-%d", tag, w, seq)
		r, err := clients[w%len(clients)].CreateToken(ctx, &tokenstorev1.CreateTokenRequest{
			User: &tokenstorev1.UserInfo{Username: user, Groups: []string{"bench"}},
		})
		if err != nil {
			return err
		}
		if err := CheckCreated(r, member, user); err != nil {
			return err
		}
		last[w] = r.GetBearerToken()
		return nil
	}
}

// VerifyCreated checks, with Linearizable reads at another member, that the
// last token each client created is accepted there: a create that answered
// OK must be replicated. Failures are added to res.
func VerifyCreated(ctx context.Context, c tokenstorev1.AuthServiceClient, member string, last []string, res *RoundResult) {
	for _, b := range last {
		if b == "" {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, Grace)
		r, err := c.Authenticate(rctx, &tokenstorev1.AuthenticateRequest{Token: b, Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
		cancel()
		switch {
		case err != nil:
			res.Errs++
			res.Note(fmt.Sprintf("verify at %s: %v", member, err))
		case !r.GetAuthenticated():
			res.Wrong++
			res.Note(fmt.Sprintf("verify at %s: created token refused: %v", member, r.GetReason()))
		}
	}
}

// CheckApplied makes the member behind c apply everything committed (one
// linearizable read of the set's last token), so no bounded read after it
// misses a token that was just created.
func CheckApplied(ctx context.Context, c tokenstorev1.AuthServiceClient, set *TokenSet) error {
	r, err := c.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{
		Token: set.Bearers[len(set.Bearers)-1], Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE,
	})
	if err != nil {
		return err
	}
	if !r.GetAuthenticated() {
		return fmt.Errorf("the last token created is refused: %v", r.GetReason())
	}
	return nil
}
