package ctl

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenstorev1 "github.com/tokenstore/tokenstore/api/tokenstore/v1"
	"github.com/tokenstore/tokenstore/server/rancher"
)

// maxImportBatch is the most tokens a member takes in one ImportTokens
// request.
const maxImportBatch = 1000

// maxImportFile bounds the input read.
const maxImportFile = 256 << 20

// importFlags are the flags of "token import".
type importFlags struct {
	format       string
	skipExisting bool
	batchSize    int
	dryRun       bool
}

func (f *importFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.format, "format", "", "format of FILE (required): rancher")
	fs.BoolVar(&f.skipExisting, "skip-existing", false, "leave tokens whose id exists unchanged instead of refusing the batch (makes a re-run safe)")
	fs.IntVar(&f.batchSize, "batch-size", 200, fmt.Sprintf("tokens per request, 1-%d; each request is one replicated entry", maxImportBatch))
	fs.BoolVar(&f.dryRun, "dry-run", false, "read and check FILE and show what would be imported; send nothing")
}

func (f *importFlags) check(fs *pflag.FlagSet) error {
	switch f.format {
	case "rancher":
	case "":
		return usageErrorf("--format is required (rancher)")
	default:
		return usageErrorf("--format: unknown format %q (want rancher)", f.format)
	}
	if fs.Changed("batch-size") && (f.batchSize < 1 || f.batchSize > maxImportBatch) {
		return usageErrorf("--batch-size: must be between 1 and %d, got %d", maxImportBatch, f.batchSize)
	}
	return nil
}

// importPlan is what a file holds, converted to requests.
type importPlan struct {
	source string
	tokens []*tokenstorev1.ImportedToken
	// formats counts the tokens by hash format name.
	formats map[string]int
	// noUser names the tokens whose user had no ClusterUserAttribute in
	// the input: imported without groups.
	noUser []string
}

// rancherPlan converts decoded ClusterAuthTokens.
func rancherPlan(source string, toks []rancher.Token) *importPlan {
	p := &importPlan{source: source, formats: map[string]int{}}
	for _, t := range toks {
		it := &tokenstorev1.ImportedToken{
			Id:          t.Name,
			User:        &tokenstorev1.UserInfo{Username: t.UserName, Groups: t.Groups},
			RancherHash: t.Hash,
			Disabled:    !t.Enabled,
			Description: "imported from Rancher ClusterAuthToken " + strings.TrimPrefix(t.Namespace+"/"+t.Name, "/"),
		}
		if !t.ExpiresAt.IsZero() {
			it.ExpiresAt = timestamppb.New(t.ExpiresAt)
		}
		if h, err := rancher.ParseHash(t.Hash); err == nil {
			p.formats[h.Format().String()]++
		}
		if !t.HasUserAttribute {
			p.noUser = append(p.noUser, t.Name)
		}
		p.tokens = append(p.tokens, it)
	}
	return p
}

// readImportFile reads FILE, or standard input for "-".
func (a *app) readImportFile(name string) ([]byte, error) {
	var r io.Reader = a.stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, over, err := readBounded(r, name, maxImportFile)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if over {
		return nil, fmt.Errorf("import: %s is larger than %d MiB", name, maxImportFile>>20)
	}
	return b, nil
}

