package campaign

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tokenstore/tokenstore/cluster-test/history"
)

func TestCrashMatchesKnownIssue(t *testing.T) {
	log := `time=2026-11-23T10:35:19.313Z level=INFO msg="received snapshot" member=n4
panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x10 pc=0x9f3749]

goroutine 80 [running]:
github.com/tokenstore/tokenstore/raftstore.(*Node).view(0x1927c60?, 0x32d04958b200?)
	/work/main/raftstore/node.go:292 +0x89
github.com/tokenstore/tokenstore/raftstore.(*Node).members(0x0?)
	/work/main/raftstore/node.go:280 +0x3d
github.com/tokenstore/tokenstore/api/tokenstore/v1._ClusterService_Status_Handler.func1({0x1046238?, 0x32d04990d590?}, {0xedcec0?, 0x32d04990d5c0?})
`
	path := filepath.Join(t.TempDir(), "n4.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	v := history.Violation{Check: "member crashed", Detail: "n4 exited on its own: exit status 2" + panicOf(path)}
	k := knownIssueOf(v)
	if k == nil || k.ID != "snapshot-install-nil-state" {
		t.Fatalf("crash not matched to its known issue: %v\n%s", k, v.Detail)
	}
	if other := knownIssueOf(history.Violation{Check: "member crashed", Detail: "n1 exited on its own: exit status 1"}); other != nil {
		t.Fatalf("an unexplained crash matched %s", other.ID)
	}
}
