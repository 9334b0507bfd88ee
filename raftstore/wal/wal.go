package wal

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// FormatVersion is the raft log format this package writes (package doc).
const FormatVersion = 2

// DefaultSegmentSize is where a segment is rotated, and how much of it is
// preallocated.
const DefaultSegmentSize = 64 << 20

// Options configures Open. The zero value is the default.
type Options struct {
	// SegmentSize is the size segments are preallocated to and rotated at
	// (DefaultSegmentSize if zero). Tests make it small.
	SegmentSize int64
	// SyncDelay (tests only) is added to every fdatasync of a segment, as
	// a slow disk would: fault campaigns use it to slow one member's log.
	SyncDelay time.Duration
}

type segment struct {
	seq, first uint64
	path       string
	// maxIndex is the highest entry index any record in the segment wrote;
	// compaction deletes the segment once it is at or below compactTo.
	maxIndex uint64
}

// WAL is an open log directory (package doc).
type WAL struct {
	dir     string
	dirFile *os.File // flock'ed; fsynced after segment files change
	size    int64
	delay   time.Duration // Options.SyncDelay
	segs    []*segment    // oldest first; the last is active
	f       *os.File      // the active segment
	off     int64         // where the next record goes in f
	seed    uint32        // CRC seed of the active segment
	state   logState      // snapshot and hard state now; entries only until Load
	last    uint64        // the last entry index
	loaded  bool
	err     error // sticky: after a failed write the log's tail is unknown
	// syncs counts fdatasyncs and fsyncs, for tests of the one-sync-per-
	// Save promise.
	syncs int
}

