package oidc

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tokenstore/tokenstore/internal/layout"
	"slices"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// FormatVersion is the layout version of the buckets this package owns.
const FormatVersion = 1

var (
	metaBucket    = []byte("oidc")
	issuersBucket = []byte("oidc_issuers")
	keyVersion    = []byte("version")
)

// Refusals returned in Result.Err; the same on every member.
var (
	ErrInvalid  = errors.New("invalid OIDC change")
	ErrNotFound = errors.New("no such issuer")
	// ErrStale refuses keys fetched for an issuer whose key source
	// changed (or that was deleted and put again) since the fetch began.
	ErrStale = errors.New("issuer key source changed since the keys were fetched")
)

// Result is what applying an OIDC command returns to its proposer.
type Result struct {
	// Issuers are the records the command wrote or left as they were, in
	// the order given.
	Issuers []*raftstorev1.OIDCIssuer
	// Changed says whether anything was written.
	Changed bool
	// Err is a deterministic refusal, or nil; nothing changed then.
	Err error
}

// Issuer is one issuer as this member reads the replicated record.
type Issuer struct {
	// Record is the stored record; shared, never modified.
	Record *raftstorev1.OIDCIssuer
	// Config is nil when Err is set.
	Config *Config
	// Keys is the replicated key set, empty before the first fetch.
	Keys *KeySet
	// Err says why this binary cannot use the record (a configuration or
	// key set written by a newer binary); its tokens are refused.
	Err error
}

// compile reads a record. It is deterministic: every member that reads
// the same record gets the same Issuer.
func compile(r *raftstorev1.OIDCIssuer) *Issuer {
	is := &Issuer{Record: r, Keys: &KeySet{}}
	c, err := DecodeConfig(r.GetConfig())
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		is.Err = fmt.Errorf("issuer configuration not readable by this member (upgrade tokenstore?): %w", err)
		return is
	}
	is.Config = c
	ks, err := decodeStored(r.GetJwks())
	if err != nil {
		is.Err = fmt.Errorf("replicated key set not readable by this member: %w", err)
		return is
	}
	is.Keys = ks
	return is
}

// View is the issuers at an applied index. It never changes.
type View struct {
	issuers map[string]*Issuer
	// Applied is the applied index the view is the state at.
	Applied uint64
}

// Issuer returns the issuer with URL url, or nil.
func (v *View) Issuer(url string) *Issuer { return v.issuers[url] }

// Issuers returns every issuer in URL order.
func (v *View) Issuers() []*Issuer {
	out := make([]*Issuer, 0, len(v.issuers))
	for _, is := range v.issuers {
		out = append(out, is)
	}
	slices.SortFunc(out, func(a, b *Issuer) int { return bytes.Compare([]byte(a.Record.GetName()), []byte(b.Record.GetName())) })
	return out
}

// Len is the number of issuers.
func (v *View) Len() int { return len(v.issuers) }

// Store is the replicated OIDC state. The zero value is not usable; call
// NewStore.
type Store struct {
	view atomic.Pointer[View]
	// staged is the issuer map Apply made and Committed has not published
	// yet; nil when there is none. Apply loop only.
	staged map[string]*Issuer
}

// NewStore returns a Store holding no issuers; Init and Restore load it.
func NewStore() *Store {
	s := &Store{}
	s.view.Store(&View{issuers: map[string]*Issuer{}})
	return s
}

// View returns the published issuers.
func (s *Store) View() *View { return s.view.Load() }

func (s *Store) current() map[string]*Issuer {
	if s.staged != nil {
		return s.staged
	}
	return s.view.Load().issuers
}

// Init creates the buckets, or checks that their layout is one this binary
// reads.
func (s *Store) Init(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", metaBucket, err)
	}
	if _, err := tx.CreateBucketIfNotExists(issuersBucket); err != nil {
		return fmt.Errorf("create bucket %s: %w", issuersBucket, err)
	}
	return layout.CheckVersion(meta, FormatVersion, "OIDC")
}

// Restore rebuilds the issuers from the state database. A database
// written before OIDC existed has no bucket: no issuers.
func (s *Store) Restore(tx *bolt.Tx) error {
	m := map[string]*Issuer{}
	if b := tx.Bucket(issuersBucket); b != nil {
		err := b.ForEach(func(k, v []byte) error {
			r := &raftstorev1.OIDCIssuer{}
			if err := proto.Unmarshal(v, r); err != nil {
				return fmt.Errorf("decode OIDC issuer %q: %w", k, err)
			}
			m[r.GetName()] = compile(r)
			return nil
		})
		if err != nil {
			return fmt.Errorf("restore OIDC issuers: %w", err)
		}
	}
	s.staged = m
	return nil
}

