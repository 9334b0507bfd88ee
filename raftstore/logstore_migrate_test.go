package raftstore

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// readV1File reads the format-1 log at path.
func readV1File(t *testing.T, path string) *v1Log {
	t.Helper()
	db, err := openLogV1(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l, err := readLogV1(db)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// v1Fixture copies the raft.db the previous binary wrote (testdata; see
// cluster-test/migration_test.go) into a new data directory and returns it
// with what raft.db holds.
func v1Fixture(t *testing.T) (string, *v1Log) {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("testdata", "v1-datadir", "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, raftDBFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	want := readV1File(t, filepath.Join(dir, raftDBFile))
	if want.snap == nil || want.hs == nil || len(want.ents) == 0 {
		t.Fatalf("the fixture should hold a snapshot, hard state and entries after it: %v %v %d", want.snap, want.hs, len(want.ents))
	}
	return dir, want
}

// loadLog opens dir's raft log (migrating it if needed) and loads it.
func loadLog(t *testing.T, dir string) (*raftpb.Snapshot, *raftpb.HardState, []*raftpb.Entry) {
	t.Helper()
	s, err := openLogStore(dir, quietLogger(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snap, hs, ents, err := s.load()
	if err != nil {
		t.Fatal(err)
	}
	return snap, hs, ents
}

func sameLog(t *testing.T, snap *raftpb.Snapshot, hs *raftpb.HardState, ents []*raftpb.Entry, want *v1Log) {
	t.Helper()
	if !proto.Equal(snap, want.snap) || !proto.Equal(hs, want.hs) {
		t.Fatalf("snapshot %v hard state %v, want %v %v", snap, hs, want.snap, want.hs)
	}
	if len(ents) != len(want.ents) {
		t.Fatalf("%d entries, want %d", len(ents), len(want.ents))
	}
	for i := range ents {
		if !proto.Equal(ents[i], want.ents[i]) {
			t.Fatalf("entry %d: %v, want %v", i, ents[i], want.ents[i])
		}
	}
}

func checkMigrated(t *testing.T, dir string) {
	t.Helper()
	if hasFile(filepath.Join(dir, walTmpDir)) || !hasFile(filepath.Join(dir, walDir)) {
		t.Fatalf("after migration: wal.tmp %v, wal %v", hasFile(filepath.Join(dir, walTmpDir)), hasFile(filepath.Join(dir, walDir)))
	}
	checkGuard(t, dir)
}

func TestMigrateRealV1Log(t *testing.T) {
	dir, want := v1Fixture(t)
	snap, hs, ents := loadLog(t, dir)
	sameLog(t, snap, hs, ents, want)
	checkMigrated(t, dir)
	// Opening again reads the WAL, the same.
	snap, hs, ents = loadLog(t, dir)
	sameLog(t, snap, hs, ents, want)
}

// A crash while the WAL was being built leaves wal.tmp: it is discarded
// and the migration redone from raft.db.
func TestMigrateAfterCrashWhileBuilding(t *testing.T) {
	for _, how := range []string{"empty", "half-written", "complete but not renamed", "torn segment"} {
		t.Run(how, func(t *testing.T) {
			dir, want := v1Fixture(t)
			tmp := filepath.Join(dir, walTmpDir)
			switch how {
			case "empty":
				if err := os.Mkdir(tmp, 0o700); err != nil {
					t.Fatal(err)
				}
			case "torn segment":
				// Reusing it would fail: it must be discarded.
				if err := os.Mkdir(tmp, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(tmp, "0000000000000000-0000000000000001.wal"), []byte("torn"), 0o600); err != nil {
					t.Fatal(err)
				}
			case "half-written", "complete but not renamed":
				// Only some entries made it (or all): neither counts.
				n := len(want.ents)
				if how == "half-written" {
					n /= 2
				}
				if err := writeLog(tmp, want.snap, nil, want.ents[:n]); err != nil {
					t.Fatal(err)
				}
			}
			snap, hs, ents := loadLog(t, dir)
			sameLog(t, snap, hs, ents, want)
			checkMigrated(t, dir)
		})
	}
}

// A crash after the rename but before raft.db was replaced by the guard:
// wal/ is complete and wins, raft.db becomes the guard.
func TestMigrateAfterCrashBeforeRemovingRaftDB(t *testing.T) {
	dir, want := v1Fixture(t)
	// A WAL that differs from raft.db (one entry more), as one that kept
	// running after the migration and then met a raft.db restored beside it.
	last := want.ents[len(want.ents)-1]
	more := &raftpb.Entry{Term: proto.Uint64(last.GetTerm()), Index: proto.Uint64(last.GetIndex() + 1), Data: []byte("after migration")}
	if err := createLog(dir, want.snap, want.hs, append(append([]*raftpb.Entry(nil), want.ents...), more)); err != nil {
		t.Fatal(err)
	}
	snap, hs, ents := loadLog(t, dir)
	want.ents = append(want.ents, more)
	sameLog(t, snap, hs, ents, want)
	checkMigrated(t, dir)
}

// A v1 log written by the v1 writer (not the fixture): empty, then one
// with a snapshot and a gap-free tail, migrates exactly.
func TestMigrateWrittenV1Log(t *testing.T) {
	dir := t.TempDir()
	old, err := openV1LogStore(filepath.Join(dir, raftDBFile))
	if err != nil {
		t.Fatal(err)
	}
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 3000; i++ {
		ents = append(ents, &raftpb.Entry{Term: proto.Uint64(2), Index: proto.Uint64(i), Data: []byte("data")})
	}
	if err := old.save(&raftpb.HardState{Term: proto.Uint64(2), Vote: proto.Uint64(1), Commit: proto.Uint64(2900)}, ents); err != nil {
		t.Fatal(err)
	}
	snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(1000), Term: proto.Uint64(2), ConfState: &raftpb.ConfState{Voters: []uint64{1}}}}
	if err := old.saveSnapshot(snap, 900); err != nil {
		t.Fatal(err)
	}
	old.Close()
	want := readV1File(t, filepath.Join(dir, raftDBFile))
	if len(want.ents) != 2000 {
		t.Fatalf("v1 log holds %d entries after its snapshot", len(want.ents))
	}
	s, hs, got := loadLog(t, dir)
	sameLog(t, s, hs, got, want)
	checkMigrated(t, dir)
}
