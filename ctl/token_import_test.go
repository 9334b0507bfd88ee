package ctl

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/rancher"
)

// rancherFile writes a YAML export of n ClusterAuthTokens (SHA3 hashes,
// the cheap format) plus one user attribute, and returns its path.
func rancherFile(t *testing.T, names ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(`apiVersion: cluster.cattle.io/v3
kind: ClusterUserAttribute
metadata: {name: u-alice, namespace: cattle-system}
groups: [system:authenticated, "local://g-1"]
enabled: true
`)
	for i, name := range names {
		h, err := rancher.NewHash(rancher.FormatSHA3, fmt.Sprintf("secret%d", i))
		if err != nil {
			t.Fatal(err)
		}
		user := "u-alice"
		if i%2 == 1 {
			user = "u-bob"
		}
		fmt.Fprintf(&b, "---\napiVersion: cluster.cattle.io/v3\nkind: ClusterAuthToken\nmetadata: {name: %s, namespace: cattle-system}\nuserName: %s\nhash: %q\nenabled: %v\n",
			name, user, h, i != 2)
		if i == 0 {
			b.WriteString("expiresAt: \"2031-01-01T00:00:00Z\"\n")
		}
	}
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImportCommand(t *testing.T) {
	t.Parallel()
	d := &memberDouble{name: "m1"}
	addr := d.start(t)
	path := rancherFile(t, "kubeconfig-u-alice-a", "token-b", "token-c", "token-d", "token-e")

	res := runCLI(t, addr, "token", "import", "--format", "rancher", "--batch-size", "2", path, "-o", "json")
	if res.code != ExitOK {
		t.Fatalf("exit code %d (stderr %q)", res.code, res.stderr)
	}
	// Five tokens in batches of two: three requests, in name order.
	reqs := d.received()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	var ids []string
	for _, r := range reqs {
		for _, tok := range r.(*tokenstorev1.ImportTokensRequest).GetTokens() {
			ids = append(ids, tok.GetId())
		}
	}
	if want := []string{"kubeconfig-u-alice-a", "token-b", "token-c", "token-d", "token-e"}; !slices.Equal(ids, want) {
		t.Errorf("sent %v, want %v", ids, want)
	}
	first := reqs[0].(*tokenstorev1.ImportTokensRequest).GetTokens()[0]
	if first.GetUser().GetUsername() != "u-alice" || !slices.Equal(first.GetUser().GetGroups(), []string{"system:authenticated", "local://g-1"}) ||
		!first.GetExpiresAt().AsTime().Equal(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)) || first.GetDisabled() ||
		!strings.HasPrefix(first.GetRancherHash(), "$3:1:") {
		t.Errorf("first token sent as %v", first)
	}
	if third := reqs[1].(*tokenstorev1.ImportTokensRequest).GetTokens()[0]; third.GetId() != "token-c" || !third.GetDisabled() {
		t.Errorf("token-c (enabled: false) sent as %v", third)
	}
	m := decodeObject(t, res.stdout)
	assertKeys(t, m, "dryRun", "tokens", "imported", "skipped", "hashFormats", "withoutUserAttribute", "revision", "member")
	if len(m["imported"].([]any)) != 5 || object(t, m["hashFormats"])["sha3-512"] != float64(5) {
		t.Errorf("import JSON = %v", m)
	}
	// u-bob has no ClusterUserAttribute in the file.
	if got := m["withoutUserAttribute"].([]any); len(got) != 2 || got[0] != "token-b" {
		t.Errorf("withoutUserAttribute = %v, want token-b and token-d", got)
	}

	table := runCLI(t, addr, "token", "import", "--format", "rancher", path)
	for _, want := range []string{"Imported 5 of 5 tokens", "Hash formats: sha3-512 5. Disabled: 1.", "Warning: 2 tokens have no ClusterUserAttribute"} {
		if !strings.Contains(table.stdout, want) {
			t.Errorf("table output lacks %q:\n%s", want, table.stdout)
		}
	}
	for _, secret := range []string{"secret0", "$3:1:"} {
		if strings.Contains(table.stdout+res.stdout, secret) {
			t.Errorf("import printed a secret or hash (%q)", secret)
		}
	}
}

