package raftstore

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/internal/durable"
)

// identityFile binds a data directory to one member of one cluster. It is
// written once, before any raft state, and checked at every start so a data
// directory is never silently used by another member or another cluster.
const identityFile = "member.json"

// MemberID derives a member's raft id from the cluster token and its name.
// Static bootstrap needs every member to compute the same ids from the same
// --initial-cluster; the token keeps two clusters with the same member
// names apart.
func MemberID(clusterToken, name string) uint64 {
	return hashID("member\x00" + clusterToken + "\x00" + name)
}

// ClusterID derives the cluster id from the token and the initial member
// names, so members started with a different --initial-cluster refuse each
// other. Addresses are left out: they change (pods restart elsewhere, test
// proxies sit in between) while the cluster stays the same.
func ClusterID(clusterToken string, members []*raftstorev1.Member) uint64 {
	parts := make([]string, 0, len(members))
	for _, m := range members {
		parts = append(parts, m.GetName())
	}
	sort.Strings(parts)
	return hashID("cluster\x00" + clusterToken + "\x00" + strings.Join(parts, ","))
}

func hashID(s string) uint64 {
	sum := sha256.Sum256([]byte(s))
	id := binary.BigEndian.Uint64(sum[:8])
	if id == 0 { // raft reserves 0 for "none"
		id = 1
	}
	return id
}

// checkIdentity makes sure dir belongs to want, writing the identity file
// into a new directory. It returns whether the directory was new.
func checkIdentity(dir string, want *raftstorev1.MemberIdentity) (bool, error) {
	path := filepath.Join(dir, identityFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		out, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(want)
		if err != nil {
			return false, err
		}
		if err := writeFileSync(path, out); err != nil {
			return false, fmt.Errorf("write %s: %w", path, err)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	got := &raftstorev1.MemberIdentity{}
	if err := protojson.Unmarshal(b, got); err != nil {
		return false, fmt.Errorf("data directory %s: corrupt %s: %w", dir, identityFile, err)
	}
	if got.GetName() != want.GetName() || got.GetId() != want.GetId() {
		return false, fmt.Errorf("data directory %s belongs to member %q (id %016x), not %q (id %016x)",
			dir, got.GetName(), got.GetId(), want.GetName(), want.GetId())
	}
	if want.GetClusterId() != 0 && got.GetClusterId() != want.GetClusterId() {
		return false, fmt.Errorf("data directory %s belongs to cluster %016x, but the flags describe cluster %016x (different --initial-cluster or --initial-cluster-token)",
			dir, got.GetClusterId(), want.GetClusterId())
	}
	return false, nil
}

// writeFileSync writes a small file atomically and durably: temp file, fsync,
// rename, fsync of the directory.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Dir(path))
}

// ReadIdentity returns the identity stored in data directory dir, or nil
// when the directory has none yet.
func ReadIdentity(dir string) (*raftstorev1.MemberIdentity, error) {
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", identityFile, err)
	}
	id := &raftstorev1.MemberIdentity{}
	if err := protojson.Unmarshal(b, id); err != nil {
		return nil, fmt.Errorf("data directory %s: corrupt %s: %w", dir, identityFile, err)
	}
	return id, nil
}
