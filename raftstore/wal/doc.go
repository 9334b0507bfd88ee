// Package wal is raft's durable log for one member: entries, hard state
// and the metadata of the latest snapshot, in append-only segment files.
// It replaced raft.db (bbolt), whose commit per Ready cost two fdatasyncs
// (data pages, then the meta page) and a pwrite per dirty page; a Save here
// is one write and one fdatasync, as etcd's WAL.
//
// # Files
//
//	<dir>/<seq>-<first index>.wal   segments, both fields 16 hex digits
//
// seq counts up from 0; first index is the index the segment's first entry
// would have when it was created (informational). A segment is created
// under a ".tmp" name, preallocated (SegmentSize, fallocate where the file
// system has it), written with its opening records, fsynced, renamed and
// the directory fsynced; leftover ".tmp" files are removed on Open. The
// directory is flock'ed while open: one process per data directory.
//
// # Records
//
//	length  uint32 little endian, of payload
//	crc     uint32 little endian, CRC-32C (Castagnoli) of the segment's
//	        salt, length, type and payload
//	type    byte
//	payload length bytes
//
// Types: 1 header (format version uint32, seq uint64, salt uint64, the
// previous segment's end offset uint64; its CRC is unsalted), 2 snapshot
// metadata (raftpb.Snapshot without data), 3 hard state (raftpb.HardState),
// 4 save (uvarint-length-prefixed raftpb.HardState, empty if none, then
// uvarint-length-prefixed raftpb.Entry values), 5 truncate (uint64 index:
// entries after it are dropped). Every segment opens with a header, then
// the latest snapshot metadata and hard state, so older segments can be
// deleted without losing them. Zero bytes (preallocated space) where a
// header would be end the segment. The random per-segment salt keeps bytes
// that look like a record inside an entry's data (a token's metadata, say)
// from ever checking as one.
//
// The header's format version is the raft log's: 1 was raft.db (read once
// by raftstore to migrate), 2 is this. A binary refuses a newer version.
//
// # Crash guarantees
//
// Save, SaveSnapshot and TruncateAfter each write exactly one record and
// return after one fdatasync: what they wrote survives a crash. Because a
// call writes one record, a crash leaves at most one unacknowledged,
// possibly torn record, at the tail of the last segment. Open replays all
// segments in order; in the last segment an invalid record (CRC mismatch,
// short, zero length) followed by nothing valid is that torn tail: the log
// ends before it and the tail is zeroed before the next append. An invalid
// record anywhere else, a valid record after an invalid one, or a segment
// that ends before where the next one's header says it ended is
// corruption: Open fails naming the file and offset. Acknowledged data is
// never dropped silently.
//
// Replay follows raft's rules: a save whose first entry is at or below the
// last loaded one replaces that suffix (a follower's log overwritten by a
// new leader); entries at or below the latest snapshot are not returned.
//
// SaveSnapshot records the snapshot metadata durably, then deletes whole
// non-active segments from the oldest while all their entries are at or
// below compactTo, and fsyncs the directory.
//
// # Concurrency
//
// A WAL is used only from the raft loop; no method is safe for concurrent
// use.
package wal
