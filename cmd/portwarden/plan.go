package main

import (
	"context"
	"fmt"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/policies"
	"github.com/spf13/cobra"
)

func newPlanCmd(g *globals) *cobra.Command {
	var out string
	var detailed bool
	cmd := &cobra.Command{
		Use:   "plan [--out FILE] [--detailed-exitcode]",
		Short: "Show what apply would change in the kernel (--detailed-exitcode: 0 none, 2 changes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, reason, pol, err := g.makePlan(cmd)
			if err != nil {
				return err
			}
			if out != "" {
				if err := safeapply.SavePlan(out, plan, pol.Digest()); err != nil {
					return withCode(exitError1, err)
				}
			}
			w := cmd.OutOrStdout()
			unfinished := g.unfinishedApply(nil)
			if g.json {
				pj := planJSON{Plan: plan, Empty: plan.Empty(), Reason: reason}
				if unfinished != nil {
					pj.Unfinished = unfinished.String()
				}
				if err := printJSON(w, pj); err != nil {
					return err
				}
			} else {
				if unfinished != nil {
					fmt.Fprintf(w, "%s\n\n", unfinished)
				}
				fmt.Fprintf(w, "Backend: %s (%s)\n\n", plan.Backend, reason)
				backends.WritePlan(w, plan, g.color(w))
				if out != "" {
					fmt.Fprintf(w, "\nSaved the plan to %s: apply it with portwarden apply %s\n", out, out)
				}
			}
			if detailed && (!plan.Empty() || unfinished != nil) {
				return silentExit(exitChanges)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "save the plan to FILE for apply")
	cmd.Flags().BoolVar(&detailed, "detailed-exitcode", false, "exit 2 when there are changes, 0 when none")
	return cmd
}

type planJSON struct {
	*backends.Plan
	Empty  bool   `json:"empty"`
	Reason string `json:"backend_reason"`
	// Unfinished says that the last apply did not finish, and what the
	// kernel holds; apply completes it.
	Unfinished string `json:"unfinished_apply,omitempty"`
}

// makePlan loads the policy and plans it against the kernel.
func (g *globals) makePlan(cmd *cobra.Command) (*backends.Plan, string, *policies.Policy, error) {
	pol, rs, err := g.loadPolicy(cmd)
	if err != nil {
		return nil, "", nil, err
	}
	b, reason, err := g.openBackend()
	if err != nil {
		return nil, "", nil, err
	}
	plan, err := b.Plan(context.Background(), rs)
	if err != nil {
		return nil, "", nil, withCode(exitError1, explainKernelError(err))
	}
	return plan, reason, pol, nil
}
