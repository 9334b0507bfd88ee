package ctl

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// The tests in this file render protobuf values with the pure view and
// table functions; no server or socket is involved.

// decodeObject decodes one JSON object, failing the test if s is not one.
func decodeObject(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("output is not a JSON object: %v\n%s", err, s)
	}
	return m
}

// toObject marshals v (a view struct) and decodes it as a generic object,
// which is what a script sees.
func toObject(t *testing.T, v any) map[string]any {
	t.Helper()
	var b strings.Builder
	if err := writeJSON(&b, v); err != nil {
		t.Fatalf("writeJSON: %v", err)
	}
	return decodeObject(t, b.String())
}

// assertKeys checks that m has exactly the keys want: the JSON field names
// are a contract with scripts, so an added, renamed or missing one fails.
func assertKeys(t *testing.T, m map[string]any, want ...string) {
	t.Helper()
	got := slices.Sorted(maps.Keys(m))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("JSON keys = %v, want %v", got, want)
	}
}

func object(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%v is %T, want a JSON object", v, v)
	}
	return m
}

// fullToken has every field set, times with nanoseconds.
func fullToken() *tokenstorev1.Token {
	at := func(s string) *timestamppb.Timestamp {
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			panic(err)
		}
		return timestamppb.New(ts)
	}
	return &tokenstorev1.Token{
		Id: "tok-abc",
		User: &tokenstorev1.UserInfo{
			Username: "alice",
			Uid:      "1000",
			Groups:   []string{"dev", "ops"},
			Extra:    map[string]*tokenstorev1.ExtraValue{"scope": {Values: []string{"a", "b"}}},
		},
		CreatedAt:      at("2030-01-01T00:00:00.123456789Z"),
		ExpiresAt:      at("2030-02-01T00:00:00Z"),
		Disabled:       true,
		Revoked:        true,
		RevokedAt:      at("2030-01-15T12:00:00.5+02:00"),
		Description:    "ci <deploys>",
		Labels:         map[string]string{"team": "infra"},
		LastUsedAt:     at("2030-01-10T00:00:00Z"),
		CreateRevision: 7,
		UpdateRevision: 9,
		Audiences:      []string{"https://kubernetes.default.svc"},
		HashFormat:     tokenstorev1.HashFormat_HASH_FORMAT_RANCHER_SCRYPT,
	}
}

var tokenKeys = []string{"id", "user", "createdAt", "expiresAt", "disabled", "revoked", "revokedAt",
	"description", "labels", "lastUsedAt", "createRevision", "updateRevision", "audiences", "hashFormat"}

func TestTokenJSON(t *testing.T) {
	m := toObject(t, tokenView(fullToken()))
	assertKeys(t, m, tokenKeys...)
	assertKeys(t, object(t, m["user"]), "username", "uid", "groups", "extra")

	for key, want := range map[string]any{
		"id":             "tok-abc",
		"createdAt":      "2030-01-01T00:00:00.123456789Z",
		"expiresAt":      "2030-02-01T00:00:00Z",
		"revokedAt":      "2030-01-15T10:00:00.5Z", // converted to UTC
		"description":    "ci <deploys>",           // not HTML-escaped
		"disabled":       true,
		"createRevision": float64(7),
		"updateRevision": float64(9),
		"hashFormat":     "rancher_scrypt",
	} {
		if m[key] != want {
			t.Errorf("%s = %#v, want %#v", key, m[key], want)
		}
	}
	extra := object(t, object(t, m["user"])["extra"])
	if got, _ := json.Marshal(extra["scope"]); string(got) != `["a","b"]` {
		t.Errorf("user.extra.scope = %s, want [\"a\",\"b\"]", got)
	}
}

// TestTokenJSONSparse checks that unset times are omitted while
// collections stay present (never null), so jq filters need no null checks.
func TestTokenJSONSparse(t *testing.T) {
	m := toObject(t, tokenView(&tokenstorev1.Token{Id: "tok-1"}))
	assertKeys(t, m, "id", "user", "disabled", "revoked", "description", "labels", "createRevision", "updateRevision", "audiences")
	if auds, ok := m["audiences"].([]any); !ok || len(auds) != 0 {
		t.Errorf("audiences = %#v, want []", m["audiences"])
	}
	user := object(t, m["user"])
	if _, ok := user["groups"].([]any); !ok {
		t.Errorf("user.groups = %#v, want []", user["groups"])
	}
	if _, ok := user["extra"].(map[string]any); !ok {
		t.Errorf("user.extra = %#v, want {}", user["extra"])
	}
	if _, ok := m["labels"].(map[string]any); !ok {
		t.Errorf("labels = %#v, want {}", m["labels"])
	}
}

