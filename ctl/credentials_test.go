package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCredentialFlagsAreChecked: contradictory or unreadable credentials
// are usage errors (exit 2) that name the flag, before anything is dialed.
func TestCredentialFlagsAreChecked(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.token")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	tls := map[string]string{envEndpoints: "127.0.0.1:1", envInsecure: "false"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"token and token file", tls, []string{"--token", "a:b", "--token-file", empty, "status"}, "--token and --token-file"},
		{"empty token file", tls, []string{"--token-file", empty, "status"}, "is empty"},
		{"missing token file", tls, []string{"--token-file", filepath.Join(dir, "nope"), "status"}, "--token-file"},
		{"CA file without a certificate", tls, []string{"--cacert", notPEM, "status"}, "no PEM certificate"},
		{"certificate without key", tls, []string{"--cert", notPEM, "status"}, "--cert and --key"},
		{"insecure with a CA", map[string]string{envEndpoints: "127.0.0.1:1"}, []string{"--cacert", notPEM, "status"}, "--insecure"},
		{"CA from the environment", map[string]string{envEndpoints: "127.0.0.1:1", envInsecure: "false", envCACert: notPEM}, []string{"status"}, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cliRun{env: tc.env, args: tc.args}.exec(t)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 naming %q", r.code, r.stderr, tc.want)
			}
		})
	}
}