func TestImportCommandExistingAndDryRun(t *testing.T) {
	t.Parallel()
	d := &memberDouble{name: "m1"}
	addr := d.start(t)
	path := rancherFile(t, "dup-a", "token-b")

	refused := runCLI(t, addr, "token", "import", "--format", "rancher", path)
	if refused.code != ExitFailed || !strings.Contains(refused.stderr, `import tokens 1-2 of 2: refused: token "dup-a": already exists`) {
		t.Errorf("existing id without --skip-existing: code %d, stderr %q", refused.code, refused.stderr)
	}
	skipped := runCLI(t, addr, "token", "import", "--format", "rancher", "--skip-existing", path)
	if skipped.code != ExitOK || !strings.Contains(skipped.stdout, "Imported 1 of 2 tokens") || !strings.Contains(skipped.stdout, "1 skipped (id exists): dup-a") {
		t.Errorf("--skip-existing: code %d:\n%s%s", skipped.code, skipped.stdout, skipped.stderr)
	}
	last := lastRequest(t, d).(*tokenstorev1.ImportTokensRequest)
	if !last.GetSkipExisting() {
		t.Error("--skip-existing not sent")
	}

	seen := len(d.received())
	dry := runCLI(t, addr, "token", "import", "--format", "rancher", "--dry-run", path)
	if dry.code != ExitOK || !strings.Contains(dry.stdout, "Would import 2 tokens") || len(d.received()) != seen {
		t.Errorf("--dry-run: code %d, %d requests sent:\n%s", dry.code, len(d.received())-seen, dry.stdout)
	}

	stdin := cliRun{env: map[string]string{envEndpoints: addr}, stdin: mustRead(t, path), args: []string{"token", "import", "--format", "rancher", "--dry-run", "-"}}.exec(t)
	if stdin.code != ExitOK || !strings.Contains(stdin.stdout, "Would import 2 tokens from -") {
		t.Errorf("import from stdin: code %d:\n%s%s", stdin.code, stdin.stdout, stdin.stderr)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestImportCommandBadInput(t *testing.T) {
	t.Parallel()
	closed := closedAddr(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name, file, want string
		code             int
	}{
		{"no format", write("a.yaml", ""), "--format is required", ExitUsage},
		{"bad hash", write("b.yaml", "kind: ClusterAuthToken\nmetadata: {name: t1}\nuserName: u\nhash: nope\n"), "ClusterAuthToken t1: hash: not a Rancher token hash", ExitFailed},
		{"no tokens", write("c.yaml", "kind: ClusterUserAttribute\nmetadata: {name: u}\n"), "holds no ClusterAuthToken", ExitFailed},
		{"missing file", filepath.Join(dir, "missing.yaml"), "no such file", ExitFailed},
		{"not yaml", write("d.yaml", "{{{"), "document 1", ExitFailed},
	} {
		args := []string{"token", "import", "--format", "rancher", c.file}
		if c.name == "no format" {
			args = []string{"token", "import", c.file}
		}
		res := runCLI(t, closed, args...)
		if res.code != c.code || !strings.Contains(res.stderr, c.want) {
			t.Errorf("%s: code %d, stderr %q; want %d and %q", c.name, res.code, res.stderr, c.code, c.want)
		}
	}
	if res := runCLI(t, closed, "token", "import", "--format", "csv", "x"); res.code != ExitUsage || !strings.Contains(res.stderr, `unknown format "csv"`) {
		t.Errorf("--format csv: code %d, stderr %q", res.code, res.stderr)
	}
	if res := runCLI(t, closed, "token", "import", "--format", "rancher", "--batch-size", "0", "x"); res.code != ExitUsage {
		t.Errorf("--batch-size 0: code %d, stderr %q", res.code, res.stderr)
	}
}

func TestAudienceFlags(t *testing.T) {
	t.Parallel()
	d := &memberDouble{name: "m1"}
	addr := d.start(t)

	if res := runCLI(t, addr, "token", "create", "--user", "alice", "--audience", "https://a", "--audience", "b"); res.code != ExitOK {
		t.Fatalf("create: code %d, stderr %q", res.code, res.stderr)
	}
	assertRequest(t, lastRequest(t, d), &tokenstorev1.CreateTokenRequest{
		User: &tokenstorev1.UserInfo{Username: "alice"}, Audiences: []string{"https://a", "b"},
	})
	if res := runCLI(t, addr, "token", "create", "--user", "alice", "--audience", "a", "--audience", "a"); res.code != ExitUsage || !strings.Contains(res.stderr, `"a" given twice`) {
		t.Errorf("duplicate --audience: code %d, stderr %q", res.code, res.stderr)
	}

	res := cliRun{env: map[string]string{envEndpoints: addr}, stdin: doubleBearer, args: []string{"token", "verify", "-", "--audience", "x"}}.exec(t)
	if res.code != ExitOK || !strings.Contains(res.stdout, "Audiences:") {
		t.Fatalf("verify --audience: code %d:\n%s%s", res.code, res.stdout, res.stderr)
	}
	assertRequest(t, lastRequest(t, d), &tokenstorev1.AuthenticateRequest{Token: doubleBearer, Audiences: []string{"x"}})
}

func TestTokenTableShowsAudiencesAndHash(t *testing.T) {
	tok := &tokenstorev1.Token{Id: "t1", CreatedAt: timestamppb.New(testNow), Audiences: []string{"a", "b"},
		HashFormat: tokenstorev1.HashFormat_HASH_FORMAT_RANCHER_SHA3}
	out := tokenTable("", tok, &tokenstorev1.ResponseHeader{}, testNow)
	if !strings.Contains(out, "Audiences:   a, b") || !strings.Contains(out, "Hash:        rancher sha3") {
		t.Errorf("token table:\n%s", out)
	}
	if out := tokenTable("", &tokenstorev1.Token{Id: "t2"}, &tokenstorev1.ResponseHeader{}, testNow); !strings.Contains(out, "Audiences:   any") {
		t.Errorf("unbound token table:\n%s", out)
	}
}
