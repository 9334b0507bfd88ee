package ctl

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// The tests in this file run commands against the memberDouble test double
// to check what goes on the wire (flags become request fields) and what an
// answer that came over the wire looks like.

// lastRequest returns the last request d received.
func lastRequest(t *testing.T, d *memberDouble) proto.Message {
	t.Helper()
	reqs := d.received()
	if len(reqs) == 0 {
		t.Fatal("member received no request")
	}
	return reqs[len(reqs)-1]
}

func assertRequest(t *testing.T, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("request = %v, want %v", got, want)
	}
}

func TestCreateCommand(t *testing.T) {
	t.Parallel()
	d := &memberDouble{name: "m1"}
	addr := d.start(t)

	res := runCLI(t, addr, "token", "create", "--user", "alice", "--uid", "1000",
		"--group", "dev", "--group", "a,b", "--extra", "scope=x", "--extra", "scope=y", "--extra", "env=",
		"--ttl", "24h", "--description", "ci", "--label", "team=infra", "-o", "json")
	if res.code != ExitOK {
		t.Fatalf("exit code %d (stderr %q)", res.code, res.stderr)
	}
	assertRequest(t, lastRequest(t, d), &tokenstorev1.CreateTokenRequest{
		User: &tokenstorev1.UserInfo{
			Username: "alice",
			Uid:      "1000",
			Groups:   []string{"dev", "a,b"},
			Extra: map[string]*tokenstorev1.ExtraValue{
				"scope": {Values: []string{"x", "y"}},
				"env":   {Values: []string{""}},
			},
		},
		Ttl:         durationpb.New(24 * time.Hour),
		Description: "ci",
		Labels:      map[string]string{"team": "infra"},
	})
	m := decodeObject(t, res.stdout)
	assertKeys(t, m, "id", "token", "expiresAt", "revision", "member")
	if m["token"] != doubleBearer || m["expiresAt"] != "2030-01-03T03:04:05Z" || m["revision"] != float64(10) {
		t.Errorf("create JSON = %v", m)
	}

	table := runCLI(t, addr, "token", "create", "--user", "alice")
	if table.code != ExitOK || !strings.Contains(table.stdout, "\n    "+doubleBearer+"\n") ||
		!strings.Contains(table.stdout, "Save this token now; it is not shown again.") {
		t.Errorf("create table (code %d):\n%s", table.code, table.stdout)
	}
}

// TestVerifyCommand checks verify from stdin, that a refusal still exits 0,
// that --consistency is sent, and that the token is never printed.
func TestVerifyCommand(t *testing.T) {
	t.Parallel()
	d := &memberDouble{name: "m1"}
	addr := d.start(t)
	env := map[string]string{envEndpoints: addr}

	res := cliRun{env: env, stdin: doubleBearer + "\r\nignored\n", args: []string{"token", "verify", "-", "--consistency", "linearizable", "-o", "json"}}.exec(t)
	if res.code != ExitOK {
		t.Fatalf("exit code %d (stderr %q)", res.code, res.stderr)
	}
	assertRequest(t, lastRequest(t, d), &tokenstorev1.AuthenticateRequest{
		Token:       doubleBearer,
		Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE,
	})
	m := decodeObject(t, res.stdout)
	assertKeys(t, m, "authenticated", "user", "audiences", "tokenId", "revision", "member")
	if m["authenticated"] != true || m["tokenId"] != "tok-1" || object(t, m["user"])["username"] != "alice" {
		t.Errorf("verify JSON = %v", m)
	}

	refused := cliRun{env: env, stdin: "tok-1:wrong-secret", args: []string{"token", "verify", "-"}}.exec(t)
	if refused.code != ExitOK {
		t.Errorf("refused token: exit code %d, want 0 (the command succeeded)", refused.code)
	}
	if !strings.Contains(refused.stdout, "Authenticated: no") || !strings.Contains(refused.stdout, "Reason:        unknown") {
		t.Errorf("refused token output:\n%s", refused.stdout)
	}

	for _, r := range []cliResult{res, refused} {
		for _, secret := range []string{"s3cret-value", "wrong-secret"} {
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Errorf("verify printed the token's secret:\n%s%s", r.stdout, r.stderr)
			}
		}
	}
}

