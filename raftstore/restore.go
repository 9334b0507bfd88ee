package raftstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
)

// RestoreResult describes the data directory Restore made.
type RestoreResult struct {
	MemberID, ClusterID uint64
	Revision            uint64
	SHA256              string
}

// Restore creates the data directory of the first member of a new cluster
// from a snapshot file (tokenctl snapshot save). The new cluster gets new
// random ids; its only member is name at peerAddr, and the others join it.
// dir must not hold raft state already.
func Restore(snapshotPath, dir, name, peerAddr string) (RestoreResult, error) {
	if HasRaftLog(dir) || hasFile(filepath.Join(dir, walTmpDir)) || hasFile(filepath.Join(dir, "state.db")) || hasFile(filepath.Join(dir, identityFile)) {
		return RestoreResult{}, fmt.Errorf("restore into %s: the directory already holds member data; restore into an empty directory", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return RestoreResult{}, fmt.Errorf("create data directory: %w", err)
	}
	statePath := filepath.Join(dir, "state.db")
	sum, err := copyFileSync(snapshotPath, statePath)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	res := RestoreResult{MemberID: NewMemberID(), ClusterID: NewMemberID(), SHA256: sum}
	cs := &raftpb.ConfState{Voters: []uint64{res.MemberID}}
	var term uint64
	db, err := bolt.Open(statePath, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		os.Remove(statePath)
		return RestoreResult{}, fmt.Errorf("restore: %s is not a tokenstore snapshot: %w", snapshotPath, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(stateMetaBucket) == nil {
			return errors.New("not a tokenstore state database (no raftstore bucket)")
		}
		as, _, err := readApplied(tx)
		if err != nil {
			return err
		}
		res.Revision, term = as.GetIndex(), as.GetTerm()
		if err := tx.DeleteBucket(stateMembersBucket); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		if _, err := tx.CreateBucket(stateMembersBucket); err != nil {
			return err
		}
		if err := putMember(tx, &raftstorev1.Member{Name: name, Id: res.MemberID, PeerAddress: peerAddr}); err != nil {
			return err
		}
		return writeApplied(tx, res.Revision, term, cs)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(statePath)
		return RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(res.Revision), Term: proto.Uint64(term), ConfState: cs}}
	if err := createLog(dir, snap, &raftpb.HardState{Term: proto.Uint64(term), Commit: proto.Uint64(res.Revision)}, nil); err != nil {
		return RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	if err := ensureLogGuard(dir); err != nil {
		return RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	if _, err := checkIdentity(dir, &raftstorev1.MemberIdentity{Name: name, Id: res.MemberID, ClusterId: res.ClusterID}); err != nil {
		return RestoreResult{}, err
	}
	return res, nil
}

func hasFile(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func copyFileSync(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), out.Close()
}
