package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/token"
)

// restartSolo stops s and starts a one-member cluster on its data
// directory again.
func restartSolo(t *testing.T, s *Server) *Server {
	t.Helper()
	dir := s.cfg.DataDir
	s.Stop()
	s2, err := Start(context.Background(), testConfig(dir), quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s2.Stop)
	conn := dialAdmin(t, s2)
	waitServing(t, conn)
	return s2
}

// waitGone waits for path to be removed.
func waitGone(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there: %v", path, err)
		}
		time.Sleep(20 * time.Millisecond) // polling the file system: there is no event to wait on
	}
}

// mustAdminister checks that bearer is the cluster's administrator: it may
// list tokens.
func mustAdminister(t *testing.T, s *Server, bearer string) {
	t.Helper()
	conn := dialAs(t, s, bearer)
	if _, err := tokenstorev1.NewTokenServiceClient(conn).ListTokens(context.Background(), &tokenstorev1.ListTokensRequest{}); err != nil {
		t.Fatalf("list tokens with the bootstrap admin token: %v", err)
	}
}

func pendingPath(dir string) string { return filepath.Join(dir, adminTokenPendingFile) }

func mustNotExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v, want it gone", path, err)
	}
}

// A member that crashed after its bootstrap token was applied but before
// admin.token was written finds the token's secret in its pending file on
// restart and publishes it: the only copy of the secret is not lost.
func TestBootstrapAdminTokenOutlivesACrashBeforeItsFile(t *testing.T) {
	dir := t.TempDir()
	s, _ := startSolo(t, dir)
	want := adminToken(t, dir)
	s.Stop()
	// The data directory as a crash between apply and publishing leaves it.
	if err := os.Rename(filepath.Join(dir, AdminTokenFile), pendingPath(dir)); err != nil {
		t.Fatal(err)
	}
	s = restartSolo(t, s)
	if got := adminToken(t, dir); got != want {
		t.Fatalf("admin.token after restart holds another token than the one created")
	}
	mustNotExist(t, pendingPath(dir))
	mustAdminister(t, s, want)
}

// A pending file found before the token exists (a crash before the
// proposal was committed) is proposed with its own secret, not a new one.
func TestBootstrapAdminTokenProposesThePendingSecret(t *testing.T) {
	dir := t.TempDir()
	secret, err := token.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	want := token.Bearer(BootstrapAdminTokenID, secret)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeSecretFile(pendingPath(dir), want+"\n"); err != nil {
		t.Fatal(err)
	}
	s, _ := startSolo(t, dir)
	if got := adminToken(t, dir); got != want {
		t.Fatal("the bootstrap admin token was created with a new secret, not the pending one")
	}
	mustNotExist(t, pendingPath(dir))
	mustAdminister(t, s, want)
}

// A pending file whose secret lost to another member's proposal opens
// nothing and is removed; admin.token is never overwritten.
func TestBootstrapAdminTokenDiscardsALosingPendingFile(t *testing.T) {
	dir := t.TempDir()
	s, _ := startSolo(t, dir)
	want := adminToken(t, dir)
	s.Stop()
	other, err := token.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := writeSecretFile(pendingPath(dir), token.Bearer(BootstrapAdminTokenID, other)+"\n"); err != nil {
		t.Fatal(err)
	}
	s = restartSolo(t, s)
	waitGone(t, pendingPath(dir))
	if got := adminToken(t, dir); got != want {
		t.Fatal("admin.token was overwritten")
	}
	mustAdminister(t, s, want)
}

// A pending file cut short by a crash (nothing was proposed with it) is
// replaced by a whole one and the token created.
func TestBootstrapAdminTokenReplacesATornPendingFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeSecretFile(pendingPath(dir), BootstrapAdminTokenID+":abc"); err != nil {
		t.Fatal(err)
	}
	s, _ := startSolo(t, dir)
	got := adminToken(t, dir)
	if !strings.HasPrefix(got, BootstrapAdminTokenID+":") || strings.HasSuffix(got, ":abc") {
		t.Fatalf("admin.token holds %d bytes of an unexpected form", len(got))
	}
	mustNotExist(t, pendingPath(dir))
	mustAdminister(t, s, got)
}
