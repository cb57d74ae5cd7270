package main

import (
	"fmt"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/spf13/cobra"
)

type showJSON struct {
	planJSON
	PlanDigest   string `json:"plan_digest"`
	PolicyDigest string `json:"policy_digest"`
	PolicyPath   string `json:"policy_path"`
}

func newShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show PLANFILE",
		Short: "Render a saved plan again, as plan printed it (checks its signature)",
		Example: `  portwarden plan --out nscp.plan
  portwarden show nscp.plan
  portwarden show --json nscp.plan`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			saved, err := safeapply.LoadPlan(args[0])
			if err != nil {
				return withCode(exitError1, err)
			}
			w := cmd.OutOrStdout()
			if g.json {
				c, u, r := saved.Diff.Summary()
				return printJSON(w, showJSON{
					planJSON:   planJSON{FormatVersion: formatVersion, Plan: saved.Plan, Empty: saved.Empty(), Summary: planSummary{c, u, r}},
					PlanDigest: saved.PlanDigest, PolicyDigest: saved.PolicyDigest, PolicyPath: saved.PolicyPath})
			}
			fmt.Fprintf(w, "Saved plan %s, made %s from %s for the %s backend.\n\n", args[0],
				saved.Created.Local().Format("2006-01-02 15:04:05 MST"), saved.PolicyPath, saved.Backend)
			backends.WritePlan(w, saved.Plan, g.color(w))
			fmt.Fprintf(w, "\nApply it with: portwarden apply %s\n", args[0])
			return nil
		},
	}
}
