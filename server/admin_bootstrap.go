package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/internal/durable"
	"github.com/tokenstore/tokenstore/server/state"
	"github.com/tokenstore/tokenstore/server/token"
)

// The bootstrap administrator credential: a token that exists once per
// cluster, so the first administrator can get in without a client
// certificate.
//
// How exactly one comes to exist: every member, while it is leader and the
// token with the well-known id BootstrapAdminTokenID is absent from its
// applied state, proposes its creation. Apply refuses a second create of an
// id that exists (state.ErrExists), revoked or not, so the first committed
// proposal wins and every later one fails. Revoking the token revokes it
// for good: it is never created again.
//
// Where its secret goes: only the member whose proposal was applied knows
// the secret (the log holds only its hash), so that member must not lose it
// to a crash between apply and writing it out. It therefore writes the
// token to <data-dir>/admin.token.pending (mode 0600, fsynced) before
// proposing, and reuses a pending file it finds rather than drawing a new
// secret. Once the token exists in the applied state, a member holding a
// pending file compares the secret with the stored hash: a match is this
// member's own proposal, and the file is published as
// <data-dir>/admin.token (a hard link, so an existing file is never
// overwritten); a mismatch lost to another member's proposal, and the file
// is removed. A crash at any point leaves either the pending file (the
// next start finishes the job) or admin.token.

// BootstrapAdminTokenID is the id of the bootstrap administrator token. It
// cannot collide with a generated id (those have no '-' after the prefix).
const BootstrapAdminTokenID = "token-bootstrap-admin"

// AdminTokenFile is the name, in the data directory, of the file holding the
// bootstrap administrator token on the member that created it.
const AdminTokenFile = "admin.token"

// adminTokenPendingFile holds the token while its creation is proposed.
const adminTokenPendingFile = AdminTokenFile + ".pending"