func TestTokenResultAndListJSON(t *testing.T) {
	h := &tokenstorev1.ResponseHeader{Revision: 42, Member: "m1"}
	res := toObject(t, tokenResultView(fullToken(), h))
	assertKeys(t, res, "token", "revision", "member")
	assertKeys(t, object(t, res["token"]), tokenKeys...)
	if res["revision"] != float64(42) || res["member"] != "m1" {
		t.Errorf("revision, member = %v, %v; want 42, m1", res["revision"], res["member"])
	}

	list := toObject(t, tokenListView([]*tokenstorev1.Token{fullToken(), fullToken()}, h))
	assertKeys(t, list, "tokens", "revision", "member")
	if tokens, ok := list["tokens"].([]any); !ok || len(tokens) != 2 {
		t.Fatalf("tokens = %#v, want 2 tokens", list["tokens"])
	}
	empty := toObject(t, tokenListView(nil, h))
	if tokens, ok := empty["tokens"].([]any); !ok || len(tokens) != 0 {
		t.Errorf("empty list tokens = %#v, want []", empty["tokens"])
	}
}

func TestCreatedJSON(t *testing.T) {
	resp := &tokenstorev1.CreateTokenResponse{
		Header:      &tokenstorev1.ResponseHeader{Revision: 5, Member: "m2"},
		Token:       fullToken(),
		BearerToken: "tok-abc:secret",
	}
	m := toObject(t, createdView(resp))
	assertKeys(t, m, "id", "token", "expiresAt", "revision", "member")
	if m["token"] != "tok-abc:secret" || m["id"] != "tok-abc" || m["expiresAt"] != "2030-02-01T00:00:00Z" {
		t.Errorf("created = %v", m)
	}

	resp.Token.ExpiresAt = nil
	assertKeys(t, toObject(t, createdView(resp)), "id", "token", "revision", "member")
}

func TestVerifyJSON(t *testing.T) {
	h := &tokenstorev1.ResponseHeader{Revision: 3, Member: "m3"}
	accepted := toObject(t, verifyView(&tokenstorev1.AuthenticateResponse{
		Header: h, Authenticated: true, TokenId: "tok-abc",
		User: &tokenstorev1.UserInfo{Username: "alice"},
	}))
	assertKeys(t, accepted, "authenticated", "user", "audiences", "tokenId", "revision", "member")
	assertKeys(t, object(t, accepted["user"]), "username", "uid", "groups", "extra")

	for reason, want := range map[tokenstorev1.DenyReason]string{
		tokenstorev1.DenyReason_DENY_REASON_MALFORMED: "malformed",
		tokenstorev1.DenyReason_DENY_REASON_UNKNOWN:   "unknown",
		tokenstorev1.DenyReason_DENY_REASON_EXPIRED:   "expired",
		tokenstorev1.DenyReason_DENY_REASON_DISABLED:  "disabled",
		tokenstorev1.DenyReason_DENY_REASON_REVOKED:   "revoked",
	} {
		refused := toObject(t, verifyView(&tokenstorev1.AuthenticateResponse{Header: h, Reason: reason, TokenId: "tok-abc"}))
		assertKeys(t, refused, "authenticated", "reason", "tokenId", "revision", "member")
		if refused["reason"] != want || refused["authenticated"] != false {
			t.Errorf("reason %v rendered as %v", reason, refused)
		}
	}

	// A malformed token has no id part; tokenId is then left out. The
	// member's message is passed on.
	malformed := toObject(t, verifyView(&tokenstorev1.AuthenticateResponse{Header: h, Reason: tokenstorev1.DenyReason_DENY_REASON_MALFORMED, Message: "malformed token: empty"}))
	assertKeys(t, malformed, "authenticated", "reason", "message", "revision", "member")
	if malformed["message"] != "malformed token: empty" {
		t.Errorf("message = %v", malformed["message"])
	}
	mismatch := toObject(t, verifyView(&tokenstorev1.AuthenticateResponse{Header: h, Reason: tokenstorev1.DenyReason_DENY_REASON_AUDIENCE_MISMATCH}))
	if mismatch["reason"] != "audience_mismatch" {
		t.Errorf("audience mismatch rendered as %v", mismatch["reason"])
	}
}

