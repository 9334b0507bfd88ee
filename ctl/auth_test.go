package ctl

import (
	"strings"
	"testing"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// TestCanISendsTheQuestion: the arguments become the request kubectl's
// can-i would make; yes exits 0, no exits 1 with nothing on stderr.
func TestCanISendsTheQuestion(t *testing.T) {
	t.Parallel()
	d := &rbacDouble{}
	addr := d.start(t)
	for _, c := range []struct {
		args []string
		want *tokenstorev1.AuthorizeRequest
	}{
		{[]string{"get", "pods", "--as", "alice"}, &tokenstorev1.AuthorizeRequest{User: &tokenstorev1.UserInfo{Username: "alice"},
			ResourceAttributes: &tokenstorev1.ResourceAttributes{Verb: "get", Resource: "pods"}}},
		{[]string{"update", "deployments.apps/scale", "web", "-n", "dev", "--as", "bob", "--as-group", "devs", "--as-group", "a,b"},
			&tokenstorev1.AuthorizeRequest{User: &tokenstorev1.UserInfo{Username: "bob", Groups: []string{"devs", "a,b"}},
				ResourceAttributes: &tokenstorev1.ResourceAttributes{Namespace: "dev", Verb: "update", Group: "apps", Resource: "deployments", Subresource: "scale", Name: "web"}}},
		{[]string{"get", "/healthz/etcd", "--as-group", "ops", "--consistency", "linearizable"}, &tokenstorev1.AuthorizeRequest{User: &tokenstorev1.UserInfo{Groups: []string{"ops"}},
			NonResourceAttributes: &tokenstorev1.NonResourceAttributes{Verb: "get", Path: "/healthz/etcd"}, Consistency: tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE}},
	} {
		runCLI(t, addr, append([]string{"auth", "can-i"}, c.args...)...)
		assertRequest(t, d.last(t), c.want)
	}

	yes := runCLI(t, addr, "auth", "can-i", "get", "pods", "--as", "alice")
	if yes.code != ExitOK || !strings.HasPrefix(yes.stdout, "yes\nRBAC: allowed by ClusterRoleBinding \"b\"") || yes.stderr != "" {
		t.Errorf("yes: %d %q %q", yes.code, yes.stdout, yes.stderr)
	}
	no := runCLI(t, addr, "auth", "can-i", "delete", "pods", "--as", "alice")
	if no.code != ExitFailed || !strings.HasPrefix(no.stdout, "no\n") || no.stderr != "" {
		t.Errorf("no: %d %q %q", no.code, no.stdout, no.stderr)
	}
	quiet := runCLI(t, addr, "auth", "can-i", "delete", "pods", "--as", "alice", "-q")
	if quiet.code != ExitFailed || quiet.stdout != "" || quiet.stderr != "" {
		t.Errorf("quiet no: %d %q %q", quiet.code, quiet.stdout, quiet.stderr)
	}
	js := runCLI(t, addr, "auth", "can-i", "get", "pods", "--as", "alice", "-o", "json")
	m := decodeObject(t, js.stdout)
	if m["allowed"] != true || m["binding"] != "ClusterRoleBinding/b" || m["role"] != "ClusterRole/r" || m["subject"] != "User:alice" || m["rbacRevision"] != float64(40) {
		t.Errorf("json: %v", m)
	}

	for _, args := range [][]string{
		{"get", "pods"},                       // nobody to ask about
		{"get", "--as", "alice"},              // no resource
		{"get", "pods/log/x", "--as", "a"},    // two subresources
		{"get", "/healthz", "x", "--as", "a"}, // name on a URL
		{"get", "/healthz", "-n", "x", "--as", "a"},
		{"get", "pods", "a", "b", "--as", "a"},
		{"--list", "pods", "--as", "a"},
	} {
		if res := runCLI(t, addr, append([]string{"auth", "can-i"}, args...)...); res.code != ExitUsage {
			t.Errorf("can-i %v: exit %d, want usage (%s)", args, res.code, res.stderr)
		}
	}
}

// TestCanIList: rules broken down per resource and merged as kubectl
// prints them.
func TestCanIList(t *testing.T) {
	t.Parallel()
	d := &rbacDouble{}
	addr := d.start(t)
	res := runCLI(t, addr, "auth", "can-i", "--list", "--as", "alice", "-n", "dev")
	if res.code != ExitOK {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	assertRequest(t, d.last(t), &tokenstorev1.ListRulesRequest{User: &tokenstorev1.UserInfo{Username: "alice"}, Namespace: "dev"})
	want := []string{
		"Resources         Non-Resource URLs   Resource Names   Verbs",
		"deployments.apps  []                  [web]            [update]",
		"pods              []                  []               [get list watch]",
		"pods/log          []                  []               [get list]",
		"                  [/healthz]          []               [get]",
	}
	lines := strings.Split(res.stdout, "\n")
	for i, w := range want {
		if i >= len(lines) || strings.Join(strings.Fields(lines[i]), " ") != strings.Join(strings.Fields(w), " ") {
			t.Fatalf("--list output:\n%s\nwant lines like:\n%s", res.stdout, strings.Join(want, "\n"))
		}
	}
	if !strings.Contains(res.stdout, "(RBAC revision 40, revision 42, answered by m1)") {
		t.Errorf("no revision line:\n%s", res.stdout)
	}
}
