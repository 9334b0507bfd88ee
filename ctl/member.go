package ctl

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// newMemberCommand groups the membership commands. Every change prints the
// final membership as the cluster applied it, never a silent no-op.
func (a *app) newMemberCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "List and change the raft membership",
		Args:  cobra.ArbitraryArgs,
		RunE:  a.missingCommand,
	}
	cmd.AddCommand(a.newMemberListCommand(), a.newMemberAddCommand(), a.newMemberPromoteCommand(), a.newMemberRemoveCommand())
	return cmd
}

// memberView is the JSON form of one member.
type memberView struct {
	Name          string `json:"name"`
	ID            string `json:"id"`
	PeerAddress   string `json:"peerAddress"`
	ClientAddress string `json:"clientAddress"`
	Role          string `json:"role"`
	Leader        bool   `json:"leader"`
	Health        string `json:"health"`
	AppliedIndex  uint64 `json:"appliedIndex"`
	Lag           uint64 `json:"lag"`
	Reachable     bool   `json:"reachable"`
}

type membersView struct {
	ClusterID        string       `json:"clusterId,omitempty"`
	FailureTolerance *int32       `json:"failureTolerance,omitempty"`
	Members          []memberView `json:"members"`
	Revision         uint64       `json:"revision"`
	Member           string       `json:"member"`
}

func toMemberViews(ms []*tokenstorev1.Member) []memberView {
	out := []memberView{}
	for _, m := range ms {
		role := "voter"
		if m.GetLearner() {
			role = "learner"
		}
		out = append(out, memberView{
			Name: m.GetName(), ID: hexID(m.GetId()), PeerAddress: m.GetPeerAddress(), ClientAddress: m.GetClientAddress(),
			Role: role, Leader: m.GetLeader(), Health: m.GetHealth(), AppliedIndex: m.GetAppliedIndex(), Lag: m.GetLag(), Reachable: m.GetReachable(),
		})
	}
	return out
}

func membersTable(v membersView, h *tokenstorev1.ResponseHeader) string {
	rows := [][]string{}
	for _, m := range v.Members {
		leader := ""
		if m.Leader {
			leader = "*"
		}
		applied, lag := "-", "-"
		if m.Reachable {
			applied, lag = strconv.FormatUint(m.AppliedIndex, 10), strconv.FormatUint(m.Lag, 10)
		}
		rows = append(rows, []string{m.Name, m.ID, cell(m.PeerAddress), cell(m.ClientAddress), m.Role, leader, m.Health, applied, lag})
	}
	out := table([]string{"NAME", "ID", "PEER ADDRESS", "CLIENT ADDRESS", "ROLE", "LEADER", "GOSSIP", "APPLIED", "LAG"}, rows)
	if v.FailureTolerance != nil {
		out += fmt.Sprintf("failure tolerance: %d more voter(s) may fail before quorum is lost\n", *v.FailureTolerance)
	}
	return out + answeredBy(h) + "\n"
}

func (a *app) printMembers(o *options, what string, h *tokenstorev1.ResponseHeader, ms []*tokenstorev1.Member, tol *int32, cid uint64) error {
	v := membersView{Members: toMemberViews(ms), Revision: h.GetRevision(), Member: h.GetMember(), FailureTolerance: tol}
	if cid != 0 {
		v.ClusterID = hexID(cid)
	}
	return a.print(o, what, v, func() string { return membersTable(v, h) })
}

func (a *app) clusterCall(cmd *cobra.Command, kind rpcKind, what string, fn func(context.Context, tokenstorev1.ClusterServiceClient) error) (*options, error) {
	o, err := a.begin(cmd)
	if err != nil {
		return nil, err
	}
	ctx, cancel := o.commandContext(cmd.Context())
	defer cancel()
	err = o.connector(a.stderr).call(ctx, kind, func(ctx context.Context, cc grpc.ClientConnInterface) error {
		return fn(ctx, tokenstorev1.NewClusterServiceClient(cc))
	})
	if err != nil {
		return nil, failed(what, err)
	}
	return o, nil
}

