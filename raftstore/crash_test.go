package raftstore_test

import (
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tokenstore/tokenstore/raftstore"
)

// batchEntries keeps a test's batch open by size too when its interval is
// long.
func batchEntries(interval time.Duration) int {
	if interval > 0 {
		return 1 << 30
	}
	return 0
}

// crash stops m as a SIGKILL would (Node.Crash: the open batch is lost).
func (c *cluster) crash(m *member) {
	m.node.Crash()
	m.node = nil
}

// checkKeys fails unless m's state machine holds exactly want.
func checkKeys(t *testing.T, m *member, want map[string]string) {
	t.Helper()
	if m.sm.len() != len(want) {
		t.Fatalf("%s holds %d keys, want %d", m.name, m.sm.len(), len(want))
	}
	for k, v := range want {
		if got, ok := m.sm.get(k); !ok || got != v {
			t.Fatalf("%s: %s=%q (present %v), want %q", m.name, k, got, ok, v)
		}
	}
}

// sameStateHash fails unless every member has the same state hash at the
// same revision.
func sameStateHash(t *testing.T, c *cluster) {
	t.Helper()
	var first string
	var firstRev uint64
	for i, m := range c.members {
		sum, rev, err := m.node.StateHash()
		if err != nil {
			t.Fatalf("%s state hash: %v", m.name, err)
		}
		if i == 0 {
			first, firstRev = sum, rev
			continue
		}
		if sum != first || rev != firstRev {
			t.Fatalf("%s state hash %s at %d, %s has %s at %d", m.name, sum, rev, c.members[0].name, first, firstRev)
		}
	}
}

// Entries applied into the open batch but never committed to state.db are
// replayed from the raft log after a crash: of one member (the leader, under
// writes) and of all members at once.
func TestCrashReplaysEntriesAfterDurableIndex(t *testing.T) {
	c := newCluster(t, 3, 1000)
	c.batch = time.Hour // nothing commits but snapshots, reads and Stop
	for _, m := range c.members {
		c.stop(m) // Stop commits: the bootstrap entries are durable
		c.start(m)
	}
	want := map[string]string{}
	var last raftstore.Result
	write := func(from, to int) {
		for i := from; i < to; i++ {
			k, v := "k"+strconv.Itoa(i), strconv.Itoa(i*7)
			last = put(t, c.leader(), k, v)
			want[k] = v
		}
	}
	write(0, 30)
	l := c.leader()
	if l.node.DurableIndex() >= last.Index {
		t.Fatalf("leader's state database is durable up to %d, the last write is %d: nothing left to replay, the test proves nothing", l.node.DurableIndex(), last.Index)
	}
	c.crash(l)
	write(30, 60)
	c.start(l)
	for _, m := range c.members {
		waitApplied(t, m, last.Index)
		if m.node.DurableIndex() >= last.Index {
			t.Fatalf("%s durable up to %d before the crash of all: nothing to replay", m.name, m.node.DurableIndex())
		}
	}
	for _, m := range c.members {
		c.crash(m)
	}
	for _, m := range c.members {
		c.start(m)
	}
	r := put(t, c.leader(), "after", "crash")
	want["after"] = "crash"
	for _, m := range c.members {
		waitApplied(t, m, r.Index)
		checkKeys(t, m, want)
	}
	sameStateHash(t, c)
	// A clean restart now finds everything durable: nothing replays.
	f := c.follower()
	c.stop(f)
	c.start(f)
	if d, a := f.node.DurableIndex(), f.node.AppliedIndex(); d != a || a < r.Index {
		t.Fatalf("after a clean stop %s opens durable at %d, applied %d, want both ≥ %d", f.name, d, a, r.Index)
	}
	checkKeys(t, f, want)
}

// A snapshot compacts the log only behind what state.db holds durably, so
// a crash right after compaction still finds every entry after the durable
// index in the log.
func TestCompactionNeverPassesDurableIndex(t *testing.T) {
	c := newCluster(t, 3, 10) // snapshot every 10 entries, keep 5
	c.batch = time.Hour
	for _, m := range c.members {
		c.stop(m)
		c.start(m)
	}
	want := map[string]string{}
	var last raftstore.Result
	for i := 0; i < 57; i++ {
		k := "k" + strconv.Itoa(i)
		last = put(t, c.leader(), k, k)
		want[k] = k
	}
	for _, m := range c.members {
		waitApplied(t, m, last.Index)
		if m.node.Metrics().SnapshotsTaken.Load() == 0 {
			t.Fatalf("%s took no snapshot", m.name)
		}
	}
	for _, m := range c.members {
		c.crash(m)
	}
	for _, m := range c.members {
		c.start(m) // fails if the log's snapshot were past state.db
	}
	r := put(t, c.leader(), "after", "crash")
	want["after"] = "crash"
	for _, m := range c.members {
		waitApplied(t, m, r.Index)
		checkKeys(t, m, want)
	}
	sameStateHash(t, c)
}

// A read of the state database sees the proposer's own write even while
// the batch holding it is not committed.
func TestViewSeesOwnUncommittedWrite(t *testing.T) {
	c := newCluster(t, 3, 1000)
	c.batch = time.Hour
	f := c.follower()
	c.stop(f)
	c.start(f)
	r := put(t, f, "mine", "yes")
	var got string
	var rev uint64
	err := f.node.View(func(tx *bolt.Tx, applied uint64) error {
		got, rev = string(tx.Bucket(kvBucket).Get([]byte("mine"))), applied
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != "yes" || rev < r.Index {
		t.Fatalf("View after own write: mine=%q at revision %d, want yes at ≥ %d", got, rev, r.Index)
	}
}
