package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	raftstorev1 "github.com/tokenstore/tokenstore/api/raftstore/v1"
	"github.com/tokenstore/tokenstore/server/state"
	"github.com/tokenstore/tokenstore/server/token"
)

// The bootstrap administrator credential: a token that exists once per
// cluster, so the first administrator can get in without a client
// certificate.
//
// How exactly one comes to exist: every member, while it is leader and the
// token with the well-known id BootstrapAdminTokenID is absent from its
// applied state, proposes its creation with a fresh secret. Apply refuses a
// second create of an id that exists (state.ErrExists), revoked or not, so
// the first committed proposal wins and every later one fails. Only the
// member whose own proposal was applied knows the secret; it writes it to
// <data-dir>/admin.token (mode 0600, created exclusively) and nowhere else.
// Revoking the token revokes it for good: it is never created again.
//
// If that member crashes between apply and the write, the secret is lost
// (only its hash is stored); an operator then uses an admin client
// certificate (--admin-subjects).

// BootstrapAdminTokenID is the id of the bootstrap administrator token. It
// cannot collide with a generated id (those have no '-' after the prefix).
const BootstrapAdminTokenID = "token-bootstrap-admin"

// AdminTokenFile is the name, in the data directory, of the file holding the
// bootstrap administrator token on the member that created it.
const AdminTokenFile = "admin.token"

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
// the token does not exist. It reports whether nothing is left to do.
func (s *Server) tryBootstrapAdmin(ctx context.Context) bool {
	var exists bool
	if err := s.node.View(func(tx *bolt.Tx, _ uint64) error {
		rec, err := state.Get(tx, BootstrapAdminTokenID)
		exists = rec != nil
		return err
	}); err != nil {
		return false
	}
	if exists {
		return true
	}
	if s.node.Leader() != s.node.ID() {
		return false
	}
	secret, err := token.NewSecret()
	if err != nil {
		s.log.Error("bootstrap admin token", "err", err)
		return false
	}
	salt, err := token.NewSalt()
	if err != nil {
		s.log.Error("bootstrap admin token", "err", err)
		return false
	}
	hash := token.Hash(salt, secret)
	rec := &raftstorev1.TokenRecord{
		Format: 1, Id: BootstrapAdminTokenID, Salt: salt, SecretHash: hash[:],
		User:            &raftstorev1.User{Username: "tokenstore-bootstrap-admin", Groups: []string{s.cfg.AdminGroup}},
		CreatedUnixNano: time.Now().UnixNano(),
		Description:     "bootstrap administrator credential (" + AdminTokenFile + " in the data directory of the member that created it)",
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _, err := s.propose(pctx, "create bootstrap admin token", &raftstorev1.Command{Op: &raftstorev1.Command_CreateToken{CreateToken: &raftstorev1.CreateToken{Record: rec}}})
	if errors.Is(out.Err, state.ErrExists) {
		return true
	}
	if err != nil {
		s.log.Warn("bootstrap admin token not created yet; retrying", "err", err)
		return false
	}
	path := filepath.Join(s.cfg.DataDir, AdminTokenFile)
	if err := writeSecretFile(path, token.Bearer(BootstrapAdminTokenID, secret)+"\n"); err != nil {
		s.log.Error("bootstrap admin token created but its file could not be written; use an admin client certificate", "err", err)
		return true
	}
	s.log.Info("bootstrap admin token created", "file", path, "token_id", BootstrapAdminTokenID)
	return true
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
