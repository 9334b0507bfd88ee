package ctl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// newSnapshotCommand groups snapshot commands.
func (a *app) newSnapshotCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Save the replicated state to a file", Args: cobra.ArbitraryArgs, RunE: a.missingCommand}
	cmd.AddCommand(&cobra.Command{
		Use:   "save FILE",
		Short: "Stream a consistent copy of the state from a member into FILE",
		Long: `snapshot save writes FILE (via a temporary file, renamed once the
checksum matched) and prints its revision and SHA-256. Restore it with
"tokenstore restore --snapshot FILE ...".`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			var rev uint64
			var sum string
			var size int64
			o, err := a.clusterCall(cmd, readRPC, "save snapshot", func(ctx context.Context, c tokenstorev1.ClusterServiceClient) error {
				var err error
				rev, sum, size, err = saveSnapshot(ctx, c, path)
				return err
			})
			if err != nil {
				return err
			}
			v := map[string]any{"file": path, "revision": rev, "sha256": sum, "size": size}
			return a.print(o, "save snapshot", v, func() string {
				return fmt.Sprintf("saved %s: revision %d, %d bytes, sha256 %s\n", path, rev, size, sum)
			})
		},
	})
	return cmd
}

func saveSnapshot(ctx context.Context, c tokenstorev1.ClusterServiceClient, path string) (uint64, string, int64, error) {
	stream, err := c.Snapshot(ctx, &tokenstorev1.SnapshotRequest{})
	if err != nil {
		return 0, "", 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return 0, "", 0, fmt.Errorf("create %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	var rev uint64
	var size int64
	var want []byte
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, "", 0, err
		}
		if m.GetRevision() != 0 {
			rev = m.GetRevision()
		}
		if len(m.GetChunk()) > 0 {
			if _, err := tmp.Write(m.GetChunk()); err != nil {
				return 0, "", 0, fmt.Errorf("write %s: %w", path, err)
			}
			h.Write(m.GetChunk())
			size += int64(len(m.GetChunk()))
		}
		if len(m.GetSha256()) > 0 {
			want = m.GetSha256()
		}
	}
	got := h.Sum(nil)
	if want == nil || !bytes.Equal(got, want) {
		return 0, "", 0, errors.New("snapshot stream ended without a matching checksum; file not written")
	}
	if err := tmp.Sync(); err != nil {
		return 0, "", 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, "", 0, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, "", 0, fmt.Errorf("write %s: %w", path, err)
	}
	return rev, hex.EncodeToString(got), size, nil
}
