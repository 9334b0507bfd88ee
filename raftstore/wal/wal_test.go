package wal

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func ent(term, index uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Term: proto.Uint64(term), Index: proto.Uint64(index), Data: []byte(data)}
}

func ents(term, from, to uint64) []*raftpb.Entry {
	var es []*raftpb.Entry
	for i := from; i <= to; i++ {
		es = append(es, ent(term, i, fmt.Sprintf("e%d-t%d", i, term)))
	}
	return es
}

func hs(term, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: proto.Uint64(term), Commit: proto.Uint64(commit)}
}

func snapAt(index, term uint64) *raftpb.Snapshot {
	return &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term),
		ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}
}

// testSegmentSize keeps tests from reading 64 MiB segments on every open.
const testSegmentSize = 64 << 10

func open(t *testing.T, dir string, size int64) *WAL {
	t.Helper()
	if size == 0 {
		size = testSegmentSize
	}
	w, err := Open(dir, Options{SegmentSize: size})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// reload closes w and returns what a fresh Open loads.
func reload(t *testing.T, w *WAL, size int64) (*WAL, *raftpb.Snapshot, *raftpb.HardState, []*raftpb.Entry) {
	t.Helper()
	if w != nil {
		w.Close()
	}
	w = open(t, w.dir, size)
	snap, h, es, err := w.Load()
	if err != nil {
		t.Fatal(err)
	}
	return w, snap, h, es
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// checkEntries compares indexes, terms and data.
func checkEntries(t *testing.T, got, want []*raftpb.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries (%s), want %d (%s)", len(got), span(got), len(want), span(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("entry %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func span(es []*raftpb.Entry) string {
	if len(es) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d..%d", es[0].GetIndex(), es[len(es)-1].GetIndex())
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, 0)
	snap, h, es, err := w.Load()
	must(t, err)
	if snap != nil || h != nil || len(es) != 0 {
		t.Fatalf("a new log loads %v %v %d entries", snap, h, len(es))
	}
	must(t, w.Save(hs(1, 0), ents(1, 1, 3)))
	must(t, w.Save(hs(2, 3), nil))
	must(t, w.Save(nil, ents(2, 4, 4)))
	w, snap, h, es = reload(t, w, 0)
	defer w.Close()
	if snap != nil {
		t.Fatalf("snapshot %v, want none", snap)
	}
	if !proto.Equal(h, hs(2, 3)) {
		t.Fatalf("hard state %v", h)
	}
	checkEntries(t, es, append(ents(1, 1, 3), ents(2, 4, 4)...))
}

// A follower's log overwritten by a new leader: the replayed log has the
// new suffix only.
func TestOverwriteSuffixReplay(t *testing.T) {
	w := open(t, t.TempDir(), 0)
	must(t, w.Save(hs(1, 2), ents(1, 1, 5)))
	must(t, w.Save(hs(2, 2), ents(2, 3, 4)))
	w, _, h, es := reload(t, w, 0)
	checkEntries(t, es, append(ents(1, 1, 2), ents(2, 3, 4)...))
	if h.GetTerm() != 2 {
		t.Fatalf("hard state %v", h)
	}
	// And appending after the reload continues from the new suffix.
	must(t, w.Save(nil, ents(2, 5, 6)))
	w, _, _, es = reload(t, w, 0)
	defer w.Close()
	checkEntries(t, es, append(ents(1, 1, 2), ents(2, 3, 6)...))
}

func TestTruncateAfter(t *testing.T) {
	w := open(t, t.TempDir(), 0)
	must(t, w.Save(hs(1, 3), ents(1, 1, 6)))
	must(t, w.TruncateAfter(3))
	w, _, _, es := reload(t, w, 0)
	checkEntries(t, es, ents(1, 1, 3))
	must(t, w.Save(nil, ents(3, 4, 5)))
	w, _, _, es = reload(t, w, 0)
	defer w.Close()
	checkEntries(t, es, append(ents(1, 1, 3), ents(3, 4, 5)...))
}

func TestSaveRefusesGap(t *testing.T) {
	w := open(t, t.TempDir(), 0)
	defer w.Close()
	must(t, w.Save(nil, ents(1, 1, 2)))
	if err := w.Save(nil, ents(1, 4, 4)); err == nil || !strings.Contains(err.Error(), "gap") {
		t.Fatalf("entries after a gap: %v", err)
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	must(t, err)
	sort.Strings(m)
	return m
}

// Rotation: small segments, many saves; every segment opens with the
// snapshot and hard state, and replay across them returns everything.
func TestRotationAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	const size = 1024
	w := open(t, dir, size)
	must(t, w.SaveSnapshot(snapAt(0, 0), 0))
	var want []*raftpb.Entry
	for i := uint64(1); i <= 300; i += 3 {
		es := ents(1, i, i+2)
		must(t, w.Save(hs(1, i), es))
		want = append(want, es...)
	}
	files := segFiles(t, dir)
	if len(files) < 4 {
		t.Fatalf("%d segments after ~%d bytes of records in %d-byte segments: no rotation", len(files), 300*30, size)
	}
	for i, f := range files {
		if want := fmt.Sprintf("%016x-", i); !strings.HasPrefix(filepath.Base(f), want) {
			t.Fatalf("segment %d is %s", i, f)
		}
	}
	w, _, h, es := reload(t, w, size)
	defer w.Close()
	checkEntries(t, es, want)
	if h.GetCommit() != 298 {
		t.Fatalf("hard state %v", h)
	}
}

// Compaction deletes old segments once a snapshot covers them; reload
// still has the snapshot, hard state and every entry after compactTo.
func TestCompactionDeletesOldSegments(t *testing.T) {
	dir := t.TempDir()
	const size = 1024
	w := open(t, dir, size)
	var all []*raftpb.Entry
	for i := uint64(1); i <= 600; i += 3 {
		es := ents(1, i, i+2)
		must(t, w.Save(hs(1, i+2), es))
		all = append(all, es...)
	}
	before := segFiles(t, dir)
	must(t, w.SaveSnapshot(snapAt(500, 1), 450))
	after := segFiles(t, dir)
	if len(after) >= len(before) {
		t.Fatalf("%d segments before compaction, %d after", len(before), len(after))
	}
	// What was deleted held only entries <= 450; what is left starts at or
	// below 451.
	w, snap, h, es := reload(t, w, size)
	if snap.GetMetadata().GetIndex() != 500 || !proto.Equal(snap.GetMetadata().GetConfState(), snapAt(500, 1).GetMetadata().GetConfState()) {
		t.Fatalf("snapshot %v", snap)
	}
	if h.GetCommit() != 600 {
		t.Fatalf("hard state %v", h)
	}
	checkEntries(t, es, all[500:])
	// Compacting everything but the active segment, and appending more,
	// then reloading, still works.
	must(t, w.SaveSnapshot(snapAt(600, 1), 600))
	if n := len(segFiles(t, dir)); n != 1 {
		t.Fatalf("%d segments after compacting everything", n)
	}
	must(t, w.Save(hs(1, 601), ents(1, 601, 610)))
	w, snap, _, es = reload(t, w, size)
	defer w.Close()
	if snap.GetMetadata().GetIndex() != 600 {
		t.Fatalf("snapshot %v", snap)
	}
	checkEntries(t, es, ents(1, 601, 610))
}

// A snapshot installed from the leader far ahead of the local log: the
// next entries follow the snapshot, not the old log.
func TestInstalledSnapshotThenEntries(t *testing.T) {
	w := open(t, t.TempDir(), 0)
	must(t, w.Save(hs(1, 5), ents(1, 1, 5)))
	must(t, w.SaveSnapshot(snapAt(100, 3), 100))
	must(t, w.Save(hs(3, 101), ents(3, 101, 102)))
	w, snap, _, es := reload(t, w, 0)
	defer w.Close()
	if snap.GetMetadata().GetIndex() != 100 {
		t.Fatalf("snapshot %v", snap)
	}
	checkEntries(t, es, ents(3, 101, 102))
}

// syncCount Saves and counts fsyncs: exactly one per Save, none for an
// empty one.
func TestOneSyncPerSave(t *testing.T) {
	w := open(t, t.TempDir(), 0)
	defer w.Close()
	for i := uint64(1); i <= 50; i++ {
		before := w.syncs
		must(t, w.Save(hs(1, i), ents(1, i, i)))
		if n := w.syncs - before; n != 1 {
			t.Fatalf("save %d: %d syncs, want 1", i, n)
		}
	}
	before := w.syncs
	must(t, w.Save(&raftpb.HardState{}, nil))
	if w.syncs != before {
		t.Fatal("an empty save synced")
	}
}

func TestLockedByAnotherOpen(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, 0)
	defer w.Close()
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second open: %v", err)
	}
}

