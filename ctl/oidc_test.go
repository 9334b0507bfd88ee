package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A mistake in an issuer file is reported naming the file, before any
// member is contacted (the endpoint here accepts no connection: reaching
// it would be exit 3, "unreachable").
func TestOIDCPutRefusesBadFilesLocally(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct{ doc, words string }{
		"cel.yaml":  {"issuer: {url: https://a.example, audiences: [k]}\nclaimMappings: {username: {expression: claims.sub}}\n", "CEL expressions are not supported"},
		"typo.yaml": {"issuer: {url: https://a.example, audiences: [k]}\nclaimMapings: {}\n", "claimMapings"},
		"http.yaml": {"issuer: {url: http://a.example, audiences: [k]}\nclaimMappings: {username: {claim: sub, prefix: \"\"}}\n", "https"},
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, "127.0.0.1:1", "oidc", "put", "-f", path)
		if r.code != ExitFailed || !strings.Contains(r.stderr, name) || !strings.Contains(r.stderr, tc.words) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d naming the file and %q", name, r.code, r.stderr, ExitFailed, tc.words)
		}
	}
	if r := runCLI(t, "127.0.0.1:1", "oidc", "put"); r.code != ExitUsage || !strings.Contains(r.stderr, "-f FILE") {
		t.Errorf("put without -f: exit %d, %q", r.code, r.stderr)
	}
	if r := runCLI(t, "127.0.0.1:1", "oidc", "get"); r.code != ExitUsage || !strings.Contains(r.stderr, "missing argument URL") {
		t.Errorf("get without URL: exit %d, %q", r.code, r.stderr)
	}
}