func TestGetCommand(t *testing.T) {
	t.Parallel()
	d := &memberDouble{name: "m1"}
	addr := d.start(t)

	res := runCLI(t, addr, "token", "get", "tok-7", "--consistency", "bounded", "-o", "json")
	if res.code != ExitOK {
		t.Fatalf("exit code %d (stderr %q)", res.code, res.stderr)
	}
	assertRequest(t, lastRequest(t, d), &tokenstorev1.GetTokenRequest{
		Id: "tok-7", Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_BOUNDED,
	})
	m := decodeObject(t, res.stdout)
	assertKeys(t, m, "token", "revision", "member")
	tok := object(t, m["token"])
	if tok["id"] != "tok-7" || tok["createdAt"] != "2030-01-01T03:04:05Z" || m["member"] != "m1" || m["revision"] != float64(11) {
		t.Errorf("get JSON = %v", m)
	}

	// Without --consistency the member's default is asked for.
	if res := runCLI(t, addr, "token", "get", "tok-7"); res.code != ExitOK || !strings.Contains(res.stdout, "State:       active") {
		t.Errorf("get table (code %d):\n%s", res.code, res.stdout)
	}
	assertRequest(t, lastRequest(t, d), &tokenstorev1.GetTokenRequest{Id: "tok-7"})
}

func TestUpdateCommand(t *testing.T) {
	t.Parallel()
	d := &memberDouble{name: "m1"}
	addr := d.start(t)
	yes, no, empty := true, false, ""

	tests := []struct {
		args []string
		want *tokenstorev1.UpdateTokenRequest
	}{
		{[]string{"--disable"}, &tokenstorev1.UpdateTokenRequest{Id: "tok-1", Disabled: &yes}},
		{[]string{"--enable"}, &tokenstorev1.UpdateTokenRequest{Id: "tok-1", Disabled: &no}},
		{[]string{"--no-expiry"}, &tokenstorev1.UpdateTokenRequest{Id: "tok-1", ClearExpiry: true}},
		{[]string{"--ttl", "1h"}, &tokenstorev1.UpdateTokenRequest{Id: "tok-1", ExpiresAt: timestamppb.New(testNow.Add(time.Hour))}},
		{[]string{"--expires-at", "2031-06-01T10:00:00+02:00"}, &tokenstorev1.UpdateTokenRequest{Id: "tok-1", ExpiresAt: timestamppb.New(time.Date(2031, 6, 1, 8, 0, 0, 0, time.UTC))}},
		{[]string{"--description", ""}, &tokenstorev1.UpdateTokenRequest{Id: "tok-1", Description: &empty}},
		{[]string{"--disable", "--no-expiry", "--description", ""}, &tokenstorev1.UpdateTokenRequest{Id: "tok-1", Disabled: &yes, ClearExpiry: true, Description: &empty}},
	}
	for _, tt := range tests {
		res := runCLI(t, addr, append([]string{"token", "update", "tok-1"}, tt.args...)...)
		if res.code != ExitOK {
			t.Errorf("update %v: exit code %d (stderr %q)", tt.args, res.code, res.stderr)
			continue
		}
		if !strings.HasPrefix(res.stdout, "Token tok-1 updated.\n") {
			t.Errorf("update %v: output:\n%s", tt.args, res.stdout)
		}
		assertRequest(t, lastRequest(t, d), tt.want)
	}
}

func TestRevokeCommand(t *testing.T) {
	t.Parallel()
	d := &memberDouble{name: "m1"}
	res := runCLI(t, d.start(t), "token", "revoke", "tok-1", "-o", "json")
	if res.code != ExitOK {
		t.Fatalf("exit code %d (stderr %q)", res.code, res.stderr)
	}
	assertRequest(t, lastRequest(t, d), &tokenstorev1.RevokeTokenRequest{Id: "tok-1"})
	tok := object(t, decodeObject(t, res.stdout)["token"])
	if tok["revoked"] != true || tok["revokedAt"] != "2030-01-02T03:04:05Z" {
		t.Errorf("revoke JSON token = %v", tok)
	}
}

