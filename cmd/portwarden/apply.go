package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/portwarden/portwarden/backends"
	"github.com/spf13/cobra"
)

func newApplyCmd(g *globals) *cobra.Command {
	var autoApprove bool
	cmd := &cobra.Command{
		Use:   "apply [PLANFILE] [--auto-approve]",
		Short: "Make the kernel match the policy (or a saved plan) in one atomic step",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			var plan *backends.Plan
			var b backends.Backend
			var err error
			if len(args) == 1 {
				// A saved plan was reviewed already: it applies as it is, and
				// only if the kernel is still what it was planned against.
				if plan, err = loadPlan(args[0]); err != nil {
					return withCode(exitError1, err)
				}
				g.backend = plan.Backend
				if b, _, err = g.openBackend(); err != nil {
					return err
				}
				autoApprove = true
			} else {
				var reason string
				if plan, reason, err = g.makePlan(cmd); err != nil {
					return err
				}
				if b, _, err = g.openBackend(); err != nil {
					return err
				}
				if !g.json {
					fmt.Fprintf(w, "Backend: %s (%s)\n\n", plan.Backend, reason)
					backends.WritePlan(w, plan, g.color(w))
				}
			}
			if plan.Empty() {
				if err := b.Apply(context.Background(), plan); err != nil {
					return withCode(exitError1, explainKernelError(err))
				}
				return g.reportApply(w, plan, false)
			}
			if !autoApprove {
				if err := confirm(cmd.InOrStdin(), w, "apply"); err != nil {
					return withCode(exitError1, err)
				}
			}
			if err := b.Apply(context.Background(), plan); err != nil {
				return withCode(exitError1, explainKernelError(err))
			}
			return g.reportApply(w, plan, true)
		},
	}
	cmd.Flags().BoolVar(&autoApprove, "auto-approve", false, "apply without asking")
	return cmd
}

func (g *globals) reportApply(w io.Writer, plan *backends.Plan, changed bool) error {
	if g.json {
		return printJSON(w, map[string]any{"applied": changed, "backend": plan.Backend, "fingerprint": plan.Desired.Fingerprint()})
	}
	if changed {
		c, u, r := plan.Diff.Summary()
		fmt.Fprintf(w, "\nApply complete: %d added, %d changed, %d destroyed.\n", c, u, r)
	}
	return nil
}

// errNoTerminal: apply and destroy ask a person, and refuse without one.
var errNoTerminal = errors.New("no terminal to confirm on: pass --auto-approve, or save a plan with `portwarden plan --out FILE` and apply that file")

// confirm asks on a terminal and accepts only "yes".
func confirm(in io.Reader, w io.Writer, what string) error {
	f, ok := in.(*os.File)
	if !ok || !isTerminal(f) {
		return errNoTerminal
	}
	fmt.Fprintf(w, "\nDo you want to %s these changes? Only 'yes' will be accepted: ", what)
	line, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return fmt.Errorf("%s cancelled: nothing was changed", what)
	}
	return nil
}
