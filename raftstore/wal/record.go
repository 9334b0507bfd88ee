package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Record types (package doc).
const (
	recHeader    byte = 1
	recSnapshot  byte = 2
	recHardState byte = 3
	recSave      byte = 4
	recTruncate  byte = 5
)

// frameSize is a record's fixed part: length, crc, type.
const frameSize = 9

// maxPayload bounds a record's length field, so a corrupt length is
// recognised as such instead of being read as a huge record.
const maxPayload = 1 << 30

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	// errZero is a frame of zero bytes: preallocated space, the end.
	errZero = errors.New("zero frame")
	// errShort is a frame or payload cut off by the end of the file.
	errShort = errors.New("record cut short")
	errCRC   = errors.New("checksum mismatch")
)

// saltSeed is the CRC seed of a segment with this salt.
func saltSeed(salt uint64) uint32 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], salt)
	return crc32.Update(0, castagnoli, b[:])
}

func recordCRC(seed uint32, frame []byte, payload []byte) uint32 {
	crc := crc32.Update(seed, castagnoli, frame[0:4])
	crc = crc32.Update(crc, castagnoli, frame[8:9])
	return crc32.Update(crc, castagnoli, payload)
}

// appendRecord appends one framed record to buf.
func appendRecord(buf []byte, seed uint32, typ byte, payload []byte) []byte {
	var frame [frameSize]byte
	binary.LittleEndian.PutUint32(frame[0:4], uint32(len(payload)))
	frame[8] = typ
	binary.LittleEndian.PutUint32(frame[4:8], recordCRC(seed, frame[:], payload))
	buf = append(buf, frame[:]...)
	return append(buf, payload...)
}

// decodeRecord reads the record at the start of b. n is its framed size.
// The error is errZero, errShort, errCRC or another description of why the
// bytes are not a record.
func decodeRecord(b []byte, seed uint32) (typ byte, payload []byte, n int, err error) {
	if len(b) < frameSize {
		if allZero(b) {
			return 0, nil, 0, errZero
		}
		return 0, nil, 0, errShort
	}
	length := binary.LittleEndian.Uint32(b[0:4])
	typ = b[8]
	if length == 0 {
		if allZero(b[:frameSize]) {
			return 0, nil, 0, errZero
		}
		return 0, nil, 0, fmt.Errorf("empty record of type %d", typ)
	}
	if typ < recHeader || typ > recTruncate {
		return 0, nil, 0, fmt.Errorf("unknown record type %d", typ)
	}
	if length > maxPayload {
		return 0, nil, 0, fmt.Errorf("record length %d too large", length)
	}
	if uint64(len(b)-frameSize) < uint64(length) {
		return 0, nil, 0, errShort
	}
	payload = b[frameSize : frameSize+int(length)]
	if recordCRC(seed, b, payload) != binary.LittleEndian.Uint32(b[4:8]) {
		return 0, nil, 0, errCRC
	}
	return typ, payload, frameSize + int(length), nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// header is the payload of a segment's first record.
type header struct {
	version uint32
	seq     uint64
	salt    uint64
	// prevEnd is where the previous segment's records ended; Open checks
	// it, so a segment cut short by corruption is not taken for a clean end.
	prevEnd uint64
}

const headerSize = 4 + 8 + 8 + 8

func (h header) marshal() []byte {
	b := make([]byte, headerSize)
	binary.LittleEndian.PutUint32(b[0:4], h.version)
	binary.LittleEndian.PutUint64(b[4:12], h.seq)
	binary.LittleEndian.PutUint64(b[12:20], h.salt)
	binary.LittleEndian.PutUint64(b[20:28], h.prevEnd)
	return b
}

func unmarshalHeader(b []byte) (header, error) {
	if len(b) != headerSize {
		return header{}, fmt.Errorf("segment header of %d bytes, want %d", len(b), headerSize)
	}
	return header{
		version: binary.LittleEndian.Uint32(b[0:4]),
		seq:     binary.LittleEndian.Uint64(b[4:12]),
		salt:    binary.LittleEndian.Uint64(b[12:20]),
		prevEnd: binary.LittleEndian.Uint64(b[20:28]),
	}, nil
}
