package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/token"
)

// readMode is a ReadConsistency with its report name.
type readMode struct {
	name string
	c    tokenstorev1.ReadConsistency
}

var (
	bounded      = readMode{"bounded", tokenstorev1.ReadConsistency_READ_CONSISTENCY_BOUNDED}
	linearizable = readMode{"linearizable", tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE}
)

// tokenSet is the tokens the authentication rounds present, with the user
// each must authenticate as.
type tokenSet struct {
	bearers []string
	users   []string
}

// createTokens creates n tokens through clients (all connected to member)
// with conc concurrent callers.
func createTokens(ctx context.Context, clients []tokenstorev1.TokenServiceClient, member string, n, conc int) (*tokenSet, error) {
	set := &tokenSet{bearers: make([]string, n), users: make([]string, n)}
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
				rctx, cancel := context.WithTimeout(ctx, grace)
				r, err := clients[w%len(clients)].CreateToken(rctx, &tokenstorev1.CreateTokenRequest{
					User: &tokenstorev1.UserInfo{Username: user, Groups: []string{"bench"}},
				})
				cancel()
				if err == nil {
					err = checkCreated(r, member, user)
				}
				if err != nil {
					errs[w] = fmt.Errorf("create token %d at %s: %w", i, member, err)
					return
				}
				set.bearers[i], set.users[i] = r.GetBearerToken(), user
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

// checkCreated checks a CreateToken answer: from the member asked, for the
// user asked, with a bearer of the token form whose id is the token's.
func checkCreated(r *tokenstorev1.CreateTokenResponse, member, user string) error {
	if got := r.GetHeader().GetMember(); got != member {
		return wrongf("create answered by %q, asked %s", got, member)
	}
	id, _, ok := token.Parse(r.GetBearerToken())
	if !ok {
		return wrongf("create returned a malformed bearer token")
	}
	if id != r.GetToken().GetId() {
		return wrongf("bearer id %q differs from token id %q", id, r.GetToken().GetId())
	}
	if got := r.GetToken().GetUser().GetUsername(); got != user {
		return wrongf("token created for %q, asked %q", got, user)
	}
	return nil
}

// authOp authenticates the set's tokens in turn at member, each client
// starting at its own offset, and checks each answer: authenticated, by
// member, as the token's user.
func authOp(clients []tokenstorev1.AuthServiceClient, set *tokenSet, mode readMode, member string) op {
	n := len(set.bearers)
	return func(ctx context.Context, w, seq int) error {
		i := (w*7919 + seq) % n
		r, err := clients[w%len(clients)].Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: set.bearers[i], Consistency: mode.c})
		if err != nil {
			return err
		}
		if !r.GetAuthenticated() {
			return wrongf("token refused: %v", r.GetReason())
		}
		if got := r.GetHeader().GetMember(); got != member {
			return wrongf("answered by %q, asked %s", got, member)
		}
		if got := r.GetUser().GetUsername(); got != set.users[i] {
			return wrongf("authenticated as %q, want %q", got, set.users[i])
		}
		return nil
	}
}

// createOp creates tokens at member and checks every answer. last[w] holds
// client w's latest bearer, for verifyCreated; only client w writes it.
func createOp(clients []tokenstorev1.TokenServiceClient, member, tag string, last []string) op {
	return func(ctx context.Context, w, seq int) error {
		user := fmt.Sprintf("bench-%s-w%d-%d", tag, w, seq)
		r, err := clients[w%len(clients)].CreateToken(ctx, &tokenstorev1.CreateTokenRequest{
			User: &tokenstorev1.UserInfo{Username: user, Groups: []string{"bench"}},
		})
		if err != nil {
			return err
		}
		if err := checkCreated(r, member, user); err != nil {
			return err
		}
		last[w] = r.GetBearerToken()
		return nil
	}
}

// verifyCreated checks, with linearizable reads at another member, that the
// last token each client created is accepted there: a create that answered
// OK must be replicated. Failures are added to res.
func verifyCreated(ctx context.Context, c tokenstorev1.AuthServiceClient, member string, last []string, res *roundResult) {
	for _, b := range last {
		if b == "" {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, grace)
		r, err := c.Authenticate(rctx, &tokenstorev1.AuthenticateRequest{Token: b, Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
		cancel()
		switch {
		case err != nil:
			res.errs++
			res.note(fmt.Sprintf("verify at %s: %v", member, err))
		case !r.GetAuthenticated():
			res.wrong++
			res.note(fmt.Sprintf("verify at %s: created token refused: %v", member, r.GetReason()))
		}
	}
}