func TestNewerFormatRefused(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, 0)
	must(t, w.Save(hs(1, 1), ents(1, 1, 1)))
	w.Close()
	f := segFiles(t, dir)[0]
	b, err := os.ReadFile(f)
	must(t, err)
	h := header{version: FormatVersion + 1}
	hb := appendRecord(nil, 0, recHeader, h.marshal())
	copy(b, hb)
	must(t, os.WriteFile(f, b, 0o600))
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "format version 3") {
		t.Fatalf("open of a newer format: %v", err)
	}
}

// lastRecord returns the offsets of the last record in a segment file
// (from the records' framing).
func lastRecord(t *testing.T, path string) (start, end int) {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	off := 0
	for {
		_, _, n, err := decodeRecordAny(b[off:])
		if err != nil {
			return start, off
		}
		start = off
		off += n
	}
}

// decodeRecordAny decodes framing without checking the CRC, for tests.
func decodeRecordAny(b []byte) (byte, []byte, int, error) {
	if len(b) < frameSize {
		return 0, nil, 0, errShort
	}
	l := int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24
	if l == 0 || frameSize+l > len(b) {
		return 0, nil, 0, errZero
	}
	return b[8], b[frameSize : frameSize+l], frameSize + l, nil
}

// tornSetup writes a log whose last record is a Save of entries 4..5, and
// returns the segment file, its pristine bytes and that record's bounds.
func tornSetup(t *testing.T, dir string) (string, []byte, int, int) {
	w := open(t, dir, 0)
	must(t, w.Save(hs(1, 1), ents(1, 1, 3)))
	must(t, w.Save(hs(1, 3), ents(1, 4, 5)))
	w.Close()
	f := segFiles(t, dir)[0]
	b, err := os.ReadFile(f)
	must(t, err)
	start, end := lastRecord(t, f)
	return f, b, start, end
}

