package state

import (
	"crypto/sha256"
	"crypto/subtle"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/rancher"
	"github.com/tokenstore/tokenstore/server/token"
)

// entry is the in-memory form of a token used by Authenticate. Entries are
// immutable: a change replaces the map value, so a reader holds the lock
// only for the map lookup.
//
// An entry is 96 bytes (one allocation of that size class) because a
// member holds one per token, a million of them in the scale goal: the
// native salt and hash of the usual sizes are inline (verifying them
// touches the entry only), the user is its name and a pointer to an
// interned group list (tokens of one team share it), and everything only
// some tokens have (uid, extra, audiences, imported or odd-sized hashes,
// disabled, revoked) lives in ext. The answer's UserInfo is built per
// answer: one small allocation per authentication instead of a message
// per token held forever.
type entry struct {
	salt     [token.SaltBytes]byte
	hash     [sha256.Size]byte
	username string
	groups   *[]string // interned, shared, read-only; nil: no groups
	// ext is nil for most tokens (see entryExt).
	ext      *entryExt
	expires  int64
	lastUsed int64
}

// entryExt holds what only some tokens have.
type entryExt struct {
	// foreign is set, instead of a native hash, for an imported hash.
	foreign   *foreignHash
	audiences []string // shared, read-only
	uid       string
	extra     map[string]*tokenstorev1.ExtraValue // shared, read-only
	// odd is set for a native salt or hash of other sizes than those
	// tokenstore writes, held in salt and hash.
	odd               bool
	disabled, revoked bool
	// revokedAt is when the token was revoked (unix nanoseconds), for
	// retention (purge.go).
	revokedAt  int64
	salt, hash []byte
}

// foreign is nil-safe: e may be the absent previous entry.
func (e *entry) foreign() *foreignHash {
	if e == nil || e.ext == nil {
		return nil
	}
	return e.ext.foreign
}

func (e *entry) audiences() []string {
	if e.ext == nil {
		return nil
	}
	return e.ext.audiences
}

func (e *entry) disabled() bool { return e.ext != nil && e.ext.disabled }
func (e *entry) revoked() bool  { return e.ext != nil && e.ext.revoked }

// userInfo is the user of token id in the API form, new for each answer:
// its uid is the stored one or else TokenUID(id).
func (e *entry) userInfo(id string) *tokenstorev1.UserInfo {
	u := &tokenstorev1.UserInfo{Username: e.username}
	if e.groups != nil {
		u.Groups = *e.groups
	}
	if x := e.ext; x != nil {
		u.Uid, u.Extra = x.uid, x.extra
	}
	if u.Uid == "" {
		u.Uid = TokenUID(id)
	}
	return u
}

// TokenUID is the uid an authentication gives the user of token id when
// the token was stored without one (every imported Rancher token, and
// native tokens created without user.uid): "tokenstore:token:" and the
// token id. A token's record is the only account tokenstore holds for its
// user, so the uid names that record: the same for every use of the
// token, on every member and over every interface, and different for a
// later token of the same username, as Kubernetes asks of a uid (a name
// reused by a new account gets a new uid). It is not secret: the id is the
// public half of the bearer token.
func TokenUID(id string) string { return "tokenstore:token:" + id }

// groupTable interns group lists: a million tokens of a few teams hold a
// few lists. Used on the apply loop only (Apply, Restore), so unlocked.
type groupTable struct {
	lists map[string]*[]string
	// last is the list interned last: consecutive tokens (a restore, an
	// import) mostly share it, and it is found without building a key.
	last *[]string
}

func newGroupTable() *groupTable { return &groupTable{lists: map[string]*[]string{}} }

// intern returns the shared copy of groups (nil for none), reusing prev's
// when it is the same list (most updates leave the user alone).
func (t *groupTable) intern(groups []string, prev *entry) *[]string {
	if len(groups) == 0 {
		return nil
	}
	if prev != nil && prev.groups != nil && slices.Equal(*prev.groups, groups) {
		return prev.groups
	}
	if t.last != nil && slices.Equal(*t.last, groups) {
		return t.last
	}
	key := strings.Join(groups, "\x00")
	if g, ok := t.lists[key]; ok && slices.Equal(*g, groups) {
		t.last = g
		return g
	}
	g := slices.Clip(slices.Clone(groups))
	t.lists[key] = &g
	t.last = &g
	return &g
}

// foreignHash is an imported (Rancher) hash and the digest of the last
// secret it verified. Its memory is tied to the hash, not to the entry: the
// successive entries of a token share it while the hash stays the same
// (lastUsedAt, disable, expiry and revocation are checked on every request
// anyway), and a record with another hash starts without. So a slow hash is
// computed once per member and secret, and a changed hash is never answered
// from a memory of the old one.
type foreignHash struct {
	encoded string
	// hash is nil when the hash does not parse on this binary; such a
	// token never authenticates (it is refused at import, so this is only
	// a record written by a newer binary).
	hash     *rancher.Hash
	verified atomic.Pointer[[sha256.Size]byte]
}

