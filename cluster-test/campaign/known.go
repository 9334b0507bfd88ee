package campaign

import (
	"strings"

	"github.com/tokenstore/tokenstore/cluster-test/history"
)

// knownIssue is a server bug the checks have found and that is not fixed
// yet. Its violations are reported on every run, marked KNOWN, but fail
// the run only with Config.Strict, so that `make test` stays green while
// the fix is pending. Remove the entry with the fix.
type knownIssue struct {
	ID    string
	Issue string
	Match func(history.Violation) bool
}

var knownIssues = []knownIssue{
	{
		ID: "authenticate-revision",
		Issue: "Authenticate reports AppliedIndex() read before the in-memory lookup; the in-memory index is " +
			"changed during the apply transaction and the applied index stored after it commits, so the answer " +
			"may come from a newer state than its revision, and a GetToken (revision read inside its bbolt " +
			"transaction) followed by an Authenticate on the same member can show the revision going back by one batch",
		Match: func(v history.Violation) bool {
			if v.Check != "revision went back" && v.Check != "answer not from its revision" {
				return false
			}
			for _, op := range v.Ops {
				if op.Kind == history.Verify {
					return true
				}
			}
			return false
		},
	},
	{
		ID: "snapshot-install-nil-state",
		Issue: "installSnapshot sets Node.state to nil between closing the old state database and opening the " +
			"received one; any read in that window (Status, GetToken, ListTokens, StateHash ...) dereferences nil " +
			"in Node.view and the member crashes (seen on a member that joined and was sent a snapshot)",
		Match: func(v history.Violation) bool {
			return v.Check == "member crashed" && strings.Contains(v.Detail, "raftstore.(*Node).view")
		},
	},
}

// knownIssueOf returns the known issue v is an instance of, if any.
func knownIssueOf(v history.Violation) *knownIssue {
	for i := range knownIssues {
		if knownIssues[i].Match(v) {
			return &knownIssues[i]
		}
	}
	return nil
}
