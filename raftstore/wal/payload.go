package wal

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// marshalSave encodes a save record's payload: the hard state (empty if
// none), then each entry, each uvarint-length-prefixed.
func marshalSave(hs *raftpb.HardState, ents []*raftpb.Entry) ([]byte, error) {
	var b []byte
	var hsb []byte
	if hs != nil && !isEmptyHardState(hs) {
		var err error
		if hsb, err = proto.Marshal(hs); err != nil {
			return nil, fmt.Errorf("encode hard state: %w", err)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(hsb)))
	b = append(b, hsb...)
	for _, e := range ents {
		eb, err := proto.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("encode entry %d: %w", e.GetIndex(), err)
		}
		b = binary.AppendUvarint(b, uint64(len(eb)))
		b = append(b, eb...)
	}
	return b, nil
}

func unmarshalSave(b []byte) (*raftpb.HardState, []*raftpb.Entry, error) {
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errors.New("bad length prefix")
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, nil
	}
	hsb, err := next()
	if err != nil {
		return nil, nil, fmt.Errorf("save record: hard state: %w", err)
	}
	var hs *raftpb.HardState
	if len(hsb) > 0 {
		hs = &raftpb.HardState{}
		if err := proto.Unmarshal(hsb, hs); err != nil {
			return nil, nil, fmt.Errorf("save record: hard state: %w", err)
		}
	}
	var ents []*raftpb.Entry
	for len(b) > 0 {
		eb, err := next()
		if err != nil {
			return nil, nil, fmt.Errorf("save record: entry %d: %w", len(ents), err)
		}
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(eb, e); err != nil {
			return nil, nil, fmt.Errorf("save record: entry %d: %w", len(ents), err)
		}
		if len(ents) > 0 && e.GetIndex() != ents[len(ents)-1].GetIndex()+1 {
			return nil, nil, fmt.Errorf("save record: entry %d follows %d", e.GetIndex(), ents[len(ents)-1].GetIndex())
		}
		ents = append(ents, e)
	}
	return hs, ents, nil
}

func marshalIndex(i uint64) []byte {
	return binary.LittleEndian.AppendUint64(nil, i)
}

func unmarshalIndex(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("truncate record of %d bytes, want 8", len(b))
	}
	return binary.LittleEndian.Uint64(b), nil
}

func isEmptyHardState(hs *raftpb.HardState) bool {
	return hs.GetTerm() == 0 && hs.GetVote() == 0 && hs.GetCommit() == 0
}
