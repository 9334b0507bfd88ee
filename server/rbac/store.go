package rbac

import (
	"bytes"
	"encoding/binary"
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
	metaBucket    = []byte("rbac")
	objectsBucket = []byte("rbac_objects")
	keyRevision   = []byte("revision")
)

// Refusals returned in Result.Err; the same on every member.
var (
	ErrInvalid  = errors.New("invalid RBAC change")
	ErrNotFound = errors.New("not found")
	// ErrConflict refuses a write whose expected revision is no longer
	// the RBAC revision.
	ErrConflict = errors.New("RBAC revision changed")
)

// Action is what a write did to one object.
type Action int

// The actions, as kubectl apply reports them.
const (
	Created Action = iota + 1
	Configured
	Unchanged
	Pruned
	Deleted
)

// Change is what a write did to one object.
type Change struct {
	Key    Key
	Action Action
}

// Result is what applying an RBAC command returns to its proposer.
type Result struct {
	// Changes lists the objects given, in the order given, then the
	// objects pruned, in key order.
	Changes []Change
	// Revision is the RBAC revision after the command.
	Revision uint64
	// Err is a deterministic refusal, or nil; nothing changed then.
	Err error
}

// Store is the replicated RBAC state: objects in the state database and
// the current Snapshot in memory. The zero value is not usable; call
// NewStore.
type Store struct {
	view atomic.Pointer[View]
	// staged is the state Apply, Delete or Restore made and Committed
	// has not published yet; nil when there is none. Apply loop only.
	staged *state
}

// state is a set of objects at a revision: what a snapshot is built from.
// Commands stage states; Committed builds one snapshot from the last, so a
// batch of RBAC entries committed together costs one index build.
type state struct {
	revision uint64
	objects  map[Key]*Object
}

// View is a published snapshot and the applied index it is the state at:
// the RBAC state at Applied is exactly Snapshot (whose Revision, the last
// change, is at most Applied).
type View struct {
	*Snapshot
	Applied uint64
}

// NewStore returns a Store holding no objects; Init and Restore load it.
func NewStore() *Store {
	s := &Store{}
	s.view.Store(&View{Snapshot: emptySnapshot()})
	return s
}

// View returns the published snapshot. It never changes; a later commit
// publishes a new View.
func (s *Store) View() *View { return s.view.Load() }

// Snapshot returns the published snapshot.
func (s *Store) Snapshot() *Snapshot { return s.view.Load().Snapshot }

// current is the state the next command applies to: the staged one, else
// the published one. Its map is shared: copy it before changing it.
func (s *Store) current() state {
	if s.staged != nil {
		return *s.staged
	}
	snap := s.view.Load().Snapshot
	return state{revision: snap.revision, objects: snap.objects}
}

// copyObjects returns a copy of an object map to derive the next state
// from.
func copyObjects(m map[Key]*Object) map[Key]*Object {
	c := make(map[Key]*Object, len(m))
	for k, o := range m {
		c[k] = o
	}
	return c
}

// Discard drops what Apply, Delete or Restore staged and Committed has not
// published: the transaction that held it was rolled back.
func (s *Store) Discard() { s.staged = nil }

// Committed publishes what was applied up to index, now durable, as the
// state at index. Called on the apply loop after every commit and after
// Restore (raftstore.Committer, through the state machine).
func (s *Store) Committed(index uint64) {
	snap := s.view.Load().Snapshot
	if st := s.staged; st != nil {
		snap = build(st.revision, st.objects)
		s.staged = nil
	}
	s.view.Store(&View{Snapshot: snap, Applied: index})
}

// Init creates the buckets, or checks that their layout is one this binary
// reads.
func (s *Store) Init(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", metaBucket, err)
	}
	if _, err := tx.CreateBucketIfNotExists(objectsBucket); err != nil {
		return fmt.Errorf("create bucket %s: %w", objectsBucket, err)
	}
	return layout.CheckVersion(meta, FormatVersion, "RBAC")
}

