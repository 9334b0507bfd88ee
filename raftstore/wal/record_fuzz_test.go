package wal

import (
	"bytes"
	"testing"
)

// FuzzDecodeRecord: the decoder never panics on arbitrary bytes, and what
// it accepts re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	seed := saltSeed(42)
	f.Add(appendRecord(nil, seed, recSave, []byte{0, 3, 1, 2, 3}))
	f.Add(appendRecord(nil, seed, recTruncate, marshalIndex(7)))
	f.Add(make([]byte, frameSize))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, payload, n, err := decodeRecord(b, seed)
		if err != nil {
			return
		}
		if got := appendRecord(nil, seed, typ, payload); !bytes.Equal(got, b[:n]) {
			t.Fatalf("re-encoded %x, decoded from %x", got, b[:n])
		}
		if typ == recSave {
			_, _, _ = unmarshalSave(payload)
		}
	})
}
