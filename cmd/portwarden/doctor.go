package main

import (
	"context"
	"fmt"

	"github.com/portwarden/portwarden/rules"
	"github.com/portwarden/portwarden/verify/doctor"
	"github.com/spf13/cobra"
)

func newDoctorCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check the environment and foreign rules that decide the managed traffic (exit 3 on problems)",
		Example: `  portwarden doctor
  portwarden --policy /etc/portwarden doctor --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var rs *rules.Ruleset
			if cmd.Flags().Changed("policy") {
				var err error
				if _, rs, err = g.loadPolicy(cmd); err != nil {
					return err
				}
			}
			findings := doctor.Run(context.Background(), doctor.Config{Ruleset: rs, Backend: g.backend})
			w := cmd.OutOrStdout()
			problems := doctor.Problems(findings)
			if g.json {
				if err := printJSON(w, map[string]any{"problems": problems, "findings": findings}); err != nil {
					return err
				}
			} else {
				for _, f := range findings {
					mark := "ok     "
					if f.Problem {
						mark = "PROBLEM"
					}
					fmt.Fprintf(w, "%s  %-15s %s\n", mark, f.Check, f.Message)
					if f.Fix != "" {
						fmt.Fprintf(w, "         %-15s fix: %s\n", "", f.Fix)
					}
				}
				fmt.Fprintf(w, "\n%d problem(s)\n", problems)
			}
			if problems > 0 {
				return silentExit(exitFailed)
			}
			return nil
		},
	}
}