func newEntry(r *raftstorev1.TokenRecord, prev *entry, groups *groupTable) *entry {
	u := r.GetUser()
	e := &entry{
		username: u.GetUsername(),
		groups:   groups.intern(u.GetGroups(), prev),
		expires:  r.GetExpiresUnixNano(),
		lastUsed: r.GetLastUsedUnixNano(),
	}
	enc := r.GetRancherHash()
	salt, hash := r.GetSalt(), r.GetSecretHash()
	odd := enc == "" && (len(salt) != len(e.salt) || len(hash) != len(e.hash))
	if !odd {
		copy(e.salt[:], salt)
		copy(e.hash[:], hash)
	}
	if enc == "" && !odd && len(r.GetAudiences()) == 0 && u.GetUid() == "" && len(u.GetExtra()) == 0 && !r.GetDisabled() && !r.GetRevoked() {
		return e
	}
	e.ext = &entryExt{audiences: r.GetAudiences(), uid: u.GetUid(), disabled: r.GetDisabled(), revoked: r.GetRevoked()}
	if r.GetRevoked() {
		e.ext.revokedAt = r.GetRevokedUnixNano()
	}
	if len(u.GetExtra()) > 0 {
		e.ext.extra = UserInfo(u).GetExtra()
	}
	if odd {
		e.ext.odd, e.ext.salt, e.ext.hash = true, salt, hash
	}
	if enc != "" {
		if pf := prev.foreign(); pf != nil && pf.encoded == enc {
			e.ext.foreign = pf
		} else {
			h, _ := rancher.ParseHash(enc)
			e.ext.foreign = &foreignHash{encoded: enc, hash: h}
		}
	}
	return e
}

// Decision is the answer to an authentication.
type Decision struct {
	Authenticated bool
	Reason        tokenstorev1.DenyReason
	// User is shared and must not be modified.
	User    *tokenstorev1.UserInfo
	TokenID string
	// Audiences are, when authenticated, the audiences of the answer (see
	// MatchAudiences). Shared; must not be modified.
	Audiences []string
	// LastUsed is the stored lastUsedAt (unix nanoseconds) of the token.
	LastUsed int64
	// Revision is the raft index of the state the decision was read from.
	Revision uint64
	// Busy says no answer was computed: the token has a slow (scrypt)
	// hash not yet verified on this member, and as many slow verifications
	// as there are CPUs are running. The caller should answer "overloaded,
	// retry" rather than refuse.
	Busy bool
}

// Authenticate verifies a bearer token against the in-memory index at time
// now, without audiences. Malformed input is refused before any hashing or
// lookup. The secret is checked before any other property is revealed.
func (s *State) Authenticate(bearer string, now time.Time) Decision {
	id, secret, ok := token.Parse(bearer)
	if !ok {
		return Decision{Reason: tokenstorev1.DenyReason_DENY_REASON_MALFORMED}
	}
	return s.Check(id, secret, nil, now)
}

// Check verifies the parts of a bearer token that token.Parse accepted, for
// the requested audiences (none: no audience check), at time now. The order
// of the checks is fixed so every member gives the same reason: secret,
// revoked, disabled, expired, audiences.
func (s *State) Check(id, secret string, audiences []string, now time.Time) Decision {
	s.mu.RLock()
	e := s.tokens[id]
	rev := s.rev
	s.mu.RUnlock()
	d := s.check(e, id, secret, audiences, now)
	d.Revision = rev
	return d
}