func (a *app) newMemberListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List members: role, leader, gossip health, applied index and lag",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp *tokenstorev1.ListMembersResponse
			o, err := a.clusterCall(cmd, readRPC, "list members", func(ctx context.Context, c tokenstorev1.ClusterServiceClient) error {
				var err error
				resp, err = c.ListMembers(ctx, &tokenstorev1.ListMembersRequest{})
				return err
			})
			if err != nil {
				return err
			}
			tol := resp.GetFailureTolerance()
			return a.printMembers(o, "list members", resp.GetHeader(), resp.GetMembers(), &tol, resp.GetClusterId())
		},
	}
}

func (a *app) newMemberAddCommand() *cobra.Command {
	var peer string
	var learner bool
	cmd := &cobra.Command{
		Use:   "add NAME --peer-url HOST:PORT [--learner]",
		Short: "Add a member; start it afterwards with --initial-cluster-state existing (or --join)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if peer == "" {
				return usageErrorf("member add: --peer-url is required")
			}
			var resp *tokenstorev1.AddMemberResponse
			o, err := a.clusterCall(cmd, writeRPC, "add member "+args[0], func(ctx context.Context, c tokenstorev1.ClusterServiceClient) error {
				var err error
				resp, err = c.AddMember(ctx, &tokenstorev1.AddMemberRequest{Name: args[0], PeerAddress: peer, Learner: learner})
				return err
			})
			if err != nil {
				return err
			}
			return a.printMembers(o, "add member", resp.GetHeader(), resp.GetMembers(), nil, 0)
		},
	}
	cmd.Flags().StringVar(&peer, "peer-url", "", "peer address of the new member (host:port)")
	cmd.Flags().BoolVar(&learner, "learner", false, "add as a non-voting learner (promote it once caught up)")
	return cmd
}

func (a *app) newMemberPromoteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "promote NAME",
		Short: "Make a learner a voter",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp *tokenstorev1.PromoteMemberResponse
			o, err := a.clusterCall(cmd, writeRPC, "promote member "+args[0], func(ctx context.Context, c tokenstorev1.ClusterServiceClient) error {
				var err error
				resp, err = c.PromoteMember(ctx, &tokenstorev1.PromoteMemberRequest{Name: args[0]})
				return err
			})
			if err != nil {
				return err
			}
			return a.printMembers(o, "promote member", resp.GetHeader(), resp.GetMembers(), nil, 0)
		},
	}
}

func (a *app) newMemberRemoveCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "remove NAME [--force]",
		Short: "Remove a member (refused when quorum would be lost, unless --force)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp *tokenstorev1.RemoveMemberResponse
			o, err := a.clusterCall(cmd, writeRPC, "remove member "+args[0], func(ctx context.Context, c tokenstorev1.ClusterServiceClient) error {
				var err error
				resp, err = c.RemoveMember(ctx, &tokenstorev1.RemoveMemberRequest{Name: args[0], Force: force})
				return err
			})
			if err != nil {
				return err
			}
			return a.printMembers(o, "remove member", resp.GetHeader(), resp.GetMembers(), nil, 0)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove even if the remaining reachable voters are not a quorum")
	return cmd
}

// newLeaderCommand groups leadership commands.
func (a *app) newLeaderCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "leader", Short: "Leadership", Args: cobra.ArbitraryArgs, RunE: a.missingCommand}
	cmd.AddCommand(&cobra.Command{
		Use:   "transfer [NAME]",
		Short: "Hand leadership to NAME (default: the most caught-up voter)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			var resp *tokenstorev1.TransferLeadershipResponse
			o, err := a.clusterCall(cmd, writeRPC, "transfer leadership", func(ctx context.Context, c tokenstorev1.ClusterServiceClient) error {
				var err error
				resp, err = c.TransferLeadership(ctx, &tokenstorev1.TransferLeadershipRequest{Name: name})
				return err
			})
			if err != nil {
				return err
			}
			v := map[string]any{"leader": resp.GetLeader(), "revision": resp.GetHeader().GetRevision(), "member": resp.GetHeader().GetMember()}
			return a.print(o, "transfer leadership", v, func() string { return "leader is now " + resp.GetLeader() + "\n" })
		},
	})
	return cmd
}