// Open opens the log in dir, creating it if needed, and replays it. It
// fails if another process has it open, or on corruption (package doc).
func Open(dir string, opts Options) (*WAL, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	df, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	w := &WAL{dir: dir, dirFile: df, size: opts.SegmentSize, delay: opts.SyncDelay}
	if err := w.open(); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// lockDir opens dir and takes an exclusive flock on it, waiting up to a
// second (as bbolt does) so a restart right after a crash does not fail.
func lockDir(dir string) (*os.File, error) {
	df, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		err := unix.Flock(int(df.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return df, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			df.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("open wal %s: locked by another process (is a tokenstore already running on this data dir?)", dir)
			}
			return nil, fmt.Errorf("open wal %s: lock: %w", dir, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (w *WAL) open() error {
	names, err := os.ReadDir(w.dir)
	if err != nil {
		return fmt.Errorf("open wal: %w", err)
	}
	removed := false
	for _, d := range names {
		name := d.Name()
		switch {
		case strings.HasSuffix(name, ".tmp"):
			// A segment whose creation never finished.
			if err := os.Remove(filepath.Join(w.dir, name)); err != nil {
				return fmt.Errorf("open wal: remove unfinished segment: %w", err)
			}
			removed = true
		case strings.HasSuffix(name, ".wal"):
			var seq, first uint64
			if _, err := fmt.Sscanf(name, "%016x-%016x.wal", &seq, &first); err != nil || segmentName(seq, first) != name {
				return fmt.Errorf("open wal: unexpected file %s", filepath.Join(w.dir, name))
			}
			w.segs = append(w.segs, &segment{seq: seq, first: first, path: filepath.Join(w.dir, name)})
		}
	}
	if removed {
		if err := w.syncDir(); err != nil {
			return err
		}
	}
	if len(w.segs) == 0 {
		return w.createSegment(0, 1, 0)
	}
	slices.SortFunc(w.segs, func(a, b *segment) int { return cmp.Compare(a.seq, b.seq) })
	var prevEnd int64
	for i, seg := range w.segs {
		if i > 0 && seg.seq != w.segs[i-1].seq+1 {
			return fmt.Errorf("open wal: segment %d is missing (found %s after %s)", w.segs[i-1].seq+1, seg.path, w.segs[i-1].path)
		}
		data, err := readSegment(seg.path)
		if err != nil {
			return err
		}
		last := i == len(w.segs)-1
		var prev *segment
		if i > 0 {
			prev = w.segs[i-1]
		}
		tail, dirtyEnd, salt, err := replaySegment(&w.state, seg, data, last, prev, prevEnd)
		if err != nil {
			return err
		}
		prevEnd = tail
		if last {
			if err := w.openActive(seg, tail, dirtyEnd, salt); err != nil {
				return err
			}
		}
	}
	w.last = w.state.lastIndex()
	return nil
}

// openActive opens the last segment for appending at tail, zeroing a torn
// tail first so nothing of it can later follow a new record.
func (w *WAL) openActive(seg *segment, tail, dirtyEnd int64, salt uint64) error {
	f, err := os.OpenFile(seg.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open wal segment: %w", err)
	}
	w.f, w.off, w.seed = f, tail, saltSeed(salt)
	if dirtyEnd > tail {
		if _, err := f.WriteAt(make([]byte, dirtyEnd-tail), tail); err != nil {
			return fmt.Errorf("wal segment %s: clear torn tail at %d: %w", seg.path, tail, err)
		}
		if err := w.fdatasync(); err != nil {
			return err
		}
	}
	return nil
}

func segmentName(seq, first uint64) string {
	return fmt.Sprintf("%016x-%016x.wal", seq, first)
}

// createSegment makes segment seq the active one: written under a temporary
// name with its header, the snapshot metadata and hard state, preallocated,
// fsynced, renamed, and the directory fsynced.
func (w *WAL) createSegment(seq, first uint64, prevEnd int64) error {
	seg := &segment{seq: seq, first: first, path: filepath.Join(w.dir, segmentName(seq, first))}
	tmp := seg.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("create wal segment: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("create wal segment %s: %w", seg.path, err)
	}
	var saltb [8]byte
	if _, err := rand.Read(saltb[:]); err != nil {
		return fail(err)
	}
	salt := binary.LittleEndian.Uint64(saltb[:])
	seed := saltSeed(salt)
	buf := appendRecord(nil, 0, recHeader, header{version: FormatVersion, seq: seq, salt: salt, prevEnd: uint64(prevEnd)}.marshal())
	if w.state.snap != nil {
		b, err := proto.Marshal(w.state.snap)
		if err != nil {
			return fail(err)
		}
		buf = appendRecord(buf, seed, recSnapshot, b)
	}
	if w.state.hs != nil {
		b, err := proto.Marshal(w.state.hs)
		if err != nil {
			return fail(err)
		}
		buf = appendRecord(buf, seed, recHardState, b)
	}
	if err := preallocate(f, max(w.size, int64(len(buf)))); err != nil {
		return fail(err)
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		return fail(err)
	}
	// A full fsync: the preallocated size is metadata fdatasync need not
	// write, and later appends rely on it being durable.
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	w.syncs++
	if err := os.Rename(tmp, seg.path); err != nil {
		return fail(err)
	}
	if err := w.syncDir(); err != nil {
		f.Close()
		return err
	}
	if w.f != nil {
		w.f.Close()
	}
	w.segs = append(w.segs, seg)
	w.f, w.off, w.seed = f, int64(len(buf)), seed
	return nil
}

// preallocate reserves size bytes for f, so appends within them and their
// fdatasync do not also change the file size. File systems without
// fallocate grow the file as it is written instead.
func preallocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if err == nil || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		return nil
	}
	return fmt.Errorf("preallocate %d bytes: %w", size, err)
}

func (w *WAL) syncDir() error {
	if err := w.dirFile.Sync(); err != nil {
		return fmt.Errorf("sync wal directory %s: %w", w.dir, err)
	}
	w.syncs++
	return nil
}

func (w *WAL) fdatasync() error {
	if w.delay > 0 {
		time.Sleep(w.delay) // a slow disk (Options.SyncDelay), on purpose
	}
	if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
		return fmt.Errorf("sync wal segment %s: %w", w.segs[len(w.segs)-1].path, err)
	}
	w.syncs++
	return nil
}

// Load returns the latest snapshot metadata (nil if none), the hard state
// (nil if none) and the entries after the snapshot, in order. It may be
// called once, right after Open; the WAL does not keep the entries.
func (w *WAL) Load() (*raftpb.Snapshot, *raftpb.HardState, []*raftpb.Entry, error) {
	if w.loaded {
		return nil, nil, nil, errors.New("wal: Load called twice")
	}
	w.loaded = true
	snap, hs, ents, err := w.state.result()
	w.state.ents = nil
	if err != nil {
		return nil, nil, nil, fmt.Errorf("load wal %s: %w", w.dir, err)
	}
	return snap, hs, ents, nil
}

// write appends one record to the active segment and fdatasyncs it. top is
// the highest entry index the record holds (0 if none).
func (w *WAL) write(typ byte, payload []byte, top uint64) error {
	if w.err != nil {
		return w.err
	}
	seg := w.segs[len(w.segs)-1]
	buf := appendRecord(nil, w.seed, typ, payload)
	if _, err := w.f.WriteAt(buf, w.off); err != nil {
		w.err = fmt.Errorf("write wal segment %s at %d: %w", seg.path, w.off, err)
		return w.err
	}
	if err := w.fdatasync(); err != nil {
		w.err = err
		return err
	}
	w.off += int64(len(buf))
	seg.maxIndex = max(seg.maxIndex, top)
	return nil
}

// maybeRotate starts the next segment once the active one is full. Called
// after the in-memory snapshot and hard state are updated: the new segment
// opens with them.
func (w *WAL) maybeRotate() error {
	if w.off < w.size {
		return nil
	}
	if err := w.createSegment(w.segs[len(w.segs)-1].seq+1, max(w.last, w.state.snapIndex())+1, w.off); err != nil {
		w.err = err
		return err
	}
	return nil
}

// Save durably appends ents, replacing any existing suffix from
// ents[0].Index on (a follower's log overwritten by a leader), and records
// hs. Either may be empty. One write, one fdatasync.
func (w *WAL) Save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	hasHS := hs != nil && !isEmptyHardState(hs)
	if !hasHS && len(ents) == 0 {
		return nil
	}
	if len(ents) > 0 {
		if first := ents[0].GetIndex(); first == 0 || first > max(w.last, w.state.snapIndex())+1 {
			return fmt.Errorf("persist raft log: entries from %d would leave a gap after %d", first, w.last)
		}
	}
	payload, err := marshalSave(hs, ents)
	if err != nil {
		return fmt.Errorf("persist raft log: %w", err)
	}
	var top uint64
	if len(ents) > 0 {
		top = ents[len(ents)-1].GetIndex()
	}
	if err := w.write(recSave, payload, top); err != nil {
		return fmt.Errorf("persist raft log: %w", err)
	}
	if hasHS {
		w.state.hs = hs
	}
	if len(ents) > 0 {
		w.last = top
	}
	if err := w.maybeRotate(); err != nil {
		return fmt.Errorf("persist raft log: %w", err)
	}
	return nil
}

