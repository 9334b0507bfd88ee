package state

import (
	"fmt"
	"sync"

	"github.com/google/btree"
	bolt "go.etcd.io/bbolt"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// Retention: a revoked or expired token can never authenticate again, but
// without a purge its record stays in state.db and its entry in every
// member's memory forever, so a cluster that issues short-lived tokens
// grows without bound. The leader finds tokens whose revocation or expiry
// lies before a cutoff (Purgeable) and proposes their deletion
// (PurgeTokens); every member deletes those the command lists that are
// still past the cutoff. A purged token's id is then unknown: it is
// refused as any unknown token is, and can be created again only by an
// import with that id.

// FeaturePurgeTokens names the PurgeTokens operation in MemberStatus
// features: the leader proposes it only once every member reports it.
const FeaturePurgeTokens = "purge-tokens"

// purgeableAt is when a token becomes purgeable: the earlier of its
// revocation and its expiry, 0 for never (a revocation without a time is
// not purged).
func purgeableAt(revoked bool, revokedAt, expires int64) int64 {
	var at int64
	if revoked && revokedAt != 0 {
		at = revokedAt
	}
	if expires != 0 && (at == 0 || expires < at) {
		at = expires
	}
	return at
}

// purgeableAt is nil-safe: e may be an absent previous entry.
func (e *entry) purgeableAt() int64 {
	if e == nil {
		return 0
	}
	var revoked bool
	var revokedAt int64
	if e.ext != nil {
		revoked, revokedAt = e.ext.revoked, e.ext.revokedAt
	}
	return purgeableAt(revoked, revokedAt, e.expires)
}

// retentionKey orders the tokens that will become purgeable by when.
type retentionKey struct {
	at int64
	id string
}

func retentionLess(a, b retentionKey) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.id < b.id
}

// retentionIndex holds every token with a purgeable time, ordered by it,
// so the leader finds the ones past a cutoff without walking every token
// (a walk of a million entries would hold the index's lock for tens of
// milliseconds). Changed on the apply loop, read by the retention loop.
// Like the pending entries it follows applies as they happen; an Apply
// that fails stops the member, and Restore rebuilds it.
type retentionIndex struct {
	mu   sync.Mutex
	tree *btree.BTreeG[retentionKey]
}

func newRetentionIndex() *retentionIndex {
	return &retentionIndex{tree: btree.NewG(32, retentionLess)}
}

// move records that id's purgeable time went from old to now (0: none).
func (x *retentionIndex) move(id string, old, now int64) {
	if old == now {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if old != 0 {
		x.tree.Delete(retentionKey{old, id})
	}
	if now != 0 {
		x.tree.ReplaceOrInsert(retentionKey{now, id})
	}
}

// Purgeable returns up to limit ids of tokens revoked or expiring at or
// before cutoff (unix nanoseconds), earliest first, leaving out those keep
// names.
func (s *State) Purgeable(cutoff int64, limit int, keep func(id string) bool) []string {
	var ids []string
	s.retention.mu.Lock()
	defer s.retention.mu.Unlock()
	s.retention.tree.Ascend(func(k retentionKey) bool {
		if k.at > cutoff || len(ids) == limit {
			return false
		}
		if keep == nil || !keep(k.id) {
			ids = append(ids, k.id)
		}
		return true
	})
	return ids
}

// PurgeOutcome is what applying a PurgeTokens returns.
type PurgeOutcome struct {
	// Purged counts the tokens deleted.
	Purged int
}

// applyPurge deletes the listed tokens that are past the command's cutoff
// in the stored record (the same on every member); others are left alone.
func (s *State) applyPurge(b *bolt.Bucket, p *raftstorev1.PurgeTokens) (any, error) {
	var out PurgeOutcome
	for _, id := range p.GetIds() {
		r, err := getRecord(b, id)
		if err != nil {
			return nil, err
		}
		if r == nil {
			continue
		}
		at := purgeableAt(r.GetRevoked(), r.GetRevokedUnixNano(), r.GetExpiresUnixNano())
		if at == 0 || at > p.GetCutoffUnixNano() {
			continue
		}
		if err := b.Delete([]byte(id)); err != nil {
			return nil, fmt.Errorf("purge token %q: %w", id, err)
		}
		s.pending[id] = nil
		s.retention.move(id, at, 0)
		out.Purged++
	}
	return out, nil
}
