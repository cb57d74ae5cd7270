package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing/fstest"
	"time"

	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/policies/importer"
	"github.com/portwarden/portwarden/rules"
	"github.com/portwarden/portwarden/verify"
	"github.com/spf13/cobra"
)

// importJSON is import's --json output (format_version 1).
type importJSON struct {
	FormatVersion int                       `json:"format_version"`
	From          string                    `json:"from"`
	Sources       []string                  `json:"sources"`
	Policy        string                    `json:"policy"`
	Out           string                    `json:"out,omitempty"`
	Complete      bool                      `json:"complete"`
	LeftOut       []importer.Item           `json:"left_out"`
	Notes         []importer.Item           `json:"notes"`
	Check         *verify.EquivalenceReport `json:"check,omitempty"`
}

func newImportCmd(g *globals) *cobra.Command {
	var from, outDir string
	var check bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "import --from iptables|nftables|ufw|firewalld [FILE|DIR|-] [--out DIR] [--check]",
		Short: "Write a policy equal to an existing firewall's rules (--check: prove it in two sandboxes)",
		Example: `  mkdir saved && iptables-save > saved/rules.v4 && ip6tables-save > saved/rules.v6
  portwarden import --from iptables saved --out /etc/portwarden --check
  portwarden import --from nftables                 # the running ruleset, over netlink`,
		Long: `Reads iptables-save/ip6tables-save (and ipset save) output, nft -j list ruleset
JSON, ufw's user.rules/user6.rules or firewalld zone XML, and writes a formatted
policy to stdout or DIR/import.hcl. What the policy cannot express is listed on
stderr with where it came from; the exit code is then 3. With --check, the
original rules are loaded into one sandbox namespace with the real tools, the
policy into another, and both are probed from the same sources on every managed
port: any difference is printed and the exit code is 3.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(importer.Sources, from) {
				return withCode(exitError1, fmt.Errorf("--from %q: choose %s", from, strings.Join(importer.Sources, ", ")))
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			im, err := readImport(ctx, cmd, from, args)
			if err != nil {
				return withCode(exitError1, fmt.Errorf("import: %w", err))
			}
			src, _, err := im.Build()
			if err != nil {
				return withCode(exitError1, err)
			}
			target := ""
			if outDir != "" {
				if target, err = writeNewPolicy(outDir, src); err != nil {
					return withCode(exitError1, err)
				}
			}
			stderr := cmd.ErrOrStderr()
			var rep *verify.EquivalenceReport
			if check {
				rep, err = checkImport(ctx, g, im, src)
				if err != nil {
					return withCode(exitError1, explainKernelError(err))
				}
			}
			w := cmd.OutOrStdout()
			if g.json {
				if err := printJSON(w, importJSON{FormatVersion: 1, From: from, Sources: im.Sources, Policy: string(src), Out: target,
					Complete: im.Complete(), LeftOut: nonNil(im.LeftOut), Notes: nonNil(im.Notes), Check: rep}); err != nil {
					return err
				}
			} else {
				if target == "" {
					w.Write(src)
				} else {
					fmt.Fprintf(stderr, "wrote %s\n", target)
				}
				fmt.Fprint(stderr, importer.ReportText(im))
				if rep != nil {
					printEquivalence(stderr, rep)
				}
			}
			if !im.Complete() || rep != nil && !rep.Equivalent() {
				return silentExit(exitFailed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the rules' format: iptables, nftables, ufw or firewalld")
	cmd.Flags().StringVar(&outDir, "out", "", "write DIR/import.hcl (never overwrites) instead of stdout")
	cmd.Flags().BoolVar(&check, "check", false, "prove the policy equal to the rules in two sandbox namespaces (root)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "per-probe timeout of --check (default 1.5s)")
	return cmd
}

// readImport reads the rules from a file, a directory, standard input,
// or the running system (nftables over netlink).
func readImport(ctx context.Context, cmd *cobra.Command, from string, args []string) (*importer.Import, error) {
	if len(args) == 0 && from == "nftables" {
		return importer.ReadNftablesKernel(ctx, -1)
	}
	var files []importer.File
	var err error
	if len(args) == 1 {
		files, err = importer.ReadFiles(args[0], cmd.InOrStdin())
	} else {
		files, err = importer.ReadLive(ctx, from)
	}
	if err != nil {
		return nil, err
	}
	return importer.Parse(from, files)
}

func nonNil(items []importer.Item) []importer.Item {
	if items == nil {
		return []importer.Item{}
	}
	return items
}

// writeNewPolicy writes DIR/import.hcl, refusing to replace a file: an
// import never edits a policy someone wrote.
func writeNewPolicy(dir string, src []byte) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("import: %w", err)
	}
	target := filepath.Join(dir, "import.hcl")
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("import: %s exists; import writes only new files: move it away or choose another --out", target)
	}
	if err != nil {
		return "", fmt.Errorf("import: %w", err)
	}
	if _, err := f.Write(src); err != nil {
		f.Close()
		return "", fmt.Errorf("import: %w", err)
	}
	return target, f.Close()
}

func checkImport(ctx context.Context, g *globals, im *importer.Import, src []byte) (*verify.EquivalenceReport, error) {
	pol, diags := policies.LoadFS(fstest.MapFS{"import.hcl": {Data: src}}, "import.hcl", policies.Options{})
	if diags.HasErrors() {
		return nil, fmt.Errorf("import --check: the generated policy does not load (a bug): %s", diags.Error())
	}
	rs, err := rules.Compile(pol)
	if err != nil {
		return nil, fmt.Errorf("import --check: %w", err)
	}
	if len(im.Load) == 0 {
		return nil, errors.New("import --check: nothing to load the original rules with (reading the running nftables ruleset for the sandbox needs the nft binary); save it with `nft -j list ruleset > ruleset.json` and import that file")
	}
	cfg := verify.EquivalenceConfig{Ruleset: rs, Backend: g.backend, Prefixes: im.Prefixes()}
	for _, l := range im.Load {
		cfg.Original = append(cfg.Original, verify.Command{Name: l.Name, Args: l.Args, Stdin: l.Stdin})
	}
	return verify.Equivalence(ctx, cfg)
}

func printEquivalence(w interface{ Write([]byte) (int, error) }, rep *verify.EquivalenceReport) {
	if rep.Probes == 0 {
		fmt.Fprintln(w, "check: the policy manages no port: nothing to probe")
		return
	}
	if rep.Equivalent() {
		fmt.Fprintf(w, "check: equivalent: %d probes from %d sources on every managed port saw the same in both sandboxes (imported policy on %s, %s)\n",
			rep.Probes, rep.Sources, rep.Backend, rep.Duration.Round(100*time.Millisecond))
		return
	}
	fmt.Fprintf(w, "check: %d of %d probes differ between the original rules and the imported policy:\n", len(rep.Differences), rep.Probes)
	for _, d := range rep.Differences {
		fmt.Fprintf(w, "  %s\n", d)
	}
}