// Committed publishes what was applied up to index, now durable.
func (s *Store) Committed(index uint64) {
	m := s.view.Load().issuers
	if s.staged != nil {
		m, s.staged = s.staged, nil
	}
	s.view.Store(&View{issuers: m, Applied: index})
}

// stage returns a copy of the current map to change.
func (s *Store) stage() map[string]*Issuer {
	cur := s.current()
	next := make(map[string]*Issuer, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	return next
}

func put(tx *bolt.Tx, r *raftstorev1.OIDCIssuer) error {
	v, err := proto.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode OIDC issuer %s: %w", r.GetName(), err)
	}
	if err := tx.Bucket(issuersBucket).Put([]byte(r.GetName()), v); err != nil {
		return fmt.Errorf("store OIDC issuer %s: %w", r.GetName(), err)
	}
	return nil
}

// ApplyPut applies a PutOIDCIssuers entry at index within tx. An issuer
// whose key source is unchanged keeps its keys.
func (s *Store) ApplyPut(tx *bolt.Tx, index uint64, c *raftstorev1.PutOIDCIssuers) (Result, error) {
	seen := map[string]bool{}
	for i, r := range c.GetIssuers() {
		if r.GetName() == "" || len(r.GetConfig()) == 0 || r.GetKeySource() == "" || seen[r.GetName()] {
			return Result{Err: fmt.Errorf("%w: issuer %d: name, config and key source are required and names unique", ErrInvalid, i)}, nil
		}
		seen[r.GetName()] = true
	}
	cur := s.current()
	var next map[string]*Issuer
	var res Result
	for _, given := range c.GetIssuers() {
		old := cur[given.GetName()]
		if old != nil && bytes.Equal(old.Record.GetConfig(), given.GetConfig()) && old.Record.GetKeySource() == given.GetKeySource() {
			res.Issuers = append(res.Issuers, old.Record)
			continue
		}
		r := &raftstorev1.OIDCIssuer{Format: 1, Name: given.GetName(), Config: given.GetConfig(), KeySource: given.GetKeySource(), ConfigRevision: index}
		if old != nil && old.Record.GetKeySource() == given.GetKeySource() {
			r.Jwks, r.KeysFetchedUnixNano, r.KeysRevision = old.Record.GetJwks(), old.Record.GetKeysFetchedUnixNano(), old.Record.GetKeysRevision()
		}
		if err := put(tx, r); err != nil {
			return Result{}, err
		}
		if next == nil {
			next = s.stage()
		}
		next[r.GetName()] = compile(r)
		res.Issuers = append(res.Issuers, r)
		res.Changed = true
	}
	if next != nil {
		s.staged = next
	}
	return res, nil
}

// ApplyDelete applies a DeleteOIDCIssuer entry within tx.
func (s *Store) ApplyDelete(tx *bolt.Tx, c *raftstorev1.DeleteOIDCIssuer) (Result, error) {
	old := s.current()[c.GetName()]
	if old == nil {
		return Result{Err: fmt.Errorf("issuer %s: %w", c.GetName(), ErrNotFound)}, nil
	}
	if err := tx.Bucket(issuersBucket).Delete([]byte(c.GetName())); err != nil {
		return Result{}, fmt.Errorf("delete OIDC issuer %s: %w", c.GetName(), err)
	}
	next := s.stage()
	delete(next, c.GetName())
	s.staged = next
	return Result{Issuers: []*raftstorev1.OIDCIssuer{old.Record}, Changed: true}, nil
}

// ApplySetKeys applies a SetOIDCIssuerKeys entry at index within tx.
func (s *Store) ApplySetKeys(tx *bolt.Tx, index uint64, c *raftstorev1.SetOIDCIssuerKeys) (Result, error) {
	old := s.current()[c.GetName()]
	if old == nil {
		return Result{Err: fmt.Errorf("issuer %s: %w", c.GetName(), ErrNotFound)}, nil
	}
	if old.Record.GetKeySource() != c.GetKeySource() {
		return Result{Err: fmt.Errorf("issuer %s: %w", c.GetName(), ErrStale)}, nil
	}
	if len(c.GetJwks()) == 0 {
		return Result{Err: fmt.Errorf("%w: issuer %s: empty key set", ErrInvalid, c.GetName())}, nil
	}
	if bytes.Equal(old.Record.GetJwks(), c.GetJwks()) {
		return Result{Issuers: []*raftstorev1.OIDCIssuer{old.Record}}, nil
	}
	r := proto.Clone(old.Record).(*raftstorev1.OIDCIssuer)
	r.Jwks, r.KeysFetchedUnixNano, r.KeysRevision = c.GetJwks(), c.GetFetchedUnixNano(), index
	if err := put(tx, r); err != nil {
		return Result{}, err
	}
	next := s.stage()
	next[r.GetName()] = compile(r)
	s.staged = next
	return Result{Issuers: []*raftstorev1.OIDCIssuer{r}, Changed: true}, nil
}
