package state

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/rancher"
	"github.com/tokenstore/tokenstore/server/token"
)

// rancherSecret has the form of a Rancher token key (54 characters).
const rancherSecret = "jv6xs2wgmg7dtnc8g8ntpzrcfjfxs2lfhtq8cn4kbkwbl6v8k4vxgw"

func importCmd(skip bool, recs ...*raftstorev1.TokenRecord) *raftstorev1.Command {
	return &raftstorev1.Command{Op: &raftstorev1.Command_ImportTokens{ImportTokens: &raftstorev1.ImportTokens{Records: recs, SkipExisting: skip}}}
}

func rancherRecord(t *testing.T, id string, f rancher.Format) *raftstorev1.TokenRecord {
	t.Helper()
	h, err := rancher.NewHash(f, rancherSecret)
	if err != nil {
		t.Fatal(err)
	}
	return &raftstorev1.TokenRecord{Id: id, RancherHash: h, User: &raftstorev1.User{Username: "u-" + id, Groups: []string{"g"}}, CreatedUnixNano: 1}
}

func TestImportRancherTokensAuthenticate(t *testing.T) {
	f := newFixture(t)
	out := f.apply(importCmd(false,
		rancherRecord(t, "kubeconfig-u-s", rancher.FormatScrypt),
		rancherRecord(t, "token-sha256", rancher.FormatSHA256),
		rancherRecord(t, "token-sha3", rancher.FormatSHA3),
	))
	if out.Err != nil || len(out.Imported) != 3 || out.Imported[0].GetCreateRevision() != f.index {
		t.Fatalf("import: %+v", out)
	}
	now := time.Now()
	for _, id := range []string{"kubeconfig-u-s", "token-sha256", "token-sha3"} {
		d := f.s.Authenticate(token.Bearer(id, rancherSecret), now)
		if !d.Authenticated || d.User.GetUsername() != "u-"+id || d.TokenID != id {
			t.Errorf("%s: authenticated=%v reason=%v user=%v", id, d.Authenticated, d.Reason, d.User)
		}
		wrong := rancherSecret[:len(rancherSecret)-1] + "2"
		if d := f.s.Authenticate(token.Bearer(id, wrong), now); d.Authenticated || d.Reason != tokenstorev1.DenyReason_DENY_REASON_UNKNOWN {
			t.Errorf("%s: wrong secret answered authenticated=%v reason=%v", id, d.Authenticated, d.Reason)
		}
	}
	if err := f.db.View(func(tx *bolt.Tx) error {
		r, err := Get(tx, "token-sha3")
		if HashFormat(r) != tokenstorev1.HashFormat_HASH_FORMAT_RANCHER_SHA3 {
			t.Errorf("hash format %v", HashFormat(r))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestVerifiedSecretsAreRemembered checks the memory of successes: a
// repeated authentication of a scrypt token does not run scrypt again,
// a change to the record that keeps the hash keeps the memory, a wrong
// secret is never answered from it, and a rebuilt index starts without.
func TestVerifiedSecretsAreRemembered(t *testing.T) {
	f := newFixture(t)
	f.apply(importCmd(false, rancherRecord(t, "tok-s", rancher.FormatScrypt)))
	bearer := token.Bearer("tok-s", rancherSecret)
	now := time.Now()
	for i := 0; i < 3; i++ {
		if d := f.s.Authenticate(bearer, now); !d.Authenticated {
			t.Fatalf("auth %d refused: %v", i, d.Reason)
		}
	}
	if st := f.s.ForeignStats(); st.Computed != 1 || st.Cached != 2 {
		t.Fatalf("after 3 authentications: %+v, want 1 computed and 2 cached", st)
	}
	// lastUsedAt and disable/enable replace the entry, not the hash.
	f.apply(&raftstorev1.Command{Op: &raftstorev1.Command_RecordLastUsed{RecordLastUsed: &raftstorev1.RecordLastUsed{Uses: []*raftstorev1.LastUsed{{Id: "tok-s", UnixNano: 99}}}}})
	yes, no := true, false
	f.apply(update("tok-s", &yes))
	if d := f.s.Authenticate(bearer, now); d.Reason != tokenstorev1.DenyReason_DENY_REASON_DISABLED {
		t.Fatalf("disabled imported token: %v", d.Reason)
	}
	f.apply(update("tok-s", &no))
	if d := f.s.Authenticate(bearer, now); !d.Authenticated {
		t.Fatalf("re-enabled imported token refused: %v", d.Reason)
	}
	if st := f.s.ForeignStats(); st.Computed != 1 {
		t.Errorf("record changes that keep the hash dropped the memory: %+v", st)
	}
	// A wrong secret is computed, not remembered.
	if d := f.s.Authenticate(token.Bearer("tok-s", "x"+rancherSecret[1:]), now); d.Authenticated {
		t.Fatal("wrong secret accepted")
	}
	if st := f.s.ForeignStats(); st.Computed != 2 {
		t.Errorf("wrong secret: %+v, want a second computation", st)
	}
	f.apply(revoke("tok-s"))
	if d := f.s.Authenticate(bearer, now); d.Reason != tokenstorev1.DenyReason_DENY_REASON_REVOKED {
		t.Errorf("revoked imported token: %v", d.Reason)
	}

	s2 := New()
	if err := f.db.View(s2.Restore); err != nil {
		t.Fatal(err)
	}
	if d := s2.Authenticate(bearer, now); d.Reason != tokenstorev1.DenyReason_DENY_REASON_REVOKED {
		t.Errorf("restored revoked imported token: %v", d.Reason)
	}
	if st := s2.ForeignStats(); st.Computed != 1 || st.Cached != 0 {
		t.Errorf("restored state: %+v, want a fresh computation", st)
	}
}

// TestSlowHashesAreBounded checks that with every slow-hash slot taken an
// unverified scrypt token gets no answer (Busy) instead of a queue, while
// remembered ones and fast formats still answer.
func TestSlowHashesAreBounded(t *testing.T) {
	f := newFixture(t)
	f.apply(importCmd(false, rancherRecord(t, "tok-s", rancher.FormatScrypt), rancherRecord(t, "tok-new", rancher.FormatScrypt), rancherRecord(t, "tok-3", rancher.FormatSHA3)))
	now := time.Now()
	if d := f.s.Authenticate(token.Bearer("tok-s", rancherSecret), now); !d.Authenticated {
		t.Fatal(d.Reason)
	}
	for i := 0; i < cap(f.s.slow); i++ {
		f.s.slow <- struct{}{}
	}
	if d := f.s.Authenticate(token.Bearer("tok-new", rancherSecret), now); !d.Busy || d.Authenticated {
		t.Errorf("with every slot taken: %+v, want busy", d)
	}
	if d := f.s.Authenticate(token.Bearer("tok-s", rancherSecret), now); !d.Authenticated {
		t.Errorf("remembered token with every slot taken: %+v", d)
	}
	if d := f.s.Authenticate(token.Bearer("tok-3", rancherSecret), now); !d.Authenticated {
		t.Errorf("SHA3 token with every slot taken: %+v", d)
	}
	if st := f.s.ForeignStats(); st.Busy != 1 {
		t.Errorf("stats %+v, want 1 busy", st)
	}
}

func TestImportIsAllOrNothing(t *testing.T) {
	f := newFixture(t)
	c := f.create("alice", 0)
	a := rancherRecord(t, "tok-a", rancher.FormatSHA256)
	clash := rancherRecord(t, c.id, rancher.FormatSHA256)

	if out := f.apply(importCmd(false, a, clash)); !errors.Is(out.Err, ErrExists) {
		t.Fatalf("import over an existing id: %v, want ErrExists", out.Err)
	}
	if d := f.s.Authenticate(token.Bearer("tok-a", rancherSecret), time.Now()); d.Authenticated {
		t.Fatal("a refused batch stored a token")
	}
	if out := f.apply(importCmd(false, a, a)); !errors.Is(out.Err, ErrInvalid) {
		t.Errorf("id twice in a batch: %v, want ErrInvalid", out.Err)
	}
	if out := f.apply(importCmd(true, clash, clash)); !errors.Is(out.Err, ErrInvalid) {
		t.Errorf("existing id twice in a batch with skip_existing: %v, want ErrInvalid", out.Err)
	}
	both := rancherRecord(t, "tok-b", rancher.FormatSHA256)
	both.SecretHash = []byte{1}
	if out := f.apply(importCmd(false, both)); !errors.Is(out.Err, ErrInvalid) {
		t.Errorf("record with two hashes: %v, want ErrInvalid", out.Err)
	}
	out := f.apply(importCmd(true, a, clash))
	if out.Err != nil || len(out.Imported) != 1 || out.Imported[0].GetId() != "tok-a" || !slices.Equal(out.Skipped, []string{c.id}) {
		t.Fatalf("skip existing: %+v", out)
	}
	// The existing token is untouched: its own secret still works.
	if d := f.s.Authenticate(c.bearer, time.Now()); !d.Authenticated {
		t.Errorf("skipped existing token changed: %v", d.Reason)
	}
	// An unparseable hash is stored (a newer member may know it) but
	// never authenticates here.
	odd := &raftstorev1.TokenRecord{Id: "tok-odd", RancherHash: "$7:future", User: &raftstorev1.User{Username: "x"}}
	if out := f.apply(importCmd(false, odd)); out.Err != nil {
		t.Fatalf("import of an unknown hash format: %v", out.Err)
	}
	if d := f.s.Authenticate(token.Bearer("tok-odd", rancherSecret), time.Now()); d.Authenticated || d.Reason != tokenstorev1.DenyReason_DENY_REASON_UNKNOWN {
		t.Errorf("unknown hash format: %+v", d)
	}
}

func TestMatchAudiences(t *testing.T) {
	for _, c := range []struct {
		bound, requested, want []string
		ok                     bool
	}{
		{nil, nil, nil, true},
		{[]string{"a"}, nil, []string{"a"}, true},
		{nil, []string{"x", "y"}, []string{"x", "y"}, true},
		{[]string{"a", "b"}, []string{"c", "b", "a", "b"}, []string{"b", "a"}, true},
		{[]string{"a"}, []string{"b"}, nil, false},
	} {
		got, ok := MatchAudiences(c.bound, c.requested)
		if ok != c.ok || !slices.Equal(got, c.want) {
			t.Errorf("MatchAudiences(%q, %q) = %q, %v; want %q, %v", c.bound, c.requested, got, ok, c.want, c.ok)
		}
	}
}

func TestAudienceBoundToken(t *testing.T) {
	f := newFixture(t)
	id, _ := token.NewID(time.Now())
	secret, _ := token.NewSecret()
	salt, _ := token.NewSalt()
	h := token.Hash(salt, secret)
	f.apply(importCmd(false, &raftstorev1.TokenRecord{Id: id, Salt: salt, SecretHash: h[:], User: &raftstorev1.User{Username: "bound"}, Audiences: []string{"api", "vault"}}))
	now := time.Now()
	if d := f.s.Check(id, secret, []string{"other", "vault"}, now); !d.Authenticated || !slices.Equal(d.Audiences, []string{"vault"}) {
		t.Errorf("overlapping audiences: %+v", d)
	}
	if d := f.s.Check(id, secret, []string{"other"}, now); d.Authenticated || d.Reason != tokenstorev1.DenyReason_DENY_REASON_AUDIENCE_MISMATCH || d.User != nil {
		t.Errorf("disjoint audiences: %+v", d)
	}
	if d := f.s.Check(id, secret, nil, now); !d.Authenticated || !slices.Equal(d.Audiences, []string{"api", "vault"}) {
		t.Errorf("no audiences requested: %+v", d)
	}
	// The secret is checked first: a wrong one is "unknown" whatever the
	// audiences.
	if d := f.s.Check(id, otherSecret(secret), []string{"other"}, now); d.Reason != tokenstorev1.DenyReason_DENY_REASON_UNKNOWN {
		t.Errorf("wrong secret with disjoint audiences: %v", d.Reason)
	}
}

// BenchmarkAuthenticateImported is the repeated authentication of imported
// Rancher tokens, answered from the memory of the first success: it should
// cost about what a native token does (BenchmarkAuthenticateValid), whatever
// the format, scrypt included.
func BenchmarkAuthenticateImported(b *testing.B) {
	for _, f := range []rancher.Format{rancher.FormatScrypt, rancher.FormatSHA256, rancher.FormatSHA3} {
		b.Run(f.String(), func(b *testing.B) {
			s := New()
			h, err := rancher.NewHash(f, rancherSecret)
			if err != nil {
				b.Fatal(err)
			}
			id := "kubeconfig-u-" + strings.ReplaceAll(f.String(), "-", "")
			s.tokens[id] = newEntry(&raftstorev1.TokenRecord{Id: id, RancherHash: h, User: &raftstorev1.User{Username: "u"}}, nil, newGroupTable())
			bearer := token.Bearer(id, rancherSecret)
			now := time.Now()
			if d := s.Authenticate(bearer, now); !d.Authenticated {
				b.Fatal(d.Reason)
			}
			b.ReportAllocs()
			for b.Loop() {
				if d := s.Authenticate(bearer, now); !d.Authenticated {
					b.Fatal(d.Reason)
				}
			}
		})
	}
}

// TestImportedTokenConcurrentUse authenticates one imported token from
// several goroutines while its record changes (run with -race).
func TestImportedTokenConcurrentUse(t *testing.T) {
	f := newFixture(t)
	f.apply(importCmd(false, rancherRecord(t, "tok-3", rancher.FormatSHA3)))
	bearer := token.Bearer("tok-3", rancherSecret)
	var wg sync.WaitGroup
	var refused atomic.Int32
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if d := f.s.Authenticate(bearer, time.Now()); !d.Authenticated {
					refused.Add(1)
				}
			}
		}()
	}
	for i := int64(1); i <= 50; i++ {
		f.apply(&raftstorev1.Command{Op: &raftstorev1.Command_RecordLastUsed{RecordLastUsed: &raftstorev1.RecordLastUsed{Uses: []*raftstorev1.LastUsed{{Id: "tok-3", UnixNano: i}}}}})
	}
	close(stop)
	wg.Wait()
	if n := refused.Load(); n != 0 {
		t.Fatalf("%d authentications refused while the record changed", n)
	}
	if st := f.s.ForeignStats(); st.Computed > 4 {
		t.Errorf("%+v: the hash ran more than once per goroutine racing the first success", st)
	}
}

// TestNativeHashOfOtherSizes: a native record with a salt of another size
// than tokenstore writes still authenticates (held outside the entry).
func TestNativeHashOfOtherSizes(t *testing.T) {
	f := newFixture(t)
	id, _ := token.NewID(time.Now())
	secret, _ := token.NewSecret()
	salt := []byte("short")
	h := token.Hash(salt, secret)
	out := f.apply(&raftstorev1.Command{Op: &raftstorev1.Command_CreateToken{CreateToken: &raftstorev1.CreateToken{Record: &raftstorev1.TokenRecord{
		Id: id, Salt: salt, SecretHash: h[:], User: &raftstorev1.User{Username: "odd"}}}}})
	if out.Err != nil {
		t.Fatal(out.Err)
	}
	if d := f.s.Authenticate(token.Bearer(id, secret), time.Now()); !d.Authenticated {
		t.Errorf("odd-sized salt: %v", d.Reason)
	}
	if d := f.s.Authenticate(token.Bearer(id, otherSecret(secret)), time.Now()); d.Authenticated {
		t.Error("odd-sized salt: wrong secret accepted")
	}
}

// otherSecret returns a secret of the same form that differs from s in its
// first byte (s is random, so a fixed replacement could equal it).
func otherSecret(s string) string {
	if s[0] == 'a' {
		return "b" + s[1:]
	}
	return "a" + s[1:]
}
