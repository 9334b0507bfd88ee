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

// clockJSON is a member's clock: its offset to cluster time (the median
// of the voters' clocks; an older member reports its offset to the
// leader's clock). Offset and OffsetSeconds are null before the member has
// measured another member's clock ("unknown").
type clockJSON struct {
	Offset            *string         `json:"offset"`
	OffsetSeconds     *float64        `json:"offsetSeconds"`
	RTTSeconds        *float64        `json:"rttSeconds"`
	CorrectionSeconds *float64        `json:"correctionSeconds"`
	TimeSource        string          `json:"timeSource"`
	Applied           bool            `json:"applied"`
	Refused           bool            `json:"refused"`
	Outlier           bool            `json:"outlier"`
	Clocks            uint32          `json:"clocks"`
	Voters            uint32          `json:"voters"`
	Synced            bool            `json:"synced"`
	OlderLeader       bool            `json:"olderLeader"`
	Peers             []peerClockJSON `json:"peers"`
}

// peerClockJSON is a member's measurement of another voter's clock.
type peerClockJSON struct {
	Name          string  `json:"name"`
	ID            string  `json:"id"`
	OffsetSeconds float64 `json:"offsetSeconds"`
	RTTSeconds    float64 `json:"rttSeconds"`
	AgeSeconds    float64 `json:"ageSeconds"`
	Counted       bool    `json:"counted"`
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
	v := &clockJSON{
		TimeSource: c.GetTimeSource(), Applied: c.GetApplied(), Refused: c.GetRefused(), Outlier: c.GetOutlier(),
		Clocks: c.GetClocks(), Voters: c.GetVoters(), Synced: c.GetSynced(), OlderLeader: c.GetOlderLeader(), Peers: []peerClockJSON{},
	}
	if c.GetOffset() != nil {
		off, rtt := c.GetOffset().AsDuration().Seconds(), c.GetRtt().AsDuration().Seconds()
		s := signedDuration(c.GetOffset().AsDuration())
		v.Offset, v.OffsetSeconds, v.RTTSeconds = &s, &off, &rtt
	}
	if c.GetCorrection() != nil {
		corr := c.GetCorrection().AsDuration().Seconds()
		v.CorrectionSeconds = &corr
	}
	for _, p := range c.GetPeers() {
		v.Peers = append(v.Peers, peerClockJSON{
			Name: p.GetName(), ID: hexID(p.GetId()), OffsetSeconds: p.GetOffset().AsDuration().Seconds(),
			RTTSeconds: p.GetRtt().AsDuration().Seconds(), AgeSeconds: p.GetAge().AsDuration().Seconds(), Counted: p.GetCounted(),
		})
	}
	return v
}

// clockCell is the CLOCK OFFSET column: cluster time minus the member's
// clock ("+2m0.001s": the member's clock is 2 minutes behind), "unknown"
// before the member has measured another's clock, "-" when not reported.
// Suffixes: "(REFUSED)" when the offset exceeds --max-clock-correction and
// is not corrected, "(local time)" with --time-source local, "(OUTLIER)"
// when the member's clock is further than --clock-outlier-threshold from
// the cluster's (corrected, but its host's clock needs fixing), "(own
// clock)" when it knows no other member's clock, "(leader's clock)" while
// it follows a leader of the older release that took the leader's clock,
// "(slewing)" while its correction has not yet come down to the offset.
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
	case c.GetOutlier():
		s += " (OUTLIER)"
	}
	switch {
	case c.GetOlderLeader():
		s += " (leader's clock)"
	case c.GetVoters() > 1 && c.GetClocks() == 1:
		s += " (own clock)"
	}
	if c.GetApplied() && c.GetCorrection() != nil && c.GetOffset() != nil {
		if d := c.GetCorrection().AsDuration() - c.GetOffset().AsDuration(); d > time.Millisecond || d < -time.Millisecond {
			s += " (slewing)"
		}
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
