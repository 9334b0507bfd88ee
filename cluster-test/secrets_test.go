package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/cluster-test/harness"
)

// leakHunt collects every secret a test created or tried and every blob
// (log, CLI output, metrics page, file) a secret must never appear in.
type leakHunt struct {
	secrets []string
	blobs   []blob
}

type blob struct {
	name string
	data []byte
}

func (h *leakHunt) secret(s string)           { h.secrets = append(h.secrets, s) }
func (h *leakHunt) add(name string, b []byte) { h.blobs = append(h.blobs, blob{name, b}) }

// forms are the ways a code path could write a secret: as given, and
// base64 (every alphabet), hex, and for tokenstore's own secrets the raw
// bytes their base32 text encodes.
func forms(s string) map[string][]byte {
	out := map[string][]byte{
		"plain":      []byte(s),
		"base64":     []byte(base64.StdEncoding.EncodeToString([]byte(s))),
		"base64-raw": []byte(base64.RawStdEncoding.EncodeToString([]byte(s))),
		"base64-url": []byte(base64.RawURLEncoding.EncodeToString([]byte(s))),
		"hex":        []byte(hex.EncodeToString([]byte(s))),
	}
	enc := base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
	if raw, err := enc.DecodeString(s); err == nil && len(raw) >= 16 {
		out["base32-decoded"] = raw
	}
	return out
}

// leaks returns one line per (secret, form, blob) found.
func (h *leakHunt) leaks() []string {
	var out []string
	for _, s := range h.secrets {
		for form, needle := range forms(s) {
			for _, b := range h.blobs {
				if i := bytes.Index(b.data, needle); i >= 0 {
					out = append(out, fmt.Sprintf("secret %s… (%s) in %s at byte %d", s[:6], form, b.name, i))
				}
			}
		}
	}
	return out
}

// addTree adds every file under dir.
func (h *leakHunt) addTree(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		h.add(path, b)
		n++
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	return n
}

// secretOf is the secret part of a bearer token "<id>:<secret>".
func secretOf(t *testing.T, bearer string) string {
	t.Helper()
	_, s, ok := strings.Cut(bearer, ":")
	if !ok || len(s) < 32 {
		t.Fatalf("not a bearer token: %d bytes", len(bearer))
	}
	return s
}

// wrongSecret is secret with its last characters changed: a near miss
// that shares a prefix with the real one.
func wrongSecret(s string) string {
	return s[:len(s)-4] + strings.Map(func(r rune) rune {
		if r == 'z' {
			return 'y'
		}
		return 'z'
	}, s[len(s)-4:])
}

// metricValue is the value of an unlabelled metric on a /metrics page.
func metricValue(page []byte, name string) (float64, bool) {
	s := bufio.NewScanner(bytes.NewReader(page))
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

func getMetrics(ctx context.Context, t *testing.T, c *harness.Cluster, m *harness.Member) []byte {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.HTTPURL("/metrics"), nil)
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("metrics of %s: %v", m.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics of %s: %d %v", m.Name, resp.StatusCode, err)
	}
	return b
}