// SaveSnapshot durably records snap's metadata, then deletes whole
// segments, oldest first, whose entries are all at or below compactTo
// (compactTo <= the snapshot's index: entries between are kept for
// lagging followers).
func (w *WAL) SaveSnapshot(snap *raftpb.Snapshot, compactTo uint64) error {
	meta := &raftpb.Snapshot{Metadata: snap.GetMetadata()}
	b, err := proto.Marshal(meta)
	if err != nil {
		return fmt.Errorf("persist snapshot metadata at %d: %w", snap.GetMetadata().GetIndex(), err)
	}
	if err := w.write(recSnapshot, b, 0); err != nil {
		return fmt.Errorf("persist snapshot metadata at %d: %w", snap.GetMetadata().GetIndex(), err)
	}
	w.state.snap = meta
	if err := w.maybeRotate(); err != nil {
		return fmt.Errorf("persist snapshot metadata: %w", err)
	}
	removed := false
	for len(w.segs) > 1 && w.segs[0].maxIndex <= compactTo {
		if err := os.Remove(w.segs[0].path); err != nil {
			return fmt.Errorf("compact wal: %w", err)
		}
		w.segs = w.segs[1:]
		removed = true
	}
	if removed {
		return w.syncDir()
	}
	return nil
}

// TruncateAfter durably drops the entries after index.
func (w *WAL) TruncateAfter(index uint64) error {
	if err := w.write(recTruncate, marshalIndex(index), 0); err != nil {
		return fmt.Errorf("truncate raft log after %d: %w", index, err)
	}
	w.last = min(w.last, index)
	if err := w.maybeRotate(); err != nil {
		return fmt.Errorf("truncate raft log after %d: %w", index, err)
	}
	return nil
}

// Syncs is how many fsyncs and fdatasyncs the WAL has made since Open
// (benchmarks and tests check the one-per-Save promise with it).
func (w *WAL) Syncs() int { return w.syncs }

// Close releases the files and the directory lock.
func (w *WAL) Close() error {
	var err error
	if w.f != nil {
		err = w.f.Close()
		w.f = nil
	}
	if w.dirFile != nil {
		if cerr := w.dirFile.Close(); err == nil {
			err = cerr
		}
		w.dirFile = nil
	}
	return err
}