// bootstrapAdminLoop runs until the bootstrap token exists or ctx ends.
func (s *Server) bootstrapAdminLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		if done := s.tryBootstrapAdmin(ctx); done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tryBootstrapAdmin proposes the bootstrap token when this member leads and
// the token does not exist, and publishes or discards a pending file once
// it does. It reports whether nothing is left to do.
func (s *Server) tryBootstrapAdmin(ctx context.Context) bool {
	rec, err := s.bootstrapAdminRecord()
	if err != nil {
		return false
	}
	if rec != nil {
		return s.settlePendingAdminToken(rec)
	}
	if s.node.Leader() != s.node.ID() {
		return false
	}
	secret, err := s.pendingAdminSecret()
	if err != nil {
		s.log.Error("bootstrap admin token not created; use an admin client certificate", "err", err)
		return true
	}
	salt, err := token.NewSalt()
	if err != nil {
		s.log.Error("bootstrap admin token", "err", err)
		return false
	}
	hash := token.Hash(salt, secret)
	rec = &raftstorev1.TokenRecord{
		Format: 1, Id: BootstrapAdminTokenID, Salt: salt, SecretHash: hash[:],
		User:            &raftstorev1.User{Username: "tokenstore-bootstrap-admin", Groups: []string{s.cfg.AdminGroup}},
		CreatedUnixNano: time.Now().UnixNano(),
		Description:     "bootstrap administrator credential (" + AdminTokenFile + " in the data directory of the member that created it)",
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _, err := s.propose(pctx, "create bootstrap admin token", &raftstorev1.Command{Op: &raftstorev1.Command_CreateToken{CreateToken: &raftstorev1.CreateToken{Record: rec}}})
	if err != nil && !errors.Is(out.Err, state.ErrExists) {
		// Kept pending: if this proposal was applied after all, the next
		// attempt finds the token and publishes the file.
		s.log.Warn("bootstrap admin token not created yet; retrying", "err", err)
		return false
	}
	if rec, err = s.bootstrapAdminRecord(); err != nil || rec == nil {
		return false
	}
	return s.settlePendingAdminToken(rec)
}

// bootstrapAdminRecord is the bootstrap token's record in the applied
// state, nil when it does not exist.
func (s *Server) bootstrapAdminRecord() (*raftstorev1.TokenRecord, error) {
	var rec *raftstorev1.TokenRecord
	err := s.node.View(func(tx *bolt.Tx, _ uint64) error {
		var err error
		rec, err = state.Get(tx, BootstrapAdminTokenID)
		return err
	})
	return rec, err
}

// pendingAdminSecret returns the secret of the pending file, writing one
// with a fresh secret when there is none.
func (s *Server) pendingAdminSecret() (string, error) {
	path := filepath.Join(s.cfg.DataDir, adminTokenPendingFile)
	secret, err := readAdminTokenFile(path)
	switch {
	case err == nil:
		return secret, nil
	case errors.Is(err, errMalformedAdminToken):
		// A write cut short by a crash: nothing was proposed with it (that
		// happens only after the whole file is synced).
		s.log.Warn("bootstrap admin token: replacing a malformed pending file", "err", err)
		if err := os.Remove(path); err != nil {
			return "", fmt.Errorf("remove malformed pending file: %w", err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return "", err
	}
	if secret, err = token.NewSecret(); err != nil {
		return "", err
	}
	if err := writeSecretFile(path, token.Bearer(BootstrapAdminTokenID, secret)+"\n"); err != nil {
		return "", err
	}
	if err := durable.SyncDir(s.cfg.DataDir); err != nil {
		return "", err
	}
	return secret, nil
}

// settlePendingAdminToken publishes the pending file as AdminTokenFile when
// its secret is the one rec was created with, and removes it otherwise. It
// reports whether nothing is left to do.
func (s *Server) settlePendingAdminToken(rec *raftstorev1.TokenRecord) bool {
	pending := filepath.Join(s.cfg.DataDir, adminTokenPendingFile)
	final := filepath.Join(s.cfg.DataDir, AdminTokenFile)
	secret, err := readAdminTokenFile(pending)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return true
	case errors.Is(err, errMalformedAdminToken):
		// Cut short by a crash before it was proposed: it opens nothing.
		if err := os.Remove(pending); err != nil {
			s.log.Warn("bootstrap admin token: cannot remove a malformed pending file", "file", pending, "err", err)
		}
		return true
	case err != nil:
		s.log.Error("bootstrap admin token: unreadable pending file; remove it, or use an admin client certificate", "err", err)
		return true
	}
	if !token.Matches(rec.GetSalt(), secret, rec.GetSecretHash()) {
		// Another member's proposal won; this secret opens nothing.
		if err := os.Remove(pending); err != nil {
			s.log.Warn("bootstrap admin token: cannot remove a losing pending file", "file", pending, "err", err)
		}
		return true
	}
	if err := os.Link(pending, final); err != nil && !errors.Is(err, os.ErrExist) {
		s.log.Error("bootstrap admin token created but its file could not be written; it stays in "+adminTokenPendingFile, "err", err)
		return true
	}
	if err := os.Remove(pending); err != nil {
		s.log.Warn("bootstrap admin token: cannot remove the pending file", "file", pending, "err", err)
	}
	if err := durable.SyncDir(s.cfg.DataDir); err != nil {
		s.log.Warn("bootstrap admin token: cannot sync the data directory", "err", err)
	}
	s.log.Info("bootstrap admin token created", "file", final, "token_id", BootstrapAdminTokenID)
	return true
}

// errMalformedAdminToken is returned for an admin token file that does not
// hold a bootstrap admin token.
var errMalformedAdminToken = errors.New("not a bootstrap admin token")

// readAdminTokenFile returns the secret of an admin token file; an error
// wraps os.ErrNotExist when there is no file and errMalformedAdminToken
// when it holds something else.
func readAdminTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	id, secret, ok := token.Parse(strings.TrimSpace(string(b)))
	if !ok || id != BootstrapAdminTokenID {
		return "", fmt.Errorf("%s: %w", path, errMalformedAdminToken)
	}
	return secret, nil
}

// writeSecretFile creates path readable by its owner only; it never
// overwrites a file.
func writeSecretFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
