package clustertest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// TestBootstrapExpectLateFoundingMember: a founding member of a
// --bootstrap-expect set that decides only after the other two have formed
// the cluster (made certain with the test-only --test-bootstrap-late) must
// take its place in that set under the id the others planned for it, not
// ask to join: a join would make the cluster "replace" it under a new id,
// churning membership every time the set starts unevenly.
func TestBootstrapExpectLateFoundingMember(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, _ := gossipCluster(t, 3, 3)
	useCluster(t, c)
	late := c.Members[2]
	late.Flags = append(late.Flags, "--test-bootstrap-late")
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}

	// n1 and n2 form the cluster without n3 (2 of 3 voters is a quorum);
	// the planned n3 is already a voter in it. (n3 may bootstrap and even
	// win an election right after: which member leads does not matter.)
	if _, err := c.Leader(ctx); err != nil {
		t.Fatal(err)
	}
	planned := map[string]uint64{}
	r, err := c.Members[0].Cluster.ListMembers(ctx, &tokenstorev1.ListMembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range r.GetMembers() {
		planned[m.GetName()] = m.GetId()
	}
	if len(planned) != 3 || planned[late.Name] == 0 {
		t.Fatalf("cluster formed with members %v, want the three planned (n3 included)", planned)
	}

	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitVoters(ctx, t, c.Members[0], "n1", "n2", "n3")
	for _, m := range c.Members {
		r, err := m.Cluster.ListMembers(ctx, &tokenstorev1.ListMembersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.GetMembers()) != 3 {
			t.Fatalf("%s lists %d members, want 3", m.Name, len(r.GetMembers()))
		}
		for _, x := range r.GetMembers() {
			if planned[x.GetName()] != x.GetId() {
				t.Fatalf("%s lists %s as %016x, planned %016x: the late member was replaced", m.Name, x.GetName(), x.GetId(), planned[x.GetName()])
			}
		}
	}
	logOf := func(name, path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("log of %s: %v", name, err)
		}
		return string(b)
	}
	if l := logOf(late.Name, late.LogPath); !strings.Contains(l, "bootstrapping a new cluster with the members gossip shows") {
		t.Errorf("%s did not bootstrap as a founding member", late.Name)
	}
	for _, m := range c.Members {
		if l := logOf(m.Name, m.LogPath); strings.Contains(l, "replacing member") || strings.Contains(l, "joined existing cluster") {
			t.Errorf("%s's log shows a join or replacement of the late founding member", m.Name)
		}
	}

	tok := create(ctx, t, c.Members[0], "late")
	if v := verify(ctx, t, late, tok.GetBearerToken(), tokenstorev1.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE); !v.GetAuthenticated() {
		t.Fatalf("%s refuses a token created at n1: %v", late.Name, v.GetReason())
	}
}