// A torn last record, at every length it could have reached and with any
// byte of it flipped, ends the log: Load returns exactly what came before,
// and the next Save and reload work.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	f, pristine, start, end := tornSetup(t, dir)
	if end-start < 20 {
		t.Fatalf("last record %d..%d", start, end)
	}
	check := func(name string, b []byte) {
		t.Helper()
		must(t, os.WriteFile(f, b, 0o600))
		w, err := Open(dir, Options{SegmentSize: testSegmentSize})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, h, es, err := w.Load()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkEntries(t, es, ents(1, 1, 3))
		if h.GetCommit() != 1 {
			t.Fatalf("%s: hard state %v", name, h)
		}
		must(t, w.Save(hs(2, 3), ents(2, 4, 4)))
		w, _, h, es = reload(t, w, 0)
		w.Close()
		checkEntries(t, es, append(ents(1, 1, 3), ents(2, 4, 4)...))
		if h.GetTerm() != 2 {
			t.Fatalf("%s: hard state after the next save %v", name, h)
		}
	}
	for cut := start; cut < end; cut++ {
		// Cut the file (short read) and, separately, zero the rest (as
		// in preallocated space).
		check(fmt.Sprintf("cut at %d", cut), bytes.Clone(pristine[:cut]))
		b := bytes.Clone(pristine)
		clear(b[cut:end])
		check(fmt.Sprintf("zeroed from %d", cut), b)
	}
	for i := start; i < end; i++ {
		b := bytes.Clone(pristine)
		b[i] ^= 0x40
		check(fmt.Sprintf("byte %d flipped", i), b)
	}
}

