package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"sigs.k8s.io/yaml"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/oidc"
)

// maxOIDCInput bounds what "oidc put" reads: issuer configurations are a
// few kilobytes each.
const maxOIDCInput = 4 << 20

func (a *app) newOIDCCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "oidc",
		Short: "Put, inspect, refresh and delete the OIDC issuers whose JWTs are accepted",
		Long: `Manage the replicated OIDC issuers. A bearer token that is a JWT is
validated against them (matched by its iss claim) with the key sets the leader
fetched and replicated, so every member accepts the same JWTs. An issuer is
configured like a Kubernetes JWTAuthenticator (apiserver.config.k8s.io); see
docs/oidc.md.`,
		Args: cobra.ArbitraryArgs,
		RunE: a.missingCommand,
	}
	cmd.AddCommand(a.newOIDCPutCommand(), a.newOIDCListCommand(), a.newOIDCGetCommand(), a.newOIDCDeleteCommand(), a.newOIDCRefreshCommand())
	return cmd
}

// oidcCall runs one OIDCService call with the command's options.
func (a *app) oidcCall(cmd *cobra.Command, o *options, kind rpcKind, what string, fn func(context.Context, tokenstorev1.OIDCServiceClient) error) error {
	ctx, cancel := o.commandContext(cmd.Context())
	defer cancel()
	err := o.connector(a.stderr).call(ctx, kind, func(ctx context.Context, cc grpc.ClientConnInterface) error {
		return fn(ctx, tokenstorev1.NewOIDCServiceClient(cc))
	})
	if err != nil {
		return failed(what, err)
	}
	return nil
}

// issuerView is the JSON form of an issuer.
type issuerView struct {
	URL            string          `json:"url"`
	Config         json.RawMessage `json:"config"`
	KeyIDs         []string        `json:"keyIds"`
	KeysFetchedAt  string          `json:"keysFetchedAt,omitempty"`
	ConfigRevision uint64          `json:"configRevision"`
	KeysRevision   uint64          `json:"keysRevision"`
}

func viewIssuer(is *tokenstorev1.OIDCIssuer) issuerView {
	return issuerView{URL: is.GetUrl(), Config: is.GetConfig(), KeyIDs: append([]string{}, is.GetKeyIds()...),
		KeysFetchedAt: jsonTime(is.GetKeysFetchedAt()), ConfigRevision: is.GetConfigRevision(), KeysRevision: is.GetKeysRevision()}
}

func issuerRow(is *tokenstorev1.OIDCIssuer) []string {
	auds := ""
	if c, err := oidc.DecodeConfig(is.GetConfig()); err == nil {
		auds = strings.Join(c.Issuer.Audiences, ",")
	}
	return []string{is.GetUrl(), auds, strconv.Itoa(len(is.GetKeyIds())), tableTime(is.GetKeysFetchedAt(), "never"),
		strconv.FormatUint(is.GetConfigRevision(), 10), strconv.FormatUint(is.GetKeysRevision(), 10)}
}

var issuerHeader = []string{"URL", "AUDIENCES", "KEYS", "KEYS FETCHED", "CONFIG REV", "KEYS REV"}

// printIssuers prints issuers as a table, or JSON.
func (a *app) printIssuers(o *options, what string, h *tokenstorev1.ResponseHeader, list []*tokenstorev1.OIDCIssuer, extra map[string]any) error {
	v := map[string]any{"issuers": []issuerView{}, "revision": h.GetRevision(), "member": h.GetMember()}
	for k, x := range extra {
		v[k] = x
	}
	var rows [][]string
	views := []issuerView{}
	for _, is := range list {
		views = append(views, viewIssuer(is))
		rows = append(rows, issuerRow(is))
	}
	v["issuers"] = views
	return a.print(o, what, v, func() string { return table(issuerHeader, rows) + answeredBy(h) })
}

func (a *app) newOIDCPutCommand() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "put -f FILE [-f FILE...]",
		Short: "Create or replace issuers from YAML or JSON (a JWTAuthenticator or an AuthenticationConfiguration), all in one entry",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			if len(files) == 0 {
				return usageErrorf("oidc put: give -f FILE (or -f - for standard input)")
			}
			var docs [][]byte
			for _, f := range files {
				var b []byte
				read := func(name string, r io.Reader) error {
					var err error
					b, err = io.ReadAll(io.LimitReader(r, maxOIDCInput+1))
					if err != nil {
						return fmt.Errorf("read %s: %w", name, err)
					}
					if len(b) > maxOIDCInput {
						return fmt.Errorf("%s is larger than %d MiB", name, maxOIDCInput>>20)
					}
					// Checked here too, so a mistake names its file before
					// anything is sent.
					if _, err := oidc.ParseDocuments(b); err != nil {
						return fmt.Errorf("%s: %w", name, err)
					}
					return nil
				}
				if f == "-" {
					err = read("standard input", a.stdin)
				} else {
					err = readFile(f, read)
				}
				if err != nil {
					return err
				}
				docs = append(docs, b)
			}
			var resp *tokenstorev1.PutIssuersResponse
			err = a.oidcCall(cmd, o, writeRPC, "put OIDC issuers", func(ctx context.Context, c tokenstorev1.OIDCServiceClient) error {
				r, err := c.PutIssuers(ctx, &tokenstorev1.PutIssuersRequest{Documents: docs})
				resp = r
				return err
			})
			if err != nil {
				return err
			}
			return a.printIssuers(o, "put OIDC issuers", resp.GetHeader(), resp.GetIssuers(), nil)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, `file with issuer configuration(s), "-" for standard input`)
	return cmd
}