// Restore rebuilds the snapshot from the state database.
func (s *Store) Restore(tx *bolt.Tx) error {
	objs := map[Key]*Object{}
	err := tx.Bucket(objectsBucket).ForEach(func(k, v []byte) error {
		st := &raftstorev1.RBACObject{}
		if err := proto.Unmarshal(v, st); err != nil {
			return fmt.Errorf("decode RBAC object %q: %w", k, err)
		}
		o, err := fromStored(st)
		if err != nil {
			return fmt.Errorf("decode RBAC object %q: %w", k, err)
		}
		objs[o.Key] = o
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore RBAC objects: %w", err)
	}
	var rev uint64
	if v := tx.Bucket(metaBucket).Get(keyRevision); len(v) == 8 {
		rev = binary.BigEndian.Uint64(v)
	}
	s.staged = &state{revision: rev, objects: objs}
	return nil
}

// Apply applies an ApplyRBAC entry at index within tx.
func (s *Store) Apply(tx *bolt.Tx, index uint64, c *raftstorev1.ApplyRBAC) (Result, error) {
	cur := s.current()
	if exp := c.GetExpectedRevision(); exp != 0 && exp != cur.revision {
		return Result{Err: fmt.Errorf("%w (expected %d, is %d)", ErrConflict, exp, cur.revision)}, nil
	}
	given := make([]*Object, 0, len(c.GetObjects()))
	seen := make(map[Key]bool, len(c.GetObjects()))
	for i, st := range c.GetObjects() {
		o, err := fromStored(st)
		if err != nil {
			return Result{Err: fmt.Errorf("%w: object %d: %v", ErrInvalid, i, err)}, nil
		}
		if seen[o.Key] {
			return Result{Err: fmt.Errorf("%w: %s given twice", ErrInvalid, o.Key)}, nil
		}
		seen[o.Key] = true
		given = append(given, o)
	}
	next := map[Key]*Object{}
	if !c.GetPrune() {
		next = copyObjects(cur.objects)
	}
	for _, o := range given {
		next[o.Key] = o
	}
	if err := aggregate(next); err != nil {
		return Result{}, err
	}
	var res Result
	for _, o := range given {
		a := Configured
		switch before := cur.objects[o.Key]; {
		case before == nil:
			a = Created
		case bytes.Equal(before.data, next[o.Key].data):
			a = Unchanged
		}
		res.Changes = append(res.Changes, Change{Key: o.Key, Action: a})
	}
	if c.GetPrune() {
		var pruned []Key
		for k := range cur.objects {
			if next[k] == nil {
				pruned = append(pruned, k)
			}
		}
		slices.SortFunc(pruned, compareKeys)
		for _, k := range pruned {
			res.Changes = append(res.Changes, Change{Key: k, Action: Pruned})
		}
	}
	return s.commit(tx, index, cur, next, res)
}

// Delete applies a DeleteRBAC entry at index within tx.
func (s *Store) Delete(tx *bolt.Tx, index uint64, c *raftstorev1.DeleteRBAC) (Result, error) {
	cur := s.current()
	next := copyObjects(cur.objects)
	var res Result
	for _, r := range c.GetRefs() {
		k := Key{Kind: r.GetKind(), Namespace: r.GetNamespace(), Name: r.GetName()}
		if next[k] == nil {
			if cur.objects[k] != nil {
				continue // named twice
			}
			if c.GetIgnoreMissing() {
				continue
			}
			return Result{Err: fmt.Errorf("%s: %w", k, ErrNotFound)}, nil
		}
		delete(next, k)
		res.Changes = append(res.Changes, Change{Key: k, Action: Deleted})
	}
	if err := aggregate(next); err != nil {
		return Result{}, err
	}
	return s.commit(tx, index, cur, next, res)
}

// commit writes the difference between cur and next, in key order, and
// stages next as the snapshot at index when anything changed. Committed
// publishes it once tx has committed, so no reader sees a change that is
// not durable, and every View's Applied is the exact state it holds.
func (s *Store) commit(tx *bolt.Tx, index uint64, cur state, next map[Key]*Object, res Result) (Result, error) {
	b := tx.Bucket(objectsBucket)
	var keys []Key
	for k, o := range next {
		if old := cur.objects[k]; old == nil || !bytes.Equal(old.data, o.data) {
			keys = append(keys, k)
		}
	}
	for k := range cur.objects {
		if next[k] == nil {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		res.Revision = cur.revision
		return res, nil
	}
	slices.SortFunc(keys, func(a, b Key) int { return bytes.Compare(a.storageKey(), b.storageKey()) })
	for _, k := range keys {
		o := next[k]
		if o == nil {
			if err := b.Delete(k.storageKey()); err != nil {
				return Result{}, fmt.Errorf("delete RBAC object %s: %w", k, err)
			}
			continue
		}
		v, err := proto.Marshal(o.stored())
		if err != nil {
			return Result{}, fmt.Errorf("encode RBAC object %s: %w", k, err)
		}
		if err := b.Put(k.storageKey(), v); err != nil {
			return Result{}, fmt.Errorf("store RBAC object %s: %w", k, err)
		}
	}
	var rev [8]byte
	binary.BigEndian.PutUint64(rev[:], index)
	if err := tx.Bucket(metaBucket).Put(keyRevision, rev[:]); err != nil {
		return Result{}, fmt.Errorf("store RBAC revision: %w", err)
	}
	s.staged = &state{revision: index, objects: next}
	res.Revision = index
	return res, nil
}