// A bad record followed by a valid one is not a torn tail: Open refuses,
// naming the file and offset.
func TestCorruptionMidFile(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, 0)
	must(t, w.Save(hs(1, 1), ents(1, 1, 3)))
	must(t, w.Save(hs(1, 3), ents(1, 4, 5)))
	w.Close()
	f := segFiles(t, dir)[0]
	b, err := os.ReadFile(f)
	must(t, err)
	start, end := lastRecord(t, f)
	// Find the record before the last one and flip a byte in it.
	prevStart, _ := func() (int, int) {
		off, ps := 0, 0
		for off < start {
			_, _, n, _ := decodeRecordAny(b[off:])
			ps = off
			off += n
		}
		return ps, off
	}()
	for _, i := range []int{prevStart + 2, prevStart + 5, prevStart + frameSize + 3, start - 1} {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		must(t, os.WriteFile(f, c, 0o600))
		_, err := Open(dir, Options{})
		if err == nil || !strings.Contains(err.Error(), f) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", prevStart)) || !strings.Contains(err.Error(), fmt.Sprintf("valid record at offset %d", start)) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	// Zeroed acknowledged records followed by a valid one: refused too.
	c := bytes.Clone(b)
	clear(c[prevStart:start])
	must(t, os.WriteFile(f, c, 0o600))
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "followed by a valid record") {
		t.Fatalf("zeroed records: %v", err)
	}
	_ = end
}

// Corruption in a segment that is not the last is never a torn tail.
func TestCorruptionInOlderSegment(t *testing.T) {
	const size = 1024
	for _, how := range []string{"flip", "zero"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			w := open(t, dir, size)
			for i := uint64(1); i <= 300; i += 3 {
				must(t, w.Save(hs(1, i), ents(1, i, i+2)))
			}
			w.Close()
			files := segFiles(t, dir)
			if len(files) < 3 {
				t.Fatalf("%d segments", len(files))
			}
			f := files[1]
			start, _ := lastRecord(t, f)
			b, err := os.ReadFile(f)
			must(t, err)
			if how == "flip" {
				b[start+frameSize+1] ^= 0x10
			} else {
				clear(b[start:])
			}
			must(t, os.WriteFile(f, b, 0o600))
			_, err = Open(dir, Options{SegmentSize: size})
			if err == nil || !strings.Contains(err.Error(), filepath.Base(f)) {
				t.Fatalf("open: %v", err)
			}
			t.Log(err)
		})
	}
}

// A segment whose creation never finished is discarded.
func TestUnfinishedSegmentDiscarded(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, 0)
	must(t, w.Save(hs(1, 1), ents(1, 1, 2)))
	w.Close()
	tmp := filepath.Join(dir, segmentName(1, 3)+".tmp")
	must(t, os.WriteFile(tmp, []byte("half a header"), 0o600))
	w, _, _, es := reload(t, &WAL{dir: dir}, 0)
	defer w.Close()
	checkEntries(t, es, ents(1, 1, 2))
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("unfinished segment still there: %v", err)
	}
}

// A missing segment in the middle is refused.
func TestMissingSegment(t *testing.T) {
	dir := t.TempDir()
	const size = 1024
	w := open(t, dir, size)
	for i := uint64(1); i <= 300; i += 3 {
		must(t, w.Save(hs(1, i), ents(1, i, i+2)))
	}
	w.Close()
	files := segFiles(t, dir)
	must(t, os.Remove(files[1]))
	if _, err := Open(dir, Options{SegmentSize: size}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("open: %v", err)
	}
}

// Options.SyncDelay slows every Save by at least the delay (a slow disk for
// fault campaigns) and changes nothing else.
func TestSyncDelaySlowsEverySave(t *testing.T) {
	const delay = 20 * time.Millisecond
	w, err := Open(t.TempDir(), Options{SyncDelay: delay})
	must(t, err)
	defer w.Close()
	_, _, _, err = w.Load()
	must(t, err)
	start := time.Now()
	for i := uint64(1); i <= 3; i++ {
		must(t, w.Save(hs(1, i), ents(1, i, i)))
	}
	if d := time.Since(start); d < 3*delay {
		t.Fatalf("3 saves took %v with a sync delay of %v", d, delay)
	}
}