func (a *app) newOIDCListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the issuers with their key counts and revisions",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			var resp *tokenstorev1.ListIssuersResponse
			err = a.oidcCall(cmd, o, readRPC, "list OIDC issuers", func(ctx context.Context, c tokenstorev1.OIDCServiceClient) error {
				r, err := c.ListIssuers(ctx, &tokenstorev1.ListIssuersRequest{Consistency: o.consistency})
				resp = r
				return err
			})
			if err != nil {
				return err
			}
			return a.printIssuers(o, "list OIDC issuers", resp.GetHeader(), resp.GetIssuers(), nil)
		},
	}
}

func (a *app) newOIDCGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get URL",
		Short: "Show one issuer's configuration (YAML; -o json for JSON) and key ids",
		Args:  exactArgs("URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			what := "get OIDC issuer " + args[0]
			var resp *tokenstorev1.GetIssuerResponse
			err = a.oidcCall(cmd, o, readRPC, what, func(ctx context.Context, c tokenstorev1.OIDCServiceClient) error {
				r, err := c.GetIssuer(ctx, &tokenstorev1.GetIssuerRequest{Url: args[0], Consistency: o.consistency})
				resp = r
				return err
			})
			if err != nil {
				return err
			}
			is := resp.GetIssuer()
			v := map[string]any{"issuer": viewIssuer(is), "revision": resp.GetHeader().GetRevision(), "member": resp.GetHeader().GetMember()}
			return a.print(o, what, v, func() string {
				y, err := yaml.JSONToYAML(is.GetConfig())
				if err != nil {
					y = is.GetConfig()
				}
				return string(y) + fmt.Sprintf("# keys: %s (fetched %s, keys revision %d, config revision %d)\n# revision %d, answered by %s\n",
					orDash(strings.Join(is.GetKeyIds(), ", ")), tableTime(is.GetKeysFetchedAt(), "never"), is.GetKeysRevision(), is.GetConfigRevision(),
					resp.GetHeader().GetRevision(), orDash(resp.GetHeader().GetMember()))
			})
		},
	}
}

func (a *app) newOIDCDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete URL",
		Short: "Delete an issuer; its JWTs are refused from then on",
		Args:  exactArgs("URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			what := "delete OIDC issuer " + args[0]
			var resp *tokenstorev1.DeleteIssuerResponse
			err = a.oidcCall(cmd, o, writeRPC, what, func(ctx context.Context, c tokenstorev1.OIDCServiceClient) error {
				r, err := c.DeleteIssuer(ctx, &tokenstorev1.DeleteIssuerRequest{Url: args[0]})
				resp = r
				return err
			})
			if err != nil {
				return err
			}
			v := map[string]any{"deleted": args[0], "revision": resp.GetHeader().GetRevision(), "member": resp.GetHeader().GetMember()}
			return a.print(o, what, v, func() string { return "deleted " + args[0] + "\n" + answeredBy(resp.GetHeader()) })
		},
	}
}

func (a *app) newOIDCRefreshCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "refresh URL",
		Short: "Have the leader fetch the issuer's keys now and replicate them if they changed",
		Args:  exactArgs("URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			what := "refresh OIDC issuer " + args[0]
			var resp *tokenstorev1.RefreshIssuerResponse
			// A refresh proposes at most an unchanged-or-new key set, so
			// sending it twice is harmless: it may go to a second member.
			err = a.oidcCall(cmd, o, readRPC, what, func(ctx context.Context, c tokenstorev1.OIDCServiceClient) error {
				r, err := c.RefreshIssuer(ctx, &tokenstorev1.RefreshIssuerRequest{Url: args[0]})
				resp = r
				return err
			})
			if err != nil {
				return err
			}
			return a.printIssuers(o, what, resp.GetHeader(), []*tokenstorev1.OIDCIssuer{resp.GetIssuer()}, map[string]any{"changed": resp.GetChanged()})
		},
	}
}
