package ctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
)

// maxPageSize is the largest page a member serves (ListTokensRequest).
const maxPageSize = 1000

func (a *app) newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, inspect, verify, update and revoke bearer tokens",
		Args:  cobra.ArbitraryArgs,
		RunE:  a.missingCommand,
	}
	cmd.AddCommand(
		a.newTokenCreateCommand(),
		a.newTokenVerifyCommand(),
		a.newTokenGetCommand(),
		a.newTokenListCommand(),
		a.newTokenUpdateCommand(),
		a.newTokenRevokeCommand(),
		a.newTokenImportCommand(),
	)
	return cmd
}

// createFlags are the flags of "token create".
type createFlags struct {
	user        string
	uid         string
	groups      []string
	extras      []string
	labels      []string
	ttl         time.Duration
	description string
	audiences   []string
}

func (f *createFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.user, "user", "", "username the token authenticates as (required)")
	fs.StringVar(&f.uid, "uid", "", "user's uid")
	// StringArray, not StringSlice: a value is taken whole, commas included.
	fs.StringArrayVar(&f.groups, "group", nil, "group the user belongs to (repeat for more)")
	fs.StringArrayVar(&f.extras, "extra", nil, "extra user attribute key=value (repeat; a repeated key adds values)")
	fs.DurationVar(&f.ttl, "ttl", 0, "make the token expire this long after creation, e.g. 24h (default: never)")
	fs.StringVar(&f.description, "description", "", "free text shown by get and list")
	fs.StringArrayVar(&f.labels, "label", nil, "label key=value (repeat for more)")
	fs.StringArrayVar(&f.audiences, "audience", nil, "bind the token to this audience (repeat for more; default: none, valid for any)")
}

// request checks the flags and builds the request; every problem is a
// usage error, found before any endpoint is contacted.
func (f *createFlags) request(fs *pflag.FlagSet) (*tokenstorev1.CreateTokenRequest, error) {
	if strings.TrimSpace(f.user) == "" {
		return nil, usageErrorf("--user is required")
	}
	req := &tokenstorev1.CreateTokenRequest{
		User: &tokenstorev1.UserInfo{
			Username: f.user,
			Uid:      f.uid,
			Groups:   f.groups,
		},
		Description: f.description,
	}
	for i, aud := range f.audiences {
		if strings.TrimSpace(aud) == "" {
			return nil, usageErrorf("--audience: must not be empty")
		}
		if slices.Contains(f.audiences[:i], aud) {
			return nil, usageErrorf("--audience: %q given twice", aud)
		}
		req.Audiences = append(req.Audiences, aud)
	}
	if fs.Changed("ttl") {
		if f.ttl <= 0 {
			return nil, usageErrorf("--ttl: must be positive, got %s", f.ttl)
		}
		req.Ttl = durationpb.New(f.ttl)
	}
	for _, kv := range f.extras {
		k, v, err := splitKeyValue("--extra", kv)
		if err != nil {
			return nil, err
		}
		if req.User.Extra == nil {
			req.User.Extra = map[string]*tokenstorev1.ExtraValue{}
		}
		if req.User.Extra[k] == nil {
			req.User.Extra[k] = &tokenstorev1.ExtraValue{}
		}
		req.User.Extra[k].Values = append(req.User.Extra[k].Values, v)
	}
	for _, kv := range f.labels {
		k, v, err := splitKeyValue("--label", kv)
		if err != nil {
			return nil, err
		}
		if req.Labels == nil {
			req.Labels = map[string]string{}
		}
		if _, dup := req.Labels[k]; dup {
			return nil, usageErrorf("--label: key %q given twice", k)
		}
		req.Labels[k] = v
	}
	return req, nil
}

// splitKeyValue parses "key=value"; the value may be empty, the key may not.
func splitKeyValue(flag, kv string) (string, string, error) {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return "", "", usageErrorf("%s: want key=value, got %q", flag, kv)
	}
	return k, v, nil
}

