package state

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/token"
)

// benchTokens is the size of the index the authentication benchmarks run
// against: large enough that the map and its entries do not sit in a
// small cache, as in a real deployment.
const benchTokens = 100_000

// benchIndex is a State holding benchTokens tokens and the bearers that
// authenticate against it.
type benchIndex struct {
	state   *State
	bearers []string
	users   []string
	err     error
}

// benchIndexVal is built once per test binary and shared by every
// BenchmarkAuthenticate*: building it applies 100,000 commands, which would
// otherwise dominate `-count 5` runs. It is only read after the Once.
var (
	benchIndexOnce sync.Once
	benchIndexVal  benchIndex
)

func benchIndexFor(b *testing.B) *benchIndex {
	b.Helper()
	benchIndexOnce.Do(func() {
		// The database is closed once the state is built: Authenticate
		// reads only the in-memory index, so the temp dir may go away with
		// the first benchmark that asked for it.
		benchIndexVal = buildBenchIndex(filepath.Join(b.TempDir(), "state.db"), benchTokens)
	})
	if benchIndexVal.err != nil {
		b.Fatal(benchIndexVal.err)
	}
	return &benchIndexVal
}

// buildBenchIndex creates n tokens the way a member does: CreateToken commands
// made with server/token and applied through State.Init and State.Apply in
// bbolt transactions, committed in batches like the apply loop does. The
// file is opened with NoSync: durability is not what is measured, and
// 20 fsyncs would only slow the setup down.
func buildBenchIndex(path string, n int) benchIndex {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		return benchIndex{err: fmt.Errorf("open bench database: %w", err)}
	}
	defer db.Close()
	s := New()
	if err := db.Update(s.Init); err != nil {
		return benchIndex{err: fmt.Errorf("init state: %w", err)}
	}
	f := benchIndex{state: s, bearers: make([]string, 0, n), users: make([]string, 0, n)}
	const batch = 5000
	index := uint64(0)
	for done := 0; done < n; {
		err := db.Update(func(tx *bolt.Tx) error {
			for i := 0; i < batch && done < n; i++ {
				index++
				user := fmt.Sprintf("user-%d", done)
				bearer, payload, err := benchCreateCommand(user)
				if err != nil {
					return err
				}
				res, err := s.Apply(tx, index, payload)
				if err != nil {
					return fmt.Errorf("apply create %d: %w", index, err)
				}
				if out, _ := res.(Outcome); out.Err != nil {
					return fmt.Errorf("apply create %d refused: %w", index, out.Err)
				}
				f.bearers = append(f.bearers, bearer)
				f.users = append(f.users, user)
				done++
			}
			return nil
		})
		if err != nil {
			return benchIndex{err: fmt.Errorf("build %d tokens: %w", n, err)}
		}
		s.Committed(index)
	}
	if got := s.TokenCount(); got != n {
		return benchIndex{err: fmt.Errorf("index holds %d tokens, applied %d", got, n)}
	}
	return f
}

// benchCreateCommand makes one token as TokenService.CreateToken does and returns
// its bearer and the encoded Command.
func benchCreateCommand(user string) (bearer string, payload []byte, err error) {
	id, err := token.NewID(time.Now())
	if err != nil {
		return "", nil, err
	}
	secret, err := token.NewSecret()
	if err != nil {
		return "", nil, err
	}
	salt, err := token.NewSalt()
	if err != nil {
		return "", nil, err
	}
	hash := token.Hash(salt, secret)
	rec := &raftstorev1.TokenRecord{
		Format: 1, Id: id, Salt: salt, SecretHash: hash[:],
		User:            &raftstorev1.User{Username: user, Groups: []string{"dev", "system:authenticated"}},
		CreatedUnixNano: time.Unix(1_700_000_000, 0).UnixNano(),
	}
	payload, err = proto.Marshal(&raftstorev1.Command{Op: &raftstorev1.Command_CreateToken{CreateToken: &raftstorev1.CreateToken{Record: rec}}})
	if err != nil {
		return "", nil, fmt.Errorf("encode create command: %w", err)
	}
	return token.Bearer(id, secret), payload, nil
}

