package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
	"github.com/spf13/cobra"
)

func newPlanCmd(g *globals) *cobra.Command {
	var out string
	var detailed bool
	cmd := &cobra.Command{
		Use:   "plan [--out FILE] [--detailed-exitcode]",
		Short: "Show what apply would change in the kernel (--detailed-exitcode: 0 none, 2 changes)",
		Example: `  portwarden --policy /etc/portwarden plan
  portwarden --policy /etc/portwarden plan --out nscp.plan && portwarden apply nscp.plan
  portwarden --policy /etc/portwarden plan --detailed-exitcode   # 0 no changes, 2 changes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" && !g.json {
				if _, b, reason, ok := g.unchanged(cmd); ok {
					writeUnchanged(cmd.OutOrStdout(), b.Name(), reason)
					return nil
				}
			}
			plan, reason, pol, err := g.makePlan(cmd)
			if err != nil {
				return err
			}
			if out != "" {
				if err := safeapply.SavePlan(out, plan, pol.Digest(), g.policyPath); err != nil {
					return withCode(exitError1, err)
				}
			}
			w := cmd.OutOrStdout()
			unfinished := g.unfinishedApply(nil)
			// What apply would refuse, said now: a plan reviewed first
			// (Ansible's check mode, CI, an administrator) should not learn
			// only at apply that it would cut a live SSH session.
			var lockout string
			if !plan.Empty() {
				// Any error: apply refuses as well when it cannot read the
				// sessions.
				if _, err := safeapply.CheckLockout(plan.Desired, os.Environ()); err != nil {
					lockout = "apply will refuse this plan (unless --force): " + err.Error()
					fmt.Fprintf(cmd.ErrOrStderr(), "Warning: %s\n", lockout)
				}
			}
			if g.json {
				pj := g.newPlanJSON(plan, reason)
				if lockout != "" {
					pj.Warnings = append(pj.Warnings, lockout)
				}
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
				fmt.Fprintf(w, "Backend: %s\n\n", reason)
				backends.WritePlan(w, plan, g.color(w))
				if soon := plan.Desired.ExpiringWithin(time.Now(), safeapply.ExpiryWindow); len(soon) > 0 {
					fmt.Fprintln(w)
					writeExpiring(w, soon)
				}
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
	FormatVersion int `json:"format_version"`
	*backends.Plan
	Empty   bool        `json:"empty"`
	Reason  string      `json:"backend_reason"`
	Summary planSummary `json:"summary"`
	// Drift: the kernel differs from what portwarden last applied here, so
	// part of the difference was made outside portwarden.
	Drift bool `json:"drift"`
	// Unfinished says that the last apply did not finish, and what the
	// kernel holds; apply completes it.
	Unfinished string `json:"unfinished_apply,omitempty"`
	// ExpiringSoon: access the policy grants that ends within 7 days.
	ExpiringSoon []rules.Expiry `json:"expiring_soon"`
	// Warnings are the plan's notes for people and what apply would
	// refuse; [] when none (the plan's own field is left out when empty).
	Warnings []string `json:"warnings"`
}

type planSummary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
}

func (g *globals) newPlanJSON(plan *backends.Plan, reason string) planJSON {
	c, u, r := plan.Diff.Summary()
	// Every list as [] when empty, as the JSON contract says.
	if cur := plan.Current; cur != nil {
		if cur.Drift == nil {
			cur.Drift = []string{}
		}
		if cur.Ruleset != nil && cur.Ruleset.Exposures == nil {
			cur.Ruleset.Exposures = []rules.Exposure{}
		}
	}
	return planJSON{FormatVersion: formatVersion, Plan: plan, Empty: plan.Empty(), Reason: reason, Summary: planSummary{c, u, r}, Drift: g.driftedSinceApply(plan),
		ExpiringSoon: plan.Desired.ExpiringWithin(time.Now(), safeapply.ExpiryWindow), Warnings: append([]string{}, plan.Warnings...)}
}

// driftedSinceApply reports whether the kernel's owned rules differ from
// what portwarden last applied in this namespace: a change made outside
// portwarden.
func (g *globals) driftedSinceApply(plan *backends.Plan) bool {
	if len(plan.Current.Drift) > 0 {
		return true
	}
	if plan.Empty() {
		// The kernel holds what the policy compiles to now: where it
		// differs from the last apply, access expired as applied (the
		// kernel drops an expired element itself), which is no drift.
		return false
	}
	a := g.lastApplied()
	if a == nil || a.RolledBack || a.Backend != plan.Backend {
		return false
	}
	return a.Fingerprint != plan.Current.Ruleset.Fingerprint()
}

// makePlan loads the policy and plans it against the kernel.
func (g *globals) makePlan(cmd *cobra.Command) (*backends.Plan, string, *policies.Policy, error) {
	// Waited for on every way out: the read may hand work to
	// safeapply.Later, which the command settles before it exits.
	prefetched := sync.OnceFunc(g.prefetchKernel())
	defer prefetched()
	pol, rs, err := g.loadPolicy(cmd)
	if err != nil {
		return nil, "", nil, err
	}
	prefetched()
	b, reason, err := g.openBackend()
	if err != nil {
		return nil, "", nil, err
	}
	plan, err := b.Plan(context.Background(), rs)
	if err != nil {
		return nil, "", nil, withCode(exitError1, explainKernelError(err))
	}
	if _, ok := b.(backends.Holder); ok {
		g.recordCompiled(pol, rs, b.Name())
	}
	// The same policy as the last apply: whatever differs was changed
	// outside portwarden, and the plan says so.
	if a := g.lastApplied(); a != nil && !plan.Diff.Empty() && !a.RolledBack &&
		a.Backend == plan.Backend && a.Fingerprint == g.fingerprint(plan.Desired) {
		plan.DriftOnly = true
	}
	return plan, reason, pol, nil
}