func (a *app) newTokenCreateCommand() *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "create --user NAME [flags]",
		Short: "Create a token; its bearer token is printed once",
		Long: `Create a token for a user. The bearer token ("<id>:<secret>") is printed
once, in this command's output, and can never be shown again: store it now.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			req, err := f.request(cmd.Flags())
			if err != nil {
				return err
			}
			ctx, cancel := o.commandContext(cmd.Context())
			defer cancel()
			var resp *tokenstorev1.CreateTokenResponse
			err = o.connector(a.stderr).call(ctx, writeRPC, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				r, err := tokenstorev1.NewTokenServiceClient(cc).CreateToken(ctx, req)
				resp = r
				return err
			})
			if err != nil {
				return failed("create token for user "+f.user, err)
			}
			return a.print(o, "create token", createdView(resp), func() string { return createdTable(resp) })
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func (a *app) newTokenVerifyCommand() *cobra.Command {
	var audiences []string
	cmd := &cobra.Command{
		Use:   "verify TOKEN",
		Short: "Check a bearer token as the cluster would (TOKEN '-' reads it from stdin)",
		Long: `Ask a member whether a bearer token authenticates, and as whom.

Give TOKEN as '-' to read it from the first line of standard input, which keeps
the secret out of the shell history and the process list.

--audience asks, as a Kubernetes TokenReview's spec.audiences does, whether
the token is valid for any of these audiences.

