// Package layout versions the bbolt layouts tokenstore writes, so a newer
// binary reads an older data directory and an older binary refuses a newer
// one instead of misreading it.
package layout

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// versionKey holds the layout version in each owner's meta bucket.
var versionKey = []byte("version")

// CheckVersion stamps meta (in a write transaction) with version want when
// it has none, and refuses a layout written by a newer binary. what names
// the layout in errors ("raft log", "RBAC", ...).
func CheckVersion(meta *bolt.Bucket, want uint32, what string) error {
	v := meta.Get(versionKey)
	if v == nil {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], want)
		return meta.Put(versionKey, b[:])
	}
	if len(v) != 4 {
		return fmt.Errorf("%s: corrupt format version %x", what, v)
	}
	if got := binary.BigEndian.Uint32(v); got > want {
		return fmt.Errorf("%s: format version %d is newer than this binary supports (%d); upgrade tokenstore", what, got, want)
	}
	return nil
}
