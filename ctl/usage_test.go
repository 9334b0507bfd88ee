package ctl

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestUsageErrors checks that command-line mistakes exit 2 with one
// "error: " line and a --help hint, before any endpoint is contacted: the
// endpoint is a closed port, so a request that slipped through would exit
// 3 instead.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	closed := closedAddr(t)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // substring of the error line
		hint string // command path in the --help hint
	}{
		{name: "no command", args: nil, want: `missing command for "tokenctl"`, hint: "tokenctl"},
		{name: "unknown command", args: []string{"frob"}, want: `unknown command "frob"`, hint: "tokenctl"},
		{name: "token without subcommand", args: []string{"token"}, want: `missing command for "tokenctl token"`, hint: "tokenctl token"},
		{name: "unknown token subcommand", args: []string{"token", "frob"}, want: `unknown command "frob" for "tokenctl token"`, hint: "tokenctl token"},
		{name: "unknown global flag", args: []string{"--bogus", "status"}, want: "unknown flag: --bogus", hint: "tokenctl"},
		{name: "unknown command flag", args: []string{"status", "--bogus"}, want: "unknown flag: --bogus", hint: "tokenctl status"},
		{name: "bad output", args: []string{"status", "-o", "yaml"}, want: `--output: unknown output format "yaml"`, hint: "tokenctl status"},
		{name: "bad output from env", env: map[string]string{envOutput: "xml"}, args: []string{"status"}, want: envOutput + `: unknown output format "xml"`, hint: "tokenctl status"},
		{name: "bad timeout", args: []string{"status", "--timeout", "0s"}, want: "--timeout: must be positive", hint: "tokenctl status"},
		{name: "unparsable timeout", args: []string{"status", "--timeout", "soon"}, want: `invalid argument "soon" for "--timeout"`, hint: "tokenctl status"},
		{name: "bad dial timeout", args: []string{"status", "--dial-timeout", "-1s"}, want: "--dial-timeout: must be positive", hint: "tokenctl status"},
		{name: "bad consistency", args: []string{"token", "get", "x", "--consistency", "strong"}, want: `--consistency: unknown value "strong"`, hint: "tokenctl token get"},
		{name: "endpoint without port", args: []string{"status", "--endpoints", "localhost"}, want: `--endpoints: invalid endpoint "localhost"`, hint: "tokenctl status"},
		{name: "empty endpoints", args: []string{"status", "--endpoints", " , "}, want: "--endpoints: no endpoints given", hint: "tokenctl status"},
		{name: "bad endpoint from env", env: map[string]string{envEndpoints: "a:1,b"}, args: []string{"status"}, want: envEndpoints + `: invalid endpoint "b"`, hint: "tokenctl status"},
		{name: "status with argument", args: []string{"status", "extra"}, want: "takes no arguments", hint: "tokenctl status"},
		{name: "version with argument", args: []string{"version", "extra"}, want: "takes no arguments", hint: "tokenctl version"},

		{name: "create without user", args: []string{"token", "create"}, want: "--user is required", hint: "tokenctl token create"},
		{name: "create with blank user", args: []string{"token", "create", "--user", " "}, want: "--user is required", hint: "tokenctl token create"},
		{name: "create negative ttl", args: []string{"token", "create", "--user", "a", "--ttl", "-1h"}, want: "--ttl: must be positive", hint: "tokenctl token create"},
		{name: "create zero ttl", args: []string{"token", "create", "--user", "a", "--ttl", "0s"}, want: "--ttl: must be positive", hint: "tokenctl token create"},
		{name: "create unparsable ttl", args: []string{"token", "create", "--user", "a", "--ttl", "1 day"}, want: `invalid argument "1 day" for "--ttl"`, hint: "tokenctl token create"},
		{name: "create extra without =", args: []string{"token", "create", "--user", "a", "--extra", "scope"}, want: `--extra: want key=value, got "scope"`, hint: "tokenctl token create"},
		{name: "create label without key", args: []string{"token", "create", "--user", "a", "--label", "=v"}, want: "--label: want key=value", hint: "tokenctl token create"},
		{name: "create duplicate label", args: []string{"token", "create", "--user", "a", "--label", "k=1", "--label", "k=2"}, want: `--label: key "k" given twice`, hint: "tokenctl token create"},
		{name: "create with argument", args: []string{"token", "create", "alice"}, want: "takes no arguments", hint: "tokenctl token create"},

		{name: "verify without token", args: []string{"token", "verify"}, want: "missing argument TOKEN", hint: "tokenctl token verify"},
		{name: "verify empty token", args: []string{"token", "verify", ""}, want: "TOKEN is empty", hint: "tokenctl token verify"},
		{name: "verify nothing on stdin", args: []string{"token", "verify", "-"}, want: "no token on the first line of standard input", hint: "tokenctl token verify"},

		{name: "get without id", args: []string{"token", "get"}, want: "missing argument ID", hint: "tokenctl token get"},
		{name: "get two ids", args: []string{"token", "get", "a", "b"}, want: "takes 1 argument(s) (ID), got 2", hint: "tokenctl token get"},
		{name: "get empty id", args: []string{"token", "get", ""}, want: "ID is empty", hint: "tokenctl token get"},
		{name: "revoke without id", args: []string{"token", "revoke"}, want: "missing argument ID", hint: "tokenctl token revoke"},

		{name: "list negative limit", args: []string{"token", "list", "--limit", "-1"}, want: "--limit: must not be negative", hint: "tokenctl token list"},
		{name: "list page size zero", args: []string{"token", "list", "--page-size", "0"}, want: "--page-size: must be between 1 and 1000", hint: "tokenctl token list"},
		{name: "list page size too big", args: []string{"token", "list", "--page-size", "1001"}, want: "--page-size: must be between 1 and 1000", hint: "tokenctl token list"},
		{name: "list all with limit", args: []string{"token", "list", "--all", "--limit", "5"}, want: "--all and --limit cannot be combined", hint: "tokenctl token list"},
		{name: "list unparsable limit", args: []string{"token", "list", "--limit", "ten"}, want: `invalid argument "ten" for "--limit"`, hint: "tokenctl token list"},

		{name: "update nothing", args: []string{"token", "update", "x"}, want: "nothing to change", hint: "tokenctl token update"},
		{name: "update without id", args: []string{"token", "update", "--disable"}, want: "missing argument ID", hint: "tokenctl token update"},
		{name: "update disable and enable", args: []string{"token", "update", "x", "--disable", "--enable"}, want: "--disable and --enable cannot be combined", hint: "tokenctl token update"},
		{name: "update ttl and no-expiry", args: []string{"token", "update", "x", "--ttl", "1h", "--no-expiry"}, want: "--ttl and --no-expiry cannot be combined", hint: "tokenctl token update"},
		{name: "update expires-at and ttl", args: []string{"token", "update", "x", "--expires-at", "2031-01-01T00:00:00Z", "--ttl", "1h"}, want: "--expires-at and --ttl cannot be combined", hint: "tokenctl token update"},
		{name: "update bad expires-at", args: []string{"token", "update", "x", "--expires-at", "tomorrow"}, want: "--expires-at: want an RFC 3339 time", hint: "tokenctl token update"},
		{name: "update negative ttl", args: []string{"token", "update", "x", "--ttl", "-5m"}, want: "--ttl: must be positive", hint: "tokenctl token update"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{envEndpoints: closed}
			for k, v := range tt.env {
				env[k] = v
			}
			res := cliRun{env: env, args: tt.args}.exec(t)
			if res.code != ExitUsage {
				t.Fatalf("exit code = %d, want %d (stderr %q)", res.code, ExitUsage, res.stderr)
			}
			lines := strings.Split(strings.TrimSuffix(res.stderr, "\n"), "\n")
			if len(lines) != 2 {
				t.Fatalf("stderr has %d lines, want an error line and a hint:\n%s", len(lines), res.stderr)
			}
			if !strings.HasPrefix(lines[0], "error: ") || !strings.Contains(lines[0], tt.want) {
				t.Errorf("error line = %q, want \"error: ...%s...\"", lines[0], tt.want)
			}
			if want := "Run '" + tt.hint + " --help' for usage."; lines[1] != want {
				t.Errorf("hint = %q, want %q", lines[1], want)
			}
			if res.stdout != "" {
				t.Errorf("stdout = %q, want nothing", res.stdout)
			}
		})
	}
}

