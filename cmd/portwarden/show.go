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
	// WrittenBy is the binary that wrote the plan (null: one from before
	// plans named it), NetNSCookie and BootID what it was made for.
	WrittenBy   *safeapply.Binary `json:"written_by"`
	NetNSCookie uint64            `json:"netns_cookie"`
	BootID      string            `json:"boot_id"`
	// AppliesHere: apply would run it here; otherwise NotHere says why
	// not (binary, boot or netns) and NotHereMessage in words.
	AppliesHere    bool   `json:"applies_here"`
	NotHere        string `json:"not_here,omitempty"`
	NotHereMessage string `json:"not_here_message,omitempty"`
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
			// A plan apply would refuse here (another binary wrote it, or
			// it was made for another namespace or boot) is shown all the
			// same, saying why it would be refused.
			saved, err := safeapply.ReadPlan(args[0])
			if err != nil {
				return withCode(exitError1, err)
			}
			w := cmd.OutOrStdout()
			if g.json {
				c, u, r := saved.Diff.Summary()
				sj := showJSON{
					planJSON:   planJSON{FormatVersion: formatVersion, Plan: saved.Plan, Empty: saved.Empty(), Summary: planSummary{c, u, r}},
					PlanDigest: saved.PlanDigest, PolicyDigest: saved.PolicyDigest, PolicyPath: saved.PolicyPath,
					WrittenBy: saved.WrittenBy, NetNSCookie: saved.NetNSCookie, BootID: saved.BootID, AppliesHere: saved.NotHere == nil}
				if saved.NotHere != nil {
					sj.NotHere, sj.NotHereMessage = saved.NotHere.Reason, saved.NotHere.Error()
				}
				return printJSON(w, sj)
			}
			fmt.Fprintf(w, "Saved plan %s, made %s from %s for the %s backend.\n\n", args[0],
				saved.Created.Local().Format("2006-01-02 15:04:05 MST"), saved.PolicyPath, saved.Backend)
			backends.WritePlan(w, saved.Plan, g.color(w))
			switch nh := saved.NotHere; {
			case nh == nil:
				fmt.Fprintf(w, "\nApply it with: portwarden apply %s\n", args[0])
			case nh.Reason == "netns":
				fmt.Fprintf(w, "\nApply it with: portwarden apply %s, in the network namespace it was made for: it %s, and apply refuses it here.\n", args[0], nh.Detail)
			default:
				fmt.Fprintf(w, "\nIt cannot be applied here: it %s. To apply this change, %s.\n", nh.Detail, nh.Fix)
			}
			return nil
		},
	}
}