// TestListCommandPages checks that list follows page tokens to the end,
// that --limit caps the total and asks for no more than needed, and that
// revision and member come from the last page.
func TestListCommandPages(t *testing.T) {
	t.Parallel()
	d := &memberDouble{name: "m1"}
	for _, id := range []string{"tok-a", "tok-b", "tok-c", "tok-d", "tok-e"} {
		d.tokens = append(d.tokens, doubleToken(id))
	}
	addr := d.start(t)

	ids := func(out string) []string {
		var got []string
		for _, tok := range decodeObject(t, out)["tokens"].([]any) {
			got = append(got, object(t, tok)["id"].(string))
		}
		return got
	}
	pageRequests := func(from int) (sizes []uint32, tokens []string) {
		for _, r := range d.received()[from:] {
			req := r.(*tokenstorev1.ListTokensRequest)
			sizes = append(sizes, req.GetPageSize())
			tokens = append(tokens, req.GetPageToken())
		}
		return sizes, tokens
	}

	res := runCLI(t, addr, "token", "list", "--page-size", "2", "-o", "json")
	if res.code != ExitOK {
		t.Fatalf("exit code %d (stderr %q)", res.code, res.stderr)
	}
	if got := ids(res.stdout); !slices.Equal(got, []string{"tok-a", "tok-b", "tok-c", "tok-d", "tok-e"}) {
		t.Errorf("listed %v, want all five", got)
	}
	if m := decodeObject(t, res.stdout); m["revision"] != float64(24) {
		t.Errorf("revision = %v, want the last page's (24)", m["revision"])
	}
	sizes, tokens := pageRequests(0)
	if !slices.Equal(sizes, []uint32{2, 2, 2}) || !slices.Equal(tokens, []string{"", "2", "4"}) {
		t.Errorf("page requests sizes %v tokens %v, want [2 2 2] [\"\" 2 4]", sizes, tokens)
	}

	seen := len(d.received())
	res = runCLI(t, addr, "token", "list", "--page-size", "2", "--limit", "3", "-o", "json")
	if got := ids(res.stdout); !slices.Equal(got, []string{"tok-a", "tok-b", "tok-c"}) {
		t.Errorf("--limit 3 listed %v", got)
	}
	if sizes, _ := pageRequests(seen); !slices.Equal(sizes, []uint32{2, 1}) {
		t.Errorf("--limit 3 page sizes %v, want [2 1]", sizes)
	}

	seen = len(d.received())
	res = runCLI(t, addr, "token", "list", "--limit", "2")
	if !strings.Contains(res.stdout, "more exist") || strings.Count(res.stdout, "tok-") != 2 {
		t.Errorf("--limit 2 table:\n%s", res.stdout)
	}
	if sizes, _ := pageRequests(seen); !slices.Equal(sizes, []uint32{2}) {
		t.Errorf("--limit 2 page sizes %v, want [2]", sizes)
	}

	seen = len(d.received())
	res = runCLI(t, addr, "token", "list", "--all", "--consistency", "linearizable")
	if res.code != ExitOK || strings.Count(res.stdout, "tok-") != 5 {
		t.Errorf("--all (code %d):\n%s", res.code, res.stdout)
	}
	assertRequest(t, d.received()[seen], &tokenstorev1.ListTokensRequest{Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE})
}

func TestStatusCommand(t *testing.T) {
	t.Parallel()
	d := &memberDouble{name: "m1"}
	addr := d.start(t)

	res := runCLI(t, addr, "status", "-o", "json")
	if res.code != ExitOK {
		t.Fatalf("exit code %d (stderr %q)", res.code, res.stderr)
	}
	m := decodeObject(t, res.stdout)
	assertKeys(t, m, "clusterId", "leader", "revision", "member", "members")
	if m["clusterId"] != "00000000000000c1" || object(t, m["leader"])["id"] != "00000000000000a1" {
		t.Errorf("status JSON = %v", m)
	}

	out := cliRun{env: map[string]string{envEndpoints: addr, envOutput: "table"}, args: []string{"status"}}.exec(t)
	if out.code != ExitOK || !strings.HasPrefix(out.stdout, "Cluster 00000000000000c1, leader m1 (00000000000000a1)\n") {
		t.Errorf("status table (code %d):\n%s", out.code, out.stdout)
	}

	// TOKENCTL_OUTPUT applies when -o is not given; -o wins over it.
	env := map[string]string{envEndpoints: addr, envOutput: "json"}
	if res := (cliRun{env: env, args: []string{"status"}}).exec(t); !strings.HasPrefix(res.stdout, "{") {
		t.Errorf("%s=json ignored:\n%s", envOutput, res.stdout)
	}
	if res := (cliRun{env: env, args: []string{"status", "-o", "table"}}).exec(t); !strings.HasPrefix(res.stdout, "Cluster ") {
		t.Errorf("-o table did not win over %s=json:\n%s", envOutput, res.stdout)
	}
}