// benchCheckAll fails b unless every indexed token authenticates as its
// user: a benchmark of a path that refuses everything would be meaningless.
func benchCheckAll(b *testing.B, f *benchIndex, now time.Time) {
	b.Helper()
	for i, bearer := range f.bearers {
		d := f.state.Authenticate(bearer, now)
		if !d.Authenticated || d.User.GetUsername() != f.users[i] {
			b.Fatalf("token %d: authenticated=%v reason=%v user=%q, want user %q", i, d.Authenticated, d.Reason, d.User.GetUsername(), f.users[i])
		}
	}
}

// BenchmarkAuthenticateValid is the hot path of every accepted request:
// parse, hash, lookup, on tokens taken in turn from the whole index so the
// map lookups miss the CPU caches as they would under real traffic.
func BenchmarkAuthenticateValid(b *testing.B) {
	f := benchIndexFor(b)
	now := time.Now()
	benchCheckAll(b, f, now)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if d := f.state.Authenticate(f.bearers[i], now); !d.Authenticated {
			b.Fatalf("refused: %v", d.Reason)
		}
		if i++; i == len(f.bearers) {
			i = 0
		}
	}
}

// BenchmarkAuthenticateValidParallel is BenchmarkAuthenticateValid from
// GOMAXPROCS goroutines: it shows whether the read lock around the index
// lookup limits scaling across cores.
func BenchmarkAuthenticateValidParallel(b *testing.B) {
	f := benchIndexFor(b)
	now := time.Now()
	benchCheckAll(b, f, now)
	var start atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Each goroutine walks the index from its own offset.
		i := int(start.Add(7919)) % len(f.bearers)
		for pb.Next() {
			if d := f.state.Authenticate(f.bearers[i], now); !d.Authenticated {
				b.Errorf("refused: %v", d.Reason)
				return
			}
			if i++; i == len(f.bearers) {
				i = 0
			}
		}
	})
}

// BenchmarkAuthenticateUnknownID is a well-formed token whose id is not in
// the index: a parse and a lookup, no hash.
func BenchmarkAuthenticateUnknownID(b *testing.B) {
	f := benchIndexFor(b)
	id, err := token.NewID(time.Now())
	if err != nil {
		b.Fatal(err)
	}
	secret, err := token.NewSecret()
	if err != nil {
		b.Fatal(err)
	}
	bearer := token.Bearer(id, secret)
	now := time.Now()
	if d := f.state.Authenticate(bearer, now); d.Authenticated || d.Reason != tokenstorev1.DenyReason_DENY_REASON_UNKNOWN {
		b.Fatalf("unknown id answered authenticated=%v reason=%v", d.Authenticated, d.Reason)
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := f.state.Authenticate(bearer, now); d.Authenticated {
			b.Fatal("unknown id accepted")
		}
	}
}

// BenchmarkAuthenticateWrongSecret is a known id with a wrong secret: the
// full parse, lookup and hash, then a refusal. An attacker guessing secrets
// for a public id pays this, and so does the server.
func BenchmarkAuthenticateWrongSecret(b *testing.B) {
	f := benchIndexFor(b)
	id, _, ok := token.Parse(f.bearers[0])
	if !ok {
		b.Fatal("indexed bearer does not parse")
	}
	secret, err := token.NewSecret()
	if err != nil {
		b.Fatal(err)
	}
	bearer := token.Bearer(id, secret)
	now := time.Now()
	if d := f.state.Authenticate(bearer, now); d.Authenticated || d.Reason != tokenstorev1.DenyReason_DENY_REASON_UNKNOWN {
		b.Fatalf("wrong secret answered authenticated=%v reason=%v", d.Authenticated, d.Reason)
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := f.state.Authenticate(bearer, now); d.Authenticated {
			b.Fatal("wrong secret accepted")
		}
	}
}

// BenchmarkAuthenticateMalformed is input that is not of the token form (a
// JWT here, the most common wrong credential): it must be refused before
// any hash or lookup, so it has to be far cheaper than a valid token.
func BenchmarkAuthenticateMalformed(b *testing.B) {
	f := benchIndexFor(b)
	bearer := "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpib3QifQ." + strings.Repeat("c2ln", 64)
	now := time.Now()
	if d := f.state.Authenticate(bearer, now); d.Reason != tokenstorev1.DenyReason_DENY_REASON_MALFORMED {
		b.Fatalf("malformed token answered authenticated=%v reason=%v", d.Authenticated, d.Reason)
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := f.state.Authenticate(bearer, now); d.Authenticated {
			b.Fatal("malformed token accepted")
		}
	}
}
