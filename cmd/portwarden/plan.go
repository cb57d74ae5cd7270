package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/portwarden/portwarden/backends"
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
			if out == "" && !g.json {
				if _, b, reason, ok := g.unchanged(cmd); ok {
					writeUnchanged(cmd.OutOrStdout(), b.Name(), reason)
					return nil
				}
			}
			plan, reason, err := g.makePlan(cmd)
			if err != nil {
				return err
			}
			if out != "" {
				if err := savePlan(out, plan); err != nil {
					return withCode(exitError1, err)
				}
			}
			w := cmd.OutOrStdout()
			if g.json {
				if err := printJSON(w, planJSON{Plan: plan, Empty: plan.Empty(), Reason: reason}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(w, "Backend: %s (%s)\n\n", plan.Backend, reason)
				backends.WritePlan(w, plan, g.color(w))
				if out != "" {
					fmt.Fprintf(w, "\nSaved the plan to %s: apply it with portwarden apply %s\n", out, out)
				}
			}
			if detailed && !plan.Empty() {
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
}

// makePlan loads the policy and plans it against the kernel.
func (g *globals) makePlan(cmd *cobra.Command) (*backends.Plan, string, error) {
	pol, rs, err := g.loadPolicy(cmd)
	if err != nil {
		return nil, "", err
	}
	b, reason, err := g.openBackend()
	if err != nil {
		return nil, "", err
	}
	plan, err := b.Plan(context.Background(), rs)
	if err != nil {
		return nil, "", withCode(exitError1, explainKernelError(err))
	}
	if _, ok := b.(backends.Holder); ok {
		g.recordCompiled(pol, rs, b.Name())
	}
	return plan, reason, nil
}

func savePlan(path string, p *backends.Plan) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save the plan: %w", err)
	}
	return nil
}

func loadPlan(path string) (*backends.Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the plan: %w", err)
	}
	var p backends.Plan
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%s is not a portwarden plan (%v): make one with portwarden plan --out FILE", path, err)
	}
	if p.Desired == nil || p.Current == nil || p.Backend == "" {
		return nil, fmt.Errorf("%s is not a complete portwarden plan: make one with portwarden plan --out FILE", path)
	}
	return &p, nil
}
