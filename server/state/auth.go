package state

import (
	"time"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/token"
)

// entry is the in-memory form of a token used by Authenticate. Entries are
// immutable: a change replaces the map value, so a reader holds the lock
// only for the map lookup.
type entry struct {
	salt     []byte
	hash     []byte
	user     *tokenstorev1.UserInfo // shared, read-only
	expires  int64
	lastUsed int64
	disabled bool
	revoked  bool
}

func newEntry(r *raftstorev1.TokenRecord) *entry {
	return &entry{
		salt:     r.GetSalt(),
		hash:     r.GetSecretHash(),
		user:     UserInfo(r.GetUser()),
		expires:  r.GetExpiresUnixNano(),
		lastUsed: r.GetLastUsedUnixNano(),
		disabled: r.GetDisabled(),
		revoked:  r.GetRevoked(),
	}
}

// Decision is the answer to an authentication.
type Decision struct {
	Authenticated bool
	Reason        tokenstorev1.DenyReason
	// User is shared and must not be modified.
	User    *tokenstorev1.UserInfo
	TokenID string
	// LastUsed is the stored lastUsedAt (unix nanoseconds) of the token.
	LastUsed int64
}

// Authenticate verifies a bearer token against the in-memory index at time
// now. Malformed input is refused before any hashing or lookup. The secret
// is checked before any other property is revealed.
func (s *State) Authenticate(bearer string, now time.Time) Decision {
	id, secret, ok := token.Parse(bearer)
	if !ok {
		return Decision{Reason: tokenstorev1.DenyReason_DENY_REASON_MALFORMED}
	}
	s.mu.RLock()
	e := s.tokens[id]
	s.mu.RUnlock()
	if e == nil || !token.Matches(e.salt, secret, e.hash) {
		return Decision{Reason: tokenstorev1.DenyReason_DENY_REASON_UNKNOWN, TokenID: id}
	}
	d := Decision{TokenID: id, LastUsed: e.lastUsed}
	switch {
	case e.revoked:
		d.Reason = tokenstorev1.DenyReason_DENY_REASON_REVOKED
	case e.disabled:
		d.Reason = tokenstorev1.DenyReason_DENY_REASON_DISABLED
	case e.expires != 0 && now.UnixNano() >= e.expires:
		d.Reason = tokenstorev1.DenyReason_DENY_REASON_EXPIRED
	default:
		d.Authenticated = true
		d.User = e.user
	}
	return d
}

// LastUsed returns a token's stored lastUsedAt (unix nanoseconds) and
// whether the token exists.
func (s *State) LastUsed(id string) (int64, bool) {
	s.mu.RLock()
	e := s.tokens[id]
	s.mu.RUnlock()
	if e == nil {
		return 0, false
	}
	return e.lastUsed, true
}

// TokenCount is the number of tokens in the in-memory index.
func (s *State) TokenCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.tokens)
}

// UserInfo converts a stored user to the API form.
func UserInfo(u *raftstorev1.User) *tokenstorev1.UserInfo {
	if u == nil {
		return &tokenstorev1.UserInfo{}
	}
	out := &tokenstorev1.UserInfo{Username: u.GetUsername(), Uid: u.GetUid(), Groups: u.GetGroups()}
	if len(u.GetExtra()) > 0 {
		out.Extra = make(map[string]*tokenstorev1.ExtraValue, len(u.GetExtra()))
		for k, v := range u.GetExtra() {
			out.Extra[k] = &tokenstorev1.ExtraValue{Values: v.GetValues()}
		}
	}
	return out
}
