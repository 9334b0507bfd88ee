package ctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

func (a *app) newStatusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the raft group: leader and every member the answering member can reach",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := o.commandContext(cmd.Context())
			defer cancel()
			var resp *tokenstorev1.StatusResponse
			err = o.connector(a.stderr).call(ctx, readRPC, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				r, err := tokenstorev1.NewClusterServiceClient(cc).Status(ctx, &tokenstorev1.StatusRequest{})
				resp = r
				return err
			})
			if err != nil {
				return failed("get cluster status", err)
			}
			return a.print(o, "get cluster status", statusView(resp), func() string { return statusTable(resp) })
		},
	}
}

// statusJSON is the JSON form of "status". Leader is null while the
// answering member knows no leader (during an election, or partitioned).
type statusJSON struct {
	ClusterID string       `json:"clusterId"`
	Leader    *leaderJSON  `json:"leader"`
	Revision  uint64       `json:"revision"`
	Member    string       `json:"member"`
	Members   []memberJSON `json:"members"`
}

type leaderJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// memberJSON is one member as it reported itself. Role is leader, follower,
// candidate or learner, or "unknown" when the member could not be asked.
type memberJSON struct {
	Name          string `json:"name"`
	ID            string `json:"id"`
	PeerAddress   string `json:"peerAddress"`
	ClientAddress string `json:"clientAddress"`
	Role          string `json:"role"`
	Term          uint64 `json:"term"`
	AppliedIndex  uint64 `json:"appliedIndex"`
	CommitIndex   uint64 `json:"commitIndex"`
	ServingReads  bool   `json:"servingReads"`
	Reachable     bool   `json:"reachable"`
	Error         string `json:"error"`
	// Clock is null when the member was not reachable or reports no clock.
	Clock *clockJSON `json:"clock"`
}

// clockJSON is a member's clock offset to the leader. Offset and
// OffsetSeconds are null before the first measurement ("unknown").
type clockJSON struct {
	Offset        *string  `json:"offset"`
	OffsetSeconds *float64 `json:"offsetSeconds"`
	RTTSeconds    *float64 `json:"rttSeconds"`
	TimeSource    string   `json:"timeSource"`
	Applied       bool     `json:"applied"`
	Refused       bool     `json:"refused"`
}

func statusView(resp *tokenstorev1.StatusResponse) statusJSON {
	v := statusJSON{
		ClusterID: hexID(resp.GetClusterId()),
		Revision:  resp.GetHeader().GetRevision(),
		Member:    resp.GetHeader().GetMember(),
		Members:   []memberJSON{},
	}
	if resp.GetLeaderId() != 0 {
		v.Leader = &leaderJSON{ID: hexID(resp.GetLeaderId()), Name: resp.GetLeaderName()}
	}
	for _, m := range resp.GetMembers() {
		v.Members = append(v.Members, memberJSON{
			Name:          m.GetName(),
			ID:            hexID(m.GetId()),
			PeerAddress:   m.GetPeerAddress(),
			ClientAddress: m.GetClientAddress(),
			Role:          memberRole(m.GetRole()),
			Term:          m.GetTerm(),
			AppliedIndex:  m.GetAppliedIndex(),
			CommitIndex:   m.GetCommitIndex(),
			ServingReads:  m.GetServingReads(),
			Reachable:     m.GetReachable(),
			Error:         m.GetError(),
			Clock:         clockView(m.GetClock()),
		})
	}
	return v
}

// memberRole is the short role name; an unset role means the answering
// member could not learn it.
func memberRole(r tokenstorev1.MemberRole) string {
	if r == tokenstorev1.MemberRole_MEMBER_ROLE_UNSPECIFIED {
		return "unknown"
	}
	return enumName(r.String(), "MEMBER_ROLE_")
}

// statusTable renders "status": a cluster line, then one row per member.
// For a member that could not be reached its role, term and indexes are
// shown as "-": they were not reported, and a 0 would read as a fact.
func statusTable(resp *tokenstorev1.StatusResponse) string {
	var b strings.Builder
	leader := "none known"
	if resp.GetLeaderId() != 0 {
		leader = fmt.Sprintf("%s (%s)", cell(resp.GetLeaderName()), hexID(resp.GetLeaderId()))
	}
	fmt.Fprintf(&b, "Cluster %s, leader %s\n\n", hexID(resp.GetClusterId()), leader)
	rows := make([][]string, 0, len(resp.GetMembers()))
	for _, m := range resp.GetMembers() {
		role, term, applied, commit, reads, clock := "-", "-", "-", "-", "-", "-"
		if m.GetReachable() {
			role = memberRole(m.GetRole())
			term = strconv.FormatUint(m.GetTerm(), 10)
			applied = strconv.FormatUint(m.GetAppliedIndex(), 10)
			commit = strconv.FormatUint(m.GetCommitIndex(), 10)
			reads = yesNo(m.GetServingReads())
			clock = clockCell(m.GetClock())
		}
		rows = append(rows, []string{
			m.GetName(), hexID(m.GetId()), m.GetPeerAddress(), m.GetClientAddress(),
			role, term, applied, commit, reads, clock, yesNo(m.GetReachable()), m.GetError(),
		})
	}
	b.WriteString(table([]string{"NAME", "ID", "PEER ADDRESS", "CLIENT ADDRESS", "ROLE", "TERM", "APPLIED", "COMMIT", "SERVING READS", "CLOCK OFFSET", "REACHABLE", "ERROR"}, rows))
	b.WriteString(answeredBy(resp.GetHeader()))
	return b.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func clockView(c *tokenstorev1.MemberClock) *clockJSON {
	if c == nil {
		return nil
	}
	v := &clockJSON{TimeSource: c.GetTimeSource(), Applied: c.GetApplied(), Refused: c.GetRefused()}
	if c.GetOffset() != nil {
		off, rtt := c.GetOffset().AsDuration().Seconds(), c.GetRtt().AsDuration().Seconds()
		s := signedDuration(c.GetOffset().AsDuration())
		v.Offset, v.OffsetSeconds, v.RTTSeconds = &s, &off, &rtt
	}
	return v
}

// clockCell is the CLOCK OFFSET column: the leader's clock minus the
// member's ("+2m0.001s": the member is 2 minutes behind), "unknown" before
// the first measurement, "-" when not reported. A suffix says when the
// member does not correct by it: "(local time)" with --time-source local,
// "(REFUSED)" when it exceeds --max-clock-correction.
func clockCell(c *tokenstorev1.MemberClock) string {
	if c == nil {
		return "-"
	}
	s := "unknown"
	if c.GetOffset() != nil {
		s = signedDuration(c.GetOffset().AsDuration())
	}
	switch {
	case c.GetRefused():
		s += " (REFUSED)"
	case c.GetTimeSource() == "local":
		s += " (local time)"
	}
	return s
}

// signedDuration is d rounded to the millisecond, with its sign.
func signedDuration(d time.Duration) string {
	d = d.Round(time.Millisecond)
	if d >= 0 {
		return "+" + d.String()
	}
	return d.String()
}
