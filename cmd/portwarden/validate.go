package main

import (
	"fmt"

	"github.com/portwarden/portwarden/policies"

	"github.com/spf13/cobra"
)

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Parse and check the policy (exit 0 valid, 1 invalid)",
		Example: `  portwarden --policy /etc/portwarden validate
  portwarden --policy policy.hcl --json validate`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			pol, rs, err := g.loadPolicy(cmd)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"format_version": formatVersion, "valid": true,
					"exposures": len(rs.Exposures), "tests": len(pol.Tests), "diagnostics": policies.DiagnosticsJSON(g.warnings)})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "The policy is valid: %d exposure(s), %d test(s).\n", len(rs.Exposures), len(pol.Tests))
			return nil
		},
	}
}
