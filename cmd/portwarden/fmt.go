package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/portwarden/portwarden/policies"
	"github.com/spf13/cobra"
)

func newFmtCmd(g *globals) *cobra.Command {
	var check bool
	cmd := &cobra.Command{
		Use:   "fmt [--check] [PATH...]",
		Short: "Rewrite policy files in canonical format (--check: exit 3 when one would change)",
		Example: `  portwarden --policy /etc/portwarden fmt
  portwarden --policy /etc/portwarden fmt --check   # in CI: exit 3 when a file would change`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{g.policyPath}
			}
			files, err := policyFiles(args)
			if err != nil {
				return withCode(exitError1, err)
			}
			changed, failed := 0, false
			for _, f := range files {
				src, err := os.ReadFile(f)
				if err != nil {
					return withCode(exitError1, err)
				}
				out, diags := policies.Format(src, f)
				if diags.HasErrors() {
					g.writeDiagnostics(cmd.ErrOrStderr(), map[string]*hcl.File{f: {Bytes: src}}, diags)
					failed = true
					continue
				}
				if bytes.Equal(src, out) {
					continue
				}
				changed++
				fmt.Fprintln(cmd.OutOrStdout(), f)
				if !check {
					if err := os.WriteFile(f, out, 0o644); err != nil {
						return withCode(exitError1, err)
					}
				}
			}
			switch {
			case failed:
				return silentExit(exitError1)
			case check && changed > 0:
				return silentExit(exitFailed)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "only list files that are not formatted; exit 3 if any")
	return cmd
}

// policyFiles expands directories to the native-syntax policy files in
// them (JSON files have no canonical layout to enforce).
func policyFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("fmt: %w", err)
		}
		if !info.IsDir() {
			out = append(out, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.Type()&fs.ModeType == 0 && strings.HasSuffix(e.Name(), ".hcl") && policies.IsPolicyFile(e.Name()) {
				out = append(out, filepath.Join(p, e.Name()))
			}
		}
	}
	sort.Strings(out)
	return out, nil
}