func (s *State) check(e *entry, id, secret string, audiences []string, now time.Time) Decision {
	if e == nil {
		return Decision{Reason: tokenstorev1.DenyReason_DENY_REASON_UNKNOWN, TokenID: id}
	}
	switch x := e.ext; {
	case x == nil || !x.odd && x.foreign == nil:
		if !token.Matches(e.salt[:], secret, e.hash[:]) {
			return Decision{Reason: tokenstorev1.DenyReason_DENY_REASON_UNKNOWN, TokenID: id}
		}
	case x.foreign != nil:
		ok, busy := s.verifyForeign(x.foreign, secret)
		if busy {
			return Decision{TokenID: id, Busy: true}
		}
		if !ok {
			return Decision{Reason: tokenstorev1.DenyReason_DENY_REASON_UNKNOWN, TokenID: id}
		}
	default:
		if !token.Matches(x.salt, secret, x.hash) {
			return Decision{Reason: tokenstorev1.DenyReason_DENY_REASON_UNKNOWN, TokenID: id}
		}
	}
	d := Decision{TokenID: id, LastUsed: e.lastUsed}
	switch {
	case e.revoked():
		d.Reason = tokenstorev1.DenyReason_DENY_REASON_REVOKED
	case e.disabled():
		d.Reason = tokenstorev1.DenyReason_DENY_REASON_DISABLED
	case e.expires != 0 && now.UnixNano() >= e.expires:
		d.Reason = tokenstorev1.DenyReason_DENY_REASON_EXPIRED
	default:
		if e.ext != nil || len(audiences) > 0 {
			auds, ok := MatchAudiences(e.audiences(), audiences)
			if !ok {
				d.Reason = tokenstorev1.DenyReason_DENY_REASON_AUDIENCE_MISMATCH
				return d
			}
			d.Audiences = auds
		}
		d.Authenticated = true
		d.User = e.userInfo(id)
	}
	return d
}

// verifyForeign checks secret against an imported hash, from the memory of
// the last success when it matches.
func (s *State) verifyForeign(f *foreignHash, secret string) (ok, busy bool) {
	if f.hash == nil {
		return false, false
	}
	// A stack copy: hashing []byte(secret) would allocate.
	var buf [128]byte
	digest := sha256.Sum256(buf[:copy(buf[:], secret)])
	if len(secret) > len(buf) {
		digest = sha256.Sum256([]byte(secret))
	}
	if v := f.verified.Load(); v != nil && subtle.ConstantTimeCompare(v[:], digest[:]) == 1 {
		s.foreignStats.cached.Add(1)
		return true, false
	}
	if f.hash.Slow() {
		select {
		case s.slow <- struct{}{}:
			defer func() { <-s.slow }()
		default:
			s.foreignStats.busy.Add(1)
			return false, true
		}
	}
	s.foreignStats.computed.Add(1)
	if !f.hash.Verify(secret) {
		return false, false
	}
	remembered := digest
	f.verified.Store(&remembered)
	return true, false
}

// foreignCounters count imported-hash verifications.
type foreignCounters struct {
	cached, computed, busy atomic.Uint64
}

// ForeignStats are counts of imported-hash verifications since start.
type ForeignStats struct {
	// Cached were answered from the memory of an earlier success.
	Cached uint64
	// Computed ran the hash (scrypt, SHA-256 or SHA3-512).
	Computed uint64
	// Busy found every slow-hash slot taken and gave no answer.
	Busy uint64
}

// ForeignStats returns the imported-hash verification counts.
func (s *State) ForeignStats() ForeignStats {
	return ForeignStats{
		Cached:   s.foreignStats.cached.Load(),
		Computed: s.foreignStats.computed.Load(),
		Busy:     s.foreignStats.busy.Load(),
	}
}

// MatchAudiences applies the Kubernetes TokenReview audience rules (those
// of kube-apiserver's authenticators and of its webhook client) to a token
// bound to bound audiences and a request for requested ones:
//
//   - nothing requested: accepted; the answer carries the token's own
//     audiences (none for an unbound token), and the caller decides;
//   - an unbound token: accepted for what was requested, echoed back;
//   - otherwise the requested audiences the token is bound to, in request
//     order without repeats; none in common is a refusal.
//
// The returned slice may be bound or requested itself; it must not be
// modified.
func MatchAudiences(bound, requested []string) ([]string, bool) {
	switch {
	case len(requested) == 0:
		return bound, true
	case len(bound) == 0:
		return requested, true
	}
	var out []string
	for i, r := range requested {
		if contains(bound, r) && !contains(requested[:i], r) {
			out = append(out, r)
		}
	}
	return out, len(out) > 0
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
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

// HashFormat says how a record stores its secret.
func HashFormat(r *raftstorev1.TokenRecord) tokenstorev1.HashFormat {
	enc := r.GetRancherHash()
	if enc == "" {
		return tokenstorev1.HashFormat_HASH_FORMAT_NATIVE
	}
	h, err := rancher.ParseHash(enc)
	if err != nil {
		return tokenstorev1.HashFormat_HASH_FORMAT_UNKNOWN
	}
	switch h.Format() {
	case rancher.FormatScrypt:
		return tokenstorev1.HashFormat_HASH_FORMAT_RANCHER_SCRYPT
	case rancher.FormatSHA256:
		return tokenstorev1.HashFormat_HASH_FORMAT_RANCHER_SHA256
	case rancher.FormatSHA3:
		return tokenstorev1.HashFormat_HASH_FORMAT_RANCHER_SHA3
	}
	return tokenstorev1.HashFormat_HASH_FORMAT_UNKNOWN
}
