package ctl

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

func TestStatusShowsClockOffset(t *testing.T) {
	resp := &tokenstorev1.StatusResponse{ClusterId: 0xc1, LeaderId: 0xa1, LeaderName: "n1", Members: []*tokenstorev1.MemberStatus{
		{Name: "n1", Id: 0xa1, Reachable: true, Role: tokenstorev1.MemberRole_MEMBER_ROLE_LEADER,
			Clock: &tokenstorev1.MemberClock{Offset: durationpb.New(0), Rtt: durationpb.New(0), TimeSource: "cluster", Applied: true}},
		{Name: "n2", Id: 0xa2, Reachable: true, Role: tokenstorev1.MemberRole_MEMBER_ROLE_FOLLOWER,
			Clock: &tokenstorev1.MemberClock{Offset: durationpb.New(2*time.Minute + 1400*time.Microsecond), Rtt: durationpb.New(3 * time.Millisecond), TimeSource: "cluster", Applied: true}},
		{Name: "n3", Id: 0xa3, Reachable: true, Role: tokenstorev1.MemberRole_MEMBER_ROLE_FOLLOWER,
			Clock: &tokenstorev1.MemberClock{Offset: durationpb.New(-90 * time.Second), TimeSource: "local"}},
		{Name: "n4", Id: 0xa4, Reachable: true, Role: tokenstorev1.MemberRole_MEMBER_ROLE_FOLLOWER,
			Clock: &tokenstorev1.MemberClock{Offset: durationpb.New(time.Hour), TimeSource: "cluster", Refused: true}},
		{Name: "n5", Id: 0xa5, Reachable: true, Role: tokenstorev1.MemberRole_MEMBER_ROLE_FOLLOWER,
			Clock: &tokenstorev1.MemberClock{TimeSource: "cluster"}},
		{Name: "n6", Id: 0xa6, Reachable: true, Role: tokenstorev1.MemberRole_MEMBER_ROLE_FOLLOWER}, // older member
		{Name: "n7", Id: 0xa7, Error: "connection refused"},
	}}
	out := statusTable(resp)
	lines := strings.Split(out, "\n")
	header := lines[2]
	col := strings.Index(header, "CLOCK OFFSET")
	if col < 0 {
		t.Fatalf("no CLOCK OFFSET column:\n%s", out)
	}
	want := map[string]string{"n1": "+0s", "n2": "+2m0.001s", "n3": "-1m30s (local time)", "n4": "+1h0m0s (REFUSED)", "n5": "unknown", "n6": "-", "n7": "-"}
	for _, l := range lines[3:] {
		f := strings.Fields(l)
		if len(f) == 0 || want[f[0]] == "" {
			continue
		}
		if got := l[col:]; !strings.HasPrefix(got, want[f[0]]+" ") {
			t.Errorf("%s: CLOCK OFFSET cell %q, want %q", f[0], got, want[f[0]])
		}
		delete(want, f[0])
	}
	if len(want) > 0 {
		t.Errorf("rows missing for %v:\n%s", want, out)
	}

	b, err := json.Marshal(statusView(resp))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Members []struct {
			Name  string
			Clock *struct {
				Offset        *string
				OffsetSeconds *float64
				RTTSeconds    *float64
				TimeSource    string
				Applied       bool
				Refused       bool
			}
		}
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	n2 := v.Members[1].Clock
	if n2 == nil || n2.OffsetSeconds == nil || *n2.OffsetSeconds != 120.0014 || *n2.Offset != "+2m0.001s" || *n2.RTTSeconds != 0.003 || !n2.Applied || n2.TimeSource != "cluster" {
		t.Errorf("n2 clock JSON: %s", b)
	}
	if c := v.Members[4].Clock; c == nil || c.Offset != nil || c.OffsetSeconds != nil {
		t.Errorf("n5 (not measured) clock JSON should have a null offset: %s", b)
	}
	if v.Members[5].Clock != nil || v.Members[6].Clock != nil {
		t.Errorf("unreported clocks should be null: %s", b)
	}
	if !strings.Contains(string(b), `"clock":null`) {
		t.Errorf("JSON key of the clock is not \"clock\": %s", b)
	}
}

func TestClockCellSaysOutlierOwnClockAndSlewing(t *testing.T) {
	d := durationpb.New
	for _, tc := range []struct {
		c    *tokenstorev1.MemberClock
		want string
	}{
		{&tokenstorev1.MemberClock{Offset: d(2 * time.Minute), Correction: d(2 * time.Minute), TimeSource: "cluster", Applied: true, Outlier: true, Clocks: 3, Voters: 3}, "+2m0s (OUTLIER)"},
		{&tokenstorev1.MemberClock{TimeSource: "cluster", Applied: true, Clocks: 1, Voters: 3}, "unknown (own clock)"},
		{&tokenstorev1.MemberClock{Offset: d(time.Minute), Correction: d(time.Minute), TimeSource: "cluster", Applied: true, Clocks: 1, Voters: 3, OlderLeader: true}, "+1m0s (leader's clock)"},
		{&tokenstorev1.MemberClock{Offset: d(0), Correction: d(30 * time.Second), TimeSource: "cluster", Applied: true, Clocks: 3, Voters: 3}, "+0s (slewing)"},
		{&tokenstorev1.MemberClock{Offset: d(time.Millisecond), Correction: d(time.Millisecond / 2), TimeSource: "cluster", Applied: true, Clocks: 3, Voters: 3}, "+1ms"},
	} {
		if got := clockCell(tc.c); got != tc.want {
			t.Errorf("clockCell(%v) = %q, want %q", tc.c, got, tc.want)
		}
	}
	v := clockView(&tokenstorev1.MemberClock{Offset: d(0), TimeSource: "cluster", Clocks: 3, Voters: 3, Synced: true,
		Peers: []*tokenstorev1.PeerClock{{Name: "n3", Id: 0xa3, Offset: d(-2 * time.Minute), Age: d(time.Second), Counted: true}}})
	if len(v.Peers) != 1 || v.Peers[0].Name != "n3" || v.Peers[0].OffsetSeconds != -120 || !v.Peers[0].Counted || v.Clocks != 3 || !v.Synced {
		t.Errorf("clock JSON %+v", v)
	}
}