// TestSecretsNeverLeak runs a workload over every interface with real
// members (debug logging, a raft snapshot every 20 entries), then looks for
// every secret it created or tried, in every form a code path could write
// it, in every member log, every tokenctl output but the one creation
// output that shows a secret once, every /metrics page, the saved snapshot
// file and the raw bytes of every file of every data directory (raft log,
// state database, snapshots).
func TestSecretsNeverLeak(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := newCluster(t, "--snapshot-count", "20", "--catch-up-entries", "5", "--log-level", "debug", "--last-used-interval", "200ms")
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	h := &leakHunt{}
	eps := clientEndpoints(c)
	ctlN := 0
	// ctl runs tokenctl; its stdout and stderr join the hunt unless the
	// stdout is a creation's (where the secret is shown, once).
	ctl := func(creation bool, args ...string) string {
		t.Helper()
		out, errOut, code := tokenctl(ctx, t, append([]string{"--endpoints", eps, "--timeout", "30s"}, args...)...)
		ctlN++
		h.add(fmt.Sprintf("tokenctl #%d %s stderr", ctlN, args[0]), []byte(errOut))
		if !creation {
			h.add(fmt.Sprintf("tokenctl #%d %s stdout", ctlN, args[0]), []byte(out))
		}
		if code != 0 {
			t.Fatalf("tokenctl %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}

	// Tokens created over gRPC at every member, and with tokenctl.
	type tok struct{ id, bearer string }
	var toks []tok
	createGRPC := func(m *harness.Member, user string) tok {
		t.Helper()
		r, err := m.Tokens.CreateToken(ctx, &tokenstorev1.CreateTokenRequest{User: &tokenstorev1.UserInfo{Username: user, Groups: []string{"dev"}}})
		if err != nil {
			t.Fatalf("create at %s: %v", m.Name, err)
		}
		k := tok{r.GetToken().GetId(), r.GetBearerToken()}
		h.secret(secretOf(t, k.bearer))
		return k
	}
	for i := range 6 {
		toks = append(toks, createGRPC(c.Members[i%3], fmt.Sprintf("grpc-%d", i)))
	}
	for i := range 2 {
		out := ctl(true, "token", "create", "--user", fmt.Sprintf("ctl-%d", i), "--group", "ops", "--ttl", "1h", "-o", "json")
		var created struct{ ID, Token string }
		if err := json.Unmarshal([]byte(out), &created); err != nil || created.ID == "" {
			t.Fatalf("create output: %v", err)
		}
		s := secretOf(t, created.Token)
		h.secret(s)
		// The hunt can find what it looks for: the creation output holds
		// the secret in plain form.
		if !bytes.Contains([]byte(out), forms(s)["plain"]) {
			t.Fatal("the creation output does not show the secret")
		}
		toks = append(toks, tok{created.ID, created.Token})
	}

	// Rancher tokens imported with tokenctl: their name:secret counts too.
	var y strings.Builder
	y.WriteString("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: cluster.cattle.io/v3, kind: ClusterUserAttribute, metadata: {name: u-r}, groups: [g], enabled: true}\n")
	for v := 1; v <= 3; v++ {
		name, secret := fmt.Sprintf("kubeconfig-u-leak%d", v), rancherSecret(t)
		h.secret(secret)
		fmt.Fprintf(&y, "- {apiVersion: cluster.cattle.io/v3, kind: ClusterAuthToken, metadata: {name: %s}, userName: u-r, hash: %q, enabled: true}\n",
			name, rancherHash(t, v, secret))
		toks = append(toks, tok{name, name + ":" + secret})
	}
	importFile := filepath.Join(t.TempDir(), "clusterauthtokens.yaml")
	if err := os.WriteFile(importFile, []byte(y.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctl(false, "token", "import", "--format", "rancher", importFile, "-o", "json")

	// Authentications, right and near-miss, at every member: gRPC,
	// TokenReview v1 through kube-apiserver's webhook client, and the
	// Rancher endpoint through the same client (v1beta1).
	// Every answer, right or refused, joins the hunt too.
	var answers strings.Builder
	type path struct{ route, version string }
	paths := []path{{"/apis/authentication.k8s.io/v1/tokenreviews", "v1"}, {"/v1/authenticate", "v1beta1"}}
	for _, m := range c.Members {
		for _, p := range paths {
			kube := kubeAuthenticator(t, webhookKubeconfig(t, m.Name+strings.ReplaceAll(p.route, "/", "-"), m.HTTPURL(p.route)), p.version)
			for _, k := range toks {
				wrong := k.id + ":" + wrongSecret(secretOf(t, k.bearer))
				h.secret(secretOf(t, wrong))
				r, err := m.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: k.bearer, Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
				if err != nil || !r.GetAuthenticated() {
					t.Fatalf("gRPC authenticate %s at %s: %v %v", k.id, m.Name, r.GetMessage(), err)
				}
				answers.WriteString(prototext.Format(r))
				r, err = m.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: wrong})
				if err != nil || r.GetAuthenticated() {
					t.Fatalf("gRPC wrong secret of %s at %s: %v %v", k.id, m.Name, r.GetAuthenticated(), err)
				}
				answers.WriteString(prototext.Format(r))
				a := ask(ctx, kube, k.bearer, nil)
				if !a.OK {
					t.Fatalf("%s %s at %s: %v", p.route, k.id, m.Name, a)
				}
				answers.WriteString(a.String())
				a = ask(ctx, kube, wrong, nil)
				if a.OK || a.Err != "unknown token or wrong secret" {
					t.Fatalf("%s wrong secret of %s at %s: %v", p.route, k.id, m.Name, a)
				}
				answers.WriteString(a.String())
			}
		}
	}
	h.add("authentication answers (gRPC and webhook)", []byte(answers.String()))
	ctl(false, "token", "verify", toks[0].bearer, "-o", "json")
	out, errOut, code := tokenctl(ctx, t, "--endpoints", eps, "token", "verify", toks[0].id+":"+wrongSecret(secretOf(t, toks[0].bearer)), "-o", "json")
	h.add("tokenctl verify wrong secret stdout", []byte(out))
	h.add("tokenctl verify wrong secret stderr", []byte(errOut))
	if code != 0 || !strings.Contains(out, `"authenticated": false`) {
		t.Fatalf("verify with a wrong secret: exit %d: %s", code, out)
	}

	// Updates and revocations, over gRPC and tokenctl.
	ctl(false, "token", "update", toks[1].id, "--disable")
	ctl(false, "token", "update", toks[1].id, "--enable", "--description", "re-enabled")
	desc := "updated over gRPC"
	if _, err := c.Members[2].Tokens.UpdateToken(ctx, &tokenstorev1.UpdateTokenRequest{Id: toks[2].id, Description: &desc}); err != nil {
		t.Fatal(err)
	}
	ctl(false, "token", "revoke", toks[3].id)
	if _, err := c.Members[1].Tokens.RevokeToken(ctx, &tokenstorev1.RevokeTokenRequest{Id: toks[4].id}); err != nil {
		t.Fatal(err)
	}
	ctl(false, "token", "list", "-o", "json")
	ctl(false, "token", "get", toks[0].id, "-o", "json")

	// A member killed and restarted far enough behind that it catches up
	// from a snapshot: the log is compacted every 20 entries.
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	down := c.Followers(leader)[0]
	c.Kill(down)
	for i := range 30 {
		toks = append(toks, createGRPC(leader, fmt.Sprintf("while-down-%d", i)))
	}
	if err := c.Start(down); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	last := toks[len(toks)-1]
	if r, err := down.Auth.Authenticate(ctx, &tokenstorev1.AuthenticateRequest{Token: last.bearer, Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE}); err != nil || !r.GetAuthenticated() {
		t.Fatalf("restarted %s does not know the token created while it was down: %v %v", down.Name, r.GetMessage(), err)
	}

	// The members that stayed up took raft snapshots (the log was
	// compacted behind them); the restarted one installed one.
	for _, m := range c.Members {
		page := getMetrics(ctx, t, c, m)
		h.add("/metrics of "+m.Name, page)
		name := "tokenstore_raft_snapshots_taken_total"
		if m == down {
			name = "tokenstore_raft_snapshots_installed_total"
		}
		if n, ok := metricValue(page, name); !ok || n < 1 {
			t.Errorf("%s: %s is %v, want at least 1", m.Name, name, n)
		}
	}

	snapFile := filepath.Join(t.TempDir(), "backup.db")
	ctl(false, "snapshot", "save", snapFile)
	b, err := os.ReadFile(snapFile)
	if err != nil {
		t.Fatal(err)
	}
	h.add("tokenctl snapshot save file", b)

	// Stop every member, so every byte is on disk, and hunt.
	c.Stop()
	files := 0
	for _, m := range c.Members {
		log, err := os.ReadFile(m.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		if len(log) == 0 {
			t.Fatalf("%s wrote no log", m.Name)
		}
		h.add("log of "+m.Name, log)
		files += h.addTree(t, m.DataDir)
		// The raft log holds every entry's bytes: it must be among them.
		if segs, _ := filepath.Glob(filepath.Join(m.DataDir, "wal", "*.wal")); len(segs) == 0 {
			t.Fatalf("%s: no raft log segments under %s to search", m.Name, m.DataDir)
		}
	}
	t.Logf("looked for %d secrets in %d forms in %d blobs (%d data-directory files)", len(h.secrets), len(forms(h.secrets[0])), len(h.blobs), files)
	if leaks := h.leaks(); len(leaks) > 0 {
		t.Fatalf("%d secrets leaked:\n%s", len(leaks), strings.Join(leaks, "\n"))
	}
}