The command exits 0 whenever a member answered, whether or not the token was
accepted; read "authenticated" (and "reason") from the output.`,
		Args: exactArgs("TOKEN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			token := args[0]
			if token == "-" {
				if token, err = readTokenLine(cmd.Context(), a.stdin); err != nil {
					return err
				}
			}
			if token == "" {
				return usageErrorf("token verify: TOKEN is empty")
			}
			ctx, cancel := o.commandContext(cmd.Context())
			defer cancel()
			for _, aud := range audiences {
				if strings.TrimSpace(aud) == "" {
					return usageErrorf("--audience: must not be empty")
				}
			}
			req := &tokenstorev1.AuthenticateRequest{Token: token, Consistency: o.consistency, Audiences: audiences}
			var resp *tokenstorev1.AuthenticateResponse
			err = o.connector(a.stderr).call(ctx, readRPC, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				r, err := tokenstorev1.NewAuthServiceClient(cc).Authenticate(ctx, req)
				resp = r
				return err
			})
			if err != nil {
				// Never name the token here: it is a secret.
				return failed("verify token", err)
			}
			return a.print(o, "verify token", verifyView(resp), func() string { return verifyTable(resp) })
		},
	}
	cmd.Flags().StringArrayVar(&audiences, "audience", nil, "audience the token must be valid for (repeat for more)")
	return cmd
}

// readTokenLine reads the first line of r, without its line ending and
// surrounding blanks. The read runs in its own goroutine so that an
// interrupt while waiting on a terminal ends the command; that goroutine
// may then stay blocked in Read until the process exits, which it is
// about to.
func readTokenLine(ctx context.Context, r io.Reader) (string, error) {
	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if errors.Is(err, io.EOF) && line != "" {
			err = nil
		}
		done <- result{strings.TrimSpace(line), err}
	}()
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("read token from standard input: %w", errInterrupted)
	case res := <-done:
		switch {
		case errors.Is(res.err, io.EOF) || (res.err == nil && res.line == ""):
			return "", usageErrorf("token verify: no token on the first line of standard input")
		case res.err != nil:
			return "", fmt.Errorf("read token from standard input: %w", res.err)
		}
		return res.line, nil
	}
}

// tokenID checks the ID argument of get, update and revoke.
func tokenID(args []string) (string, error) {
	id := args[0]
	if strings.TrimSpace(id) == "" {
		return "", usageErrorf("ID is empty")
	}
	return id, nil
}

func (a *app) newTokenGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a token's metadata (never its secret)",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			id, err := tokenID(args)
			if err != nil {
				return err
			}
			ctx, cancel := o.commandContext(cmd.Context())
			defer cancel()
			req := &tokenstorev1.GetTokenRequest{Id: id, Consistency: o.consistency}
			var resp *tokenstorev1.GetTokenResponse
			err = o.connector(a.stderr).call(ctx, readRPC, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				r, err := tokenstorev1.NewTokenServiceClient(cc).GetToken(ctx, req)
				resp = r
				return err
			})
			if err != nil {
				return failed("get token "+id, err)
			}
			return a.print(o, "get token "+id, tokenResultView(resp.GetToken(), resp.GetHeader()), func() string {
				return tokenTable("", resp.GetToken(), resp.GetHeader(), a.now())
			})
		},
	}
}

// listFlags are the flags of "token list".
type listFlags struct {
	limit    int
	pageSize int
	all      bool
}

func (f *listFlags) register(fs *pflag.FlagSet) {
	fs.IntVar(&f.limit, "limit", 0, "show at most this many tokens (default: no limit)")
	fs.IntVar(&f.pageSize, "page-size", 0, fmt.Sprintf("tokens per request, 1-%d (default: the member's default)", maxPageSize))
	fs.BoolVar(&f.all, "all", false, "read every page (the default; cannot be combined with --limit)")
}

func (f *listFlags) check(fs *pflag.FlagSet) error {
	if f.limit < 0 {
		return usageErrorf("--limit: must not be negative, got %d", f.limit)
	}
	if fs.Changed("page-size") && (f.pageSize < 1 || f.pageSize > maxPageSize) {
		return usageErrorf("--page-size: must be between 1 and %d, got %d", maxPageSize, f.pageSize)
	}
	if f.all && fs.Changed("limit") {
		return usageErrorf("--all and --limit cannot be combined")
	}
	return nil
}

// tokenPages is what listing read: the tokens, the header of the last page,
// and whether --limit cut it short while more tokens exist.
type tokenPages struct {
	tokens []*tokenstorev1.Token
	header *tokenstorev1.ResponseHeader
	more   bool
}

// listPages reads pages from one member until the last page or limit. It
// keeps its results local, so a read that fails over to the next endpoint
// starts again from the first page rather than mixing two members' pages.
func listPages(ctx context.Context, client tokenstorev1.TokenServiceClient, f listFlags, consistency tokenstorev1.ReadConsistency) (tokenPages, error) {
	var p tokenPages
	pageToken := ""
	for {
		size := f.pageSize
		if f.limit > 0 {
			remaining := f.limit - len(p.tokens)
			if size == 0 || size > remaining {
				size = min(remaining, maxPageSize)
			}
		}
		resp, err := client.ListTokens(ctx, &tokenstorev1.ListTokensRequest{
			PageSize:    uint32(size),
			PageToken:   pageToken,
			Consistency: consistency,
		})
		if err != nil {
			return tokenPages{}, err
		}
		p.tokens = append(p.tokens, resp.GetTokens()...)
		p.header = resp.GetHeader()
		next := resp.GetNextPageToken()
		if f.limit > 0 && len(p.tokens) >= f.limit {
			p.more = len(p.tokens) > f.limit || next != ""
			p.tokens = p.tokens[:f.limit]
			return p, nil
		}
		if next == "" {
			return p, nil
		}
		if next == pageToken {
			return tokenPages{}, fmt.Errorf("member %s returned the same page token twice; stopping rather than looping", p.header.GetMember())
		}
		pageToken = next
	}
}

func (a *app) newTokenListCommand() *cobra.Command {
	var f listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens in id order (every page unless --limit)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			if err := f.check(cmd.Flags()); err != nil {
				return err
			}
			ctx, cancel := o.commandContext(cmd.Context())
			defer cancel()
			var pages tokenPages
			err = o.connector(a.stderr).call(ctx, readRPC, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				p, err := listPages(ctx, tokenstorev1.NewTokenServiceClient(cc), f, o.consistency)
				if err == nil {
					pages = p
				}
				return err
			})
			if err != nil {
				return failed("list tokens", err)
			}
			return a.print(o, "list tokens", tokenListView(pages.tokens, pages.header), func() string {
				return tokenListTable(pages.tokens, pages.header, a.now(), pages.more)
			})
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// updateFlags are the flags of "token update".
type updateFlags struct {
	disable     bool
	enable      bool
	expiresAt   string
	ttl         time.Duration
	noExpiry    bool
	description string
}

func (f *updateFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.disable, "disable", false, "disable the token (it can be enabled again)")
	fs.BoolVar(&f.enable, "enable", false, "enable a disabled token")
	fs.StringVar(&f.expiresAt, "expires-at", "", "set the expiry to an RFC 3339 time, e.g. 2030-01-02T15:04:05Z")
	fs.DurationVar(&f.ttl, "ttl", 0, "set the expiry to this long from now (this machine's clock)")
	fs.BoolVar(&f.noExpiry, "no-expiry", false, "remove the expiry")
	fs.StringVar(&f.description, "description", "", "replace the description (\"\" clears it)")
}

// request checks the flags and builds the request. At least one change is
// required, and flags that set the same field are mutually exclusive.
func (f *updateFlags) request(fs *pflag.FlagSet, id string, now time.Time) (*tokenstorev1.UpdateTokenRequest, error) {
	req := &tokenstorev1.UpdateTokenRequest{Id: id}
	if f.disable && f.enable {
		return nil, usageErrorf("--disable and --enable cannot be combined")
	}
	if f.disable || f.enable {
		req.Disabled = &f.disable
	}
	var expiry []string
	for _, name := range []string{"expires-at", "ttl", "no-expiry"} {
		if fs.Changed(name) {
			expiry = append(expiry, "--"+name)
		}
	}
	if len(expiry) > 1 {
		return nil, usageErrorf("%s cannot be combined: each sets the expiry", strings.Join(expiry, " and "))
	}
	switch {
	case fs.Changed("expires-at"):
		t, err := time.Parse(time.RFC3339, f.expiresAt)
		if err != nil {
			return nil, usageErrorf("--expires-at: want an RFC 3339 time such as 2030-01-02T15:04:05Z, got %q", f.expiresAt)
		}
		req.ExpiresAt = timestamppb.New(t)
	case fs.Changed("ttl"):
		if f.ttl <= 0 {
			return nil, usageErrorf("--ttl: must be positive, got %s", f.ttl)
		}
		req.ExpiresAt = timestamppb.New(now.Add(f.ttl))
	case f.noExpiry:
		req.ClearExpiry = true
	}
	if fs.Changed("description") {
		req.Description = &f.description
	}
	if req.Disabled == nil && req.ExpiresAt == nil && !req.ClearExpiry && req.Description == nil {
		return nil, usageErrorf("nothing to change: give --disable, --enable, --expires-at, --ttl, --no-expiry or --description")
	}
	return req, nil
}

func (a *app) newTokenUpdateCommand() *cobra.Command {
	var f updateFlags
	cmd := &cobra.Command{
		Use:   "update ID [--disable|--enable] [--expires-at TIME|--ttl DURATION|--no-expiry] [--description TEXT]",
		Short: "Change a token's state, expiry or description",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			id, err := tokenID(args)
			if err != nil {
				return err
			}
			req, err := f.request(cmd.Flags(), id, a.now())
			if err != nil {
				return err
			}
			ctx, cancel := o.commandContext(cmd.Context())
			defer cancel()
			var resp *tokenstorev1.UpdateTokenResponse
			err = o.connector(a.stderr).call(ctx, writeRPC, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				r, err := tokenstorev1.NewTokenServiceClient(cc).UpdateToken(ctx, req)
				resp = r
				return err
			})
			if err != nil {
				return failed("update token "+id, err)
			}
			return a.print(o, "update token "+id, tokenResultView(resp.GetToken(), resp.GetHeader()), func() string {
				return tokenTable("Token "+cell(id)+" updated.", resp.GetToken(), resp.GetHeader(), a.now())
			})
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func (a *app) newTokenRevokeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token for good (use 'update --disable' for a reversible stop)",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			id, err := tokenID(args)
			if err != nil {
				return err
			}
			ctx, cancel := o.commandContext(cmd.Context())
			defer cancel()
			req := &tokenstorev1.RevokeTokenRequest{Id: id}
			var resp *tokenstorev1.RevokeTokenResponse
			err = o.connector(a.stderr).call(ctx, writeRPC, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				r, err := tokenstorev1.NewTokenServiceClient(cc).RevokeToken(ctx, req)
				resp = r
				return err
			})
			if err != nil {
				return failed("revoke token "+id, err)
			}
			return a.print(o, "revoke token "+id, tokenResultView(resp.GetToken(), resp.GetHeader()), func() string {
				return tokenTable("Token "+cell(id)+" revoked.", resp.GetToken(), resp.GetHeader(), a.now())
			})
		},
	}
}
