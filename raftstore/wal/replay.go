package wal

import (
	"encoding/binary"
	"fmt"
	"os"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// logState is what replaying records builds: the latest snapshot metadata
// and hard state and the entries, with raft's overwrite rules.
type logState struct {
	snap *raftpb.Snapshot
	hs   *raftpb.HardState
	ents []*raftpb.Entry
	// started is set by the first entries replayed. The oldest segment
	// left after compaction may start anywhere: its predecessors held
	// only entries a later snapshot covers (result checks that).
	started bool
}

func (s *logState) snapIndex() uint64 { return s.snap.GetMetadata().GetIndex() }

// lastIndex is the last entry's index, or the snapshot's if that is later.
func (s *logState) lastIndex() uint64 {
	if len(s.ents) > 0 {
		return max(s.ents[len(s.ents)-1].GetIndex(), s.snapIndex())
	}
	return s.snapIndex()
}

// checkAppend says whether entries starting at first may follow the log:
// they overwrite from first on, so first must be at most one past the last
// entry or the snapshot.
func (s *logState) checkAppend(first uint64) error {
	if first == 0 {
		return fmt.Errorf("entry index 0")
	}
	if first > s.lastIndex()+1 {
		return fmt.Errorf("entries from %d would leave a gap after %d", first, s.lastIndex())
	}
	return nil
}

// append adds ents, replacing any suffix from ents[0]'s index on.
func (s *logState) append(ents []*raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	first := ents[0].GetIndex()
	if !s.started {
		s.started = true
		s.ents = append(s.ents[:0], ents...)
		return nil
	}
	if err := s.checkAppend(first); err != nil {
		return err
	}
	if len(s.ents) > 0 {
		have := s.ents[0].GetIndex()
		switch {
		case first > s.ents[len(s.ents)-1].GetIndex()+1:
			// After a gap only the snapshot covers: everything held is
			// at or below it.
			s.ents = s.ents[:0]
		case first <= have:
			s.ents = s.ents[:0]
		default:
			s.ents = s.ents[:first-have]
		}
	}
	s.ents = append(s.ents, ents...)
	return nil
}

func (s *logState) truncateAfter(index uint64) {
	for len(s.ents) > 0 && s.ents[len(s.ents)-1].GetIndex() > index {
		s.ents = s.ents[:len(s.ents)-1]
	}
}

// result returns the snapshot, hard state and the entries after the
// snapshot.
func (s *logState) result() (*raftpb.Snapshot, *raftpb.HardState, []*raftpb.Entry, error) {
	after := s.snapIndex()
	ents := s.ents
	for len(ents) > 0 && ents[0].GetIndex() <= after {
		ents = ents[1:]
	}
	if len(ents) > 0 && ents[0].GetIndex() != after+1 {
		return nil, nil, nil, fmt.Errorf("raft log has a gap: snapshot at %d, first entry %d", after, ents[0].GetIndex())
	}
	return s.snap, s.hs, ents, nil
}

// apply replays one record; it returns the highest entry index the record
// wrote (0 if none).
func (s *logState) apply(typ byte, payload []byte) (uint64, error) {
	switch typ {
	case recSnapshot:
		snap := &raftpb.Snapshot{}
		if err := proto.Unmarshal(payload, snap); err != nil {
			return 0, fmt.Errorf("snapshot record: %w", err)
		}
		s.snap = snap
	case recHardState:
		hs := &raftpb.HardState{}
		if err := proto.Unmarshal(payload, hs); err != nil {
			return 0, fmt.Errorf("hard state record: %w", err)
		}
		s.hs = hs
	case recSave:
		hs, ents, err := unmarshalSave(payload)
		if err != nil {
			return 0, err
		}
		if err := s.append(ents); err != nil {
			return 0, err
		}
		if hs != nil {
			s.hs = hs
		}
		if len(ents) > 0 {
			return ents[len(ents)-1].GetIndex(), nil
		}
	case recTruncate:
		index, err := unmarshalIndex(payload)
		if err != nil {
			return 0, err
		}
		s.truncateAfter(index)
	default:
		return 0, fmt.Errorf("unexpected record type %d", typ)
	}
	return 0, nil
}

// replaySegment replays seg's records into s. prevEnd is where the previous
// segment prev ended (nil for the first one replayed: older segments may
// have been deleted). For the last segment, a torn tail ends
// the log; tail is where it starts (the next append goes there) and
// nonZeroEnd is one past its last non-zero byte.
func replaySegment(s *logState, seg *segment, data []byte, last bool, prev *segment, prevEnd int64) (tail, dirtyEnd int64, salt uint64, err error) {
	corrupt := func(off int, format string, args ...any) error {
		return fmt.Errorf("wal segment %s offset %d: %s", seg.path, off, fmt.Sprintf(format, args...))
	}
	typ, payload, n, err := decodeRecord(data, 0)
	if err == nil && typ != recHeader {
		err = fmt.Errorf("first record has type %d, not a header", typ)
	}
	if err != nil {
		return 0, 0, 0, corrupt(0, "segment header: %v", err)
	}
	h, err := unmarshalHeader(payload)
	if err != nil {
		return 0, 0, 0, corrupt(0, "%v", err)
	}
	if h.version > FormatVersion || h.version < 2 {
		return 0, 0, 0, corrupt(0, "format version %d; this binary reads 2 to %d (upgrade tokenstore if newer)", h.version, FormatVersion)
	}
	if h.seq != seg.seq {
		return 0, 0, 0, corrupt(0, "header says sequence %d, file name %d", h.seq, seg.seq)
	}
	if prev != nil && h.prevEnd != uint64(prevEnd) {
		return 0, 0, 0, fmt.Errorf("wal segment %s offset %d: records end there, but %s says that segment ended at offset %d: corrupt", prev.path, prevEnd, seg.path, h.prevEnd)
	}
	seed := saltSeed(h.salt)
	off := n
	for off < len(data) {
		typ, payload, n, derr := decodeRecord(data[off:], seed)
		if derr == nil {
			if typ == recHeader {
				return 0, 0, 0, corrupt(off, "a second segment header")
			}
			top, aerr := s.apply(typ, payload)
			if aerr != nil {
				return 0, 0, 0, corrupt(off, "%v", aerr)
			}
			seg.maxIndex = max(seg.maxIndex, top)
			off += n
			continue
		}
		if !last {
			if derr == errZero {
				break // the rest is preallocated space
			}
			return 0, 0, 0, corrupt(off, "%v (not the last segment)", derr)
		}
		// The last segment: a torn tail unless something valid follows.
		// A record holds non-zero bytes, so only the span up to the last
		// one needs searching (none after a clean stop).
		dirty := nonZeroEnd(data, off)
		if p := findRecord(data, off+1, dirty, seed); p >= 0 {
			return 0, 0, 0, corrupt(off, "invalid record (%v) followed by a valid record at offset %d", derr, p)
		}
		return int64(off), int64(dirty), h.salt, nil
	}
	return int64(off), int64(off), h.salt, nil
}

// findRecord returns the offset of the first record starting in
// [from, end) that is valid on its own, or -1. A record starts with a
// non-zero length, so none starts at or after end when data[end:] is all
// zero; it may run on into those zeros.
func findRecord(data []byte, from, end int, seed uint32) int {
	for p := from; p < end; p++ {
		if _, _, _, err := decodeRecord(data[p:], seed); err == nil {
			return p
		}
	}
	return -1
}

// nonZeroEnd is one past the last non-zero byte of data at or after from,
// or from if there is none: the end of what a torn write may have left.
func nonZeroEnd(data []byte, from int) int {
	end := len(data)
	for end-8 >= from && binary.LittleEndian.Uint64(data[end-8:end]) == 0 {
		end -= 8
	}
	for end > from && data[end-1] == 0 {
		end--
	}
	return end
}

// readSegment reads a whole segment file.
func readSegment(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read wal segment: %w", err)
	}
	return b, nil
}