func TestStatusJSON(t *testing.T) {
	resp := &tokenstorev1.StatusResponse{
		Header:     &tokenstorev1.ResponseHeader{Revision: 99, Member: "m1"},
		ClusterId:  0x1234abcd,
		LeaderId:   0xff,
		LeaderName: "m1",
		Members: []*tokenstorev1.MemberStatus{
			{Name: "m1", Id: 0xff, Role: tokenstorev1.MemberRole_MEMBER_ROLE_LEADER, Reachable: true},
			{Name: "m2", Id: 0x100, Role: tokenstorev1.MemberRole_MEMBER_ROLE_LEARNER, Reachable: true},
			{Name: "m3", Id: 0x101, Error: "dial timeout"},
		},
	}
	m := toObject(t, statusView(resp))
	assertKeys(t, m, "clusterId", "leader", "revision", "member", "members")
	if m["clusterId"] != "000000001234abcd" {
		t.Errorf("clusterId = %v, want 16 hex digits", m["clusterId"])
	}
	leader := object(t, m["leader"])
	assertKeys(t, leader, "id", "name")
	if leader["id"] != "00000000000000ff" || leader["name"] != "m1" {
		t.Errorf("leader = %v", leader)
	}
	members := m["members"].([]any)
	if len(members) != 3 {
		t.Fatalf("members = %v, want 3", members)
	}
	first := object(t, members[0])
	assertKeys(t, first, "name", "id", "peerAddress", "clientAddress", "role", "term", "appliedIndex",
		"commitIndex", "servingReads", "reachable", "error", "clock")
	for i, want := range []string{"leader", "learner", "unknown"} {
		if got := object(t, members[i])["role"]; got != want {
			t.Errorf("members[%d].role = %v, want %s", i, got, want)
		}
	}

	resp.LeaderId, resp.LeaderName = 0, ""
	if m := toObject(t, statusView(resp)); m["leader"] != nil {
		t.Errorf("leader with no leader known = %v, want null", m["leader"])
	}
}

func TestTokenState(t *testing.T) {
	past := timestamppb.New(testNow.Add(-time.Second))
	future := timestamppb.New(testNow.Add(time.Hour))
	tests := []struct {
		tok  *tokenstorev1.Token
		want string
	}{
		{&tokenstorev1.Token{}, "active"},
		{&tokenstorev1.Token{ExpiresAt: future}, "active"},
		{&tokenstorev1.Token{ExpiresAt: past}, "expired"},
		{&tokenstorev1.Token{ExpiresAt: timestamppb.New(testNow)}, "expired"},
		{&tokenstorev1.Token{Disabled: true, ExpiresAt: past}, "disabled"},
		{&tokenstorev1.Token{Revoked: true, Disabled: true}, "revoked"},
	}
	for _, tt := range tests {
		if got := tokenState(tt.tok, testNow); got != tt.want {
			t.Errorf("tokenState(%v) = %q, want %q", tt.tok, got, tt.want)
		}
	}
}

func TestTokenListTable(t *testing.T) {
	h := &tokenstorev1.ResponseHeader{Revision: 42, Member: "m1"}
	a := fullToken()
	b := &tokenstorev1.Token{Id: "tok-b", User: &tokenstorev1.UserInfo{Username: "bob"}, Description: "line one\nline\ttwo"}
	out := tokenListTable([]*tokenstorev1.Token{a, b}, h, testNow, false)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("table has %d lines, want header, 2 rows, footer:\n%s", len(lines), out)
	}
	if got := strings.Fields(lines[0]); !slices.Equal(got, []string{"ID", "USER", "GROUPS", "STATE", "EXPIRES", "LAST", "USED", "DESCRIPTION"}) {
		t.Errorf("header = %q", lines[0])
	}
	if got := strings.Fields(lines[1]); !slices.Equal(got[:6], []string{"tok-abc", "alice", "dev,ops", "revoked", "2030-02-01T00:00:00Z", "2030-01-10T00:00:00Z"}) {
		t.Errorf("row 1 = %q", lines[1])
	}
	if got := strings.Fields(lines[2]); !slices.Equal(got, []string{"tok-b", "bob", "-", "active", "never", "never", "line", "one", "line", "two"}) {
		t.Errorf("row 2 = %q (control characters must not break the row)", lines[2])
	}
	// Columns line up: every row starts its STATE column at the same offset.
	col := strings.Index(lines[0], "STATE")
	for _, l := range lines[1:3] {
		if c := l[col-2 : col]; c != "  " {
			t.Errorf("row %q not aligned with header at column %d", l, col)
		}
	}
	if lines[3] != "(revision 42, answered by m1)" {
		t.Errorf("footer = %q", lines[3])
	}

	if out := tokenListTable(nil, h, testNow, false); !strings.HasPrefix(out, "No tokens.\n") {
		t.Errorf("empty list = %q", out)
	}
	if out := tokenListTable([]*tokenstorev1.Token{a}, h, testNow, true); !strings.Contains(out, "more exist") {
		t.Errorf("cut-short list does not say more exist:\n%s", out)
	}
}