// TestVerifyNeverEchoesToken checks that usage errors of "token verify" do
// not repeat the arguments: one of them is a secret.
func TestVerifyNeverEchoesToken(t *testing.T) {
	t.Parallel()
	res := runCLI(t, closedAddr(t), "token", "verify", "tok-1:s3cret", "tok-2:0ther")
	if res.code != ExitUsage {
		t.Fatalf("exit code = %d, want %d", res.code, ExitUsage)
	}
	if strings.Contains(res.stderr, "s3cret") || strings.Contains(res.stderr, "0ther") {
		t.Errorf("stderr echoes a token: %q", res.stderr)
	}
}

// TestHelpExitsZero checks that asking for help is not an error.
func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"token", "--help"}, {"token", "create", "-h"}, {"help", "status"}} {
		res := runCLI(t, closedAddr(t), args...)
		if res.code != ExitOK || res.stderr != "" || !strings.Contains(res.stdout, "Usage:") {
			t.Errorf("tokenctl %v: code %d, stderr %q, stdout %q; want 0, nothing, usage", args, res.code, res.stderr, res.stdout)
		}
	}
}

// TestMainRunsVersion runs the exported entry point once, end to end, on a
// command that needs no cluster.
func TestMainRunsVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"version", "-o", "json", "--endpoints", closedAddr(t)}, &stdout, &stderr)
	if code != ExitOK || stderr.Len() != 0 {
		t.Fatalf("Main(version) = %d, stderr %q", code, stderr.String())
	}
	assertKeys(t, decodeObject(t, stdout.String()), "version", "goVersion", "platform")
}