func (a *app) newTokenImportCommand() *cobra.Command {
	var f importFlags
	cmd := &cobra.Command{
		Use:   "import --format rancher FILE",
		Short: "Import tokens made elsewhere (Rancher ClusterAuthTokens) with their hashes",
		Long: `Import tokens made elsewhere, keeping their ids and the hashes of their
secrets, so the bearer tokens already handed out ("<name>:<secret>")
authenticate here unchanged. FILE '-' reads standard input.

--format rancher reads Rancher's cluster.cattle.io/v3 ClusterAuthToken
objects, in YAML or JSON, one or many (a List, several YAML documents, or a
stream of JSON objects), for example the output of

  kubectl -n cattle-system get clusterauthtokens,clusteruserattributes -o yaml

Each token keeps metadata.name (its id), userName, hash ($1 scrypt, $2
SHA-256 or $3 SHA3-512, verbatim), enabled (false or absent imports it
disabled, as Rancher reads it) and expiresAt. ClusterUserAttribute objects
in the input give the user's groups (a disabled one disables the user's
tokens); Secret objects named like a token without a hash give its
data.hash, where newer Rancher keeps it.

Tokens are sent in batches (--batch-size); each batch is one replicated
entry, stored whole or not at all. Without --skip-existing a batch holding
an id that exists is refused; with it, such ids are left unchanged and
listed, so re-running an interrupted import is safe.`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := a.begin(cmd)
			if err != nil {
				return err
			}
			if err := f.check(cmd.Flags()); err != nil {
				return err
			}
			if strings.TrimSpace(args[0]) == "" {
				return usageErrorf("token import: FILE is empty")
			}
			data, err := a.readImportFile(args[0])
			if err != nil {
				return err
			}
			toks, err := rancher.Decode(bytes.NewReader(data))
			if err != nil {
				return fmt.Errorf("import: %s: %w", args[0], err)
			}
			if len(toks) == 0 {
				return fmt.Errorf("import: %s holds no ClusterAuthToken", args[0])
			}
			plan := rancherPlan(args[0], toks)
			if f.dryRun {
				return a.print(o, "import tokens", importView(plan, nil, true), func() string { return importTable(plan, nil, true) })
			}
			ctx, cancel := o.commandContext(cmd.Context())
			defer cancel()
			res := &importResult{}
			conn := o.connector(a.stderr)
			for start := 0; start < len(plan.tokens); start += f.batchSize {
				batch := plan.tokens[start:min(start+f.batchSize, len(plan.tokens))]
				req := &tokenstorev1.ImportTokensRequest{Tokens: batch, SkipExisting: f.skipExisting}
				var resp *tokenstorev1.ImportTokensResponse
				err := conn.call(ctx, writeRPC, func(ctx context.Context, cc grpc.ClientConnInterface) error {
					r, err := tokenstorev1.NewTokenServiceClient(cc).ImportTokens(ctx, req)
					resp = r
					return err
				})
				if err != nil {
					what := fmt.Sprintf("import tokens %d-%d of %d", start+1, start+len(batch), len(plan.tokens))
					if res.batches > 0 {
						what += fmt.Sprintf(" (the %d before are stored; re-run with --skip-existing)", start)
					}
					return failed(what, err)
				}
				res.add(resp)
			}
			return a.print(o, "import tokens", importView(plan, res, false), func() string { return importTable(plan, res, false) })
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// importResult accumulates the answers to the batches.
type importResult struct {
	batches  int
	imported []string
	skipped  []string
	header   *tokenstorev1.ResponseHeader
}

func (r *importResult) add(resp *tokenstorev1.ImportTokensResponse) {
	r.batches++
	for _, t := range resp.GetImported() {
		r.imported = append(r.imported, t.GetId())
	}
	r.skipped = append(r.skipped, resp.GetSkippedIds()...)
	r.header = resp.GetHeader()
}

// importJSON is the answer to import. Revision and member are those of the
// last batch.
type importJSON struct {
	DryRun      bool           `json:"dryRun"`
	Tokens      int            `json:"tokens"`
	Imported    []string       `json:"imported"`
	Skipped     []string       `json:"skipped"`
	HashFormats map[string]int `json:"hashFormats"`
	// WithoutUserAttribute are tokens imported without groups.
	WithoutUserAttribute []string `json:"withoutUserAttribute"`
	Revision             uint64   `json:"revision,omitempty"`
	Member               string   `json:"member,omitempty"`
}

func importView(p *importPlan, res *importResult, dryRun bool) importJSON {
	v := importJSON{
		DryRun: dryRun, Tokens: len(p.tokens), Imported: []string{}, Skipped: []string{},
		HashFormats: map[string]int{}, WithoutUserAttribute: append([]string{}, p.noUser...),
	}
	for k, n := range p.formats {
		v.HashFormats[k] = n
	}
	if res != nil {
		v.Imported = append(v.Imported, res.imported...)
		v.Skipped = append(v.Skipped, res.skipped...)
		v.Revision, v.Member = res.header.GetRevision(), res.header.GetMember()
	}
	return v
}

func importTable(p *importPlan, res *importResult, dryRun bool) string {
	var b strings.Builder
	var formats []string
	for _, name := range []string{"scrypt", "sha256", "sha3-512"} {
		if n := p.formats[name]; n > 0 {
			formats = append(formats, fmt.Sprintf("%s %d", name, n))
		}
	}
	disabled := 0
	for _, t := range p.tokens {
		if t.GetDisabled() {
			disabled++
		}
	}
	if dryRun {
		fmt.Fprintf(&b, "Would import %d tokens from %s (nothing sent).\n", len(p.tokens), cell(p.source))
		rows := make([][]string, 0, len(p.tokens))
		for _, t := range p.tokens {
			state := "active"
			if t.GetDisabled() {
				state = "disabled"
			}
			rows = append(rows, []string{t.GetId(), t.GetUser().GetUsername(), strings.Join(t.GetUser().GetGroups(), ","), state, tableTime(t.GetExpiresAt(), "never")})
		}
		b.WriteString(table([]string{"ID", "USER", "GROUPS", "STATE", "EXPIRES"}, rows))
	} else {
		fmt.Fprintf(&b, "Imported %d of %d tokens from %s", len(res.imported), len(p.tokens), cell(p.source))
		if len(res.skipped) > 0 {
			fmt.Fprintf(&b, "; %d skipped (id exists): %s", len(res.skipped), truncate(strings.Join(res.skipped, ", "), 200))
		}
		b.WriteString(".\n")
	}
	fmt.Fprintf(&b, "Hash formats: %s. Disabled: %d.\n", orDash(strings.Join(formats, ", ")), disabled)
	if len(p.noUser) > 0 {
		fmt.Fprintf(&b, "Warning: %d tokens have no ClusterUserAttribute for their user in the input and carry no groups: %s\n",
			len(p.noUser), truncate(strings.Join(p.noUser, ", "), 200))
	}
	if res != nil {
		b.WriteString(answeredBy(res.header))
	}
	return b.String()
}