func TestTokenTable(t *testing.T) {
	out := tokenTable("Token tok-abc revoked.", fullToken(), &tokenstorev1.ResponseHeader{Revision: 8, Member: "m1"}, testNow)
	for _, want := range []string{
		"Token tok-abc revoked.\n",
		"ID:          tok-abc\n",
		"Groups:      dev, ops\n",
		"Extra:       scope=a,b\n",
		"State:       revoked\n",
		"Revoked:     2030-01-15T10:00:00Z\n",
		"Labels:      team=infra\n",
		"Revisions:   created at 7, updated at 9\n",
		"(revision 8, answered by m1)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("token table lacks %q:\n%s", want, out)
		}
	}
}

func TestCreatedTable(t *testing.T) {
	out := createdTable(&tokenstorev1.CreateTokenResponse{
		Header:      &tokenstorev1.ResponseHeader{Revision: 5, Member: "m2"},
		Token:       &tokenstorev1.Token{Id: "tok-abc", User: &tokenstorev1.UserInfo{Username: "alice"}},
		BearerToken: "tok-abc:secret",
	})
	for _, want := range []string{
		"Created token tok-abc for user alice (expires: never).",
		"\n    tok-abc:secret\n",
		"Save this token now; it is not shown again.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("create output lacks %q:\n%s", want, out)
		}
	}
}

func TestVerifyTable(t *testing.T) {
	h := &tokenstorev1.ResponseHeader{Revision: 3, Member: "m3"}
	out := verifyTable(&tokenstorev1.AuthenticateResponse{Header: h, Reason: tokenstorev1.DenyReason_DENY_REASON_EXPIRED, TokenId: "tok-abc"})
	for _, want := range []string{"Authenticated: no\n", "Reason:        expired\n", "Token ID:      tok-abc\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify table lacks %q:\n%s", want, out)
		}
	}
}

func TestStatusTable(t *testing.T) {
	out := statusTable(&tokenstorev1.StatusResponse{
		Header:    &tokenstorev1.ResponseHeader{Revision: 99, Member: "m1"},
		ClusterId: 0xc1,
		Members: []*tokenstorev1.MemberStatus{
			{Name: "m1", Id: 0xa1, Role: tokenstorev1.MemberRole_MEMBER_ROLE_FOLLOWER, Term: 4, AppliedIndex: 99, CommitIndex: 100, ServingReads: true, Reachable: true},
			{Name: "m2", Id: 0xa2, Error: "connection refused"},
		},
	})
	lines := strings.Split(out, "\n")
	if lines[0] != "Cluster 00000000000000c1, leader none known" {
		t.Errorf("cluster line = %q", lines[0])
	}
	if got := strings.Fields(lines[3]); !slices.Equal(got, []string{"m1", "00000000000000a1", "-", "-", "follower", "4", "99", "100", "yes", "-", "yes", "-"}) {
		t.Errorf("reachable member row = %q", lines[3])
	}
	// An unreachable member reported nothing: no role, term or index.
	if got := strings.Fields(lines[4]); !slices.Equal(got, []string{"m2", "00000000000000a2", "-", "-", "-", "-", "-", "-", "-", "-", "no", "connection", "refused"}) {
		t.Errorf("unreachable member row = %q", lines[4])
	}
}

func TestHumanCode(t *testing.T) {
	for code, want := range map[codes.Code]string{
		codes.NotFound:           "not found",
		codes.FailedPrecondition: "failed precondition",
		codes.Unavailable:        "unavailable",
	} {
		if got := humanCode(code); got != want {
			t.Errorf("humanCode(%v) = %q, want %q", code, got, want)
		}
	}
}
