package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/spf13/cobra"
)

type statusJSON struct {
	Backend     string             `json:"backend"`
	Installed   bool               `json:"installed"`
	Fingerprint string             `json:"fingerprint"` // of the ruleset in the kernel
	Exposures   int                `json:"exposures"`
	Drift       []string           `json:"drift,omitempty"`
	Applied     *safeapply.Applied `json:"last_applied,omitempty"`
	Pending     *safeapply.Pending `json:"pending_confirmation,omitempty"`
	Counters    []backends.Counter `json:"counters"`
	Unfinished  string             `json:"unfinished_apply,omitempty"` // the last apply did not finish
}

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "What is installed: fingerprint, when and by whom, backend, counters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, _, err := g.openBackend()
			if err != nil {
				return err
			}
			ctx := context.Background()
			st, err := b.Current(ctx)
			if err != nil {
				return withCode(exitError1, explainKernelError(err))
			}
			counters, err := b.Counters(ctx)
			if err != nil {
				return withCode(exitError1, explainKernelError(err))
			}
			s := statusJSON{Backend: b.Name(), Installed: st.Installed, Fingerprint: st.Ruleset.Fingerprint(),
				Exposures: len(st.Ruleset.Exposures), Drift: st.Drift, Counters: counters}
			if dir, err := safeapply.Open(""); err == nil {
				s.Applied, _ = dir.LastApplied()
				s.Pending, _ = dir.GetPending()
			}
			if in := g.unfinishedApply(b); in != nil {
				s.Unfinished = in.String()
			}
			w := cmd.OutOrStdout()
			if g.json {
				return printJSON(w, s)
			}
			if s.Unfinished != "" {
				fmt.Fprintf(w, "%s\n\n", s.Unfinished)
			}
			if !s.Installed {
				fmt.Fprintf(w, "Nothing installed: portwarden owns no %s objects here.\n", s.Backend)
			} else {
				fmt.Fprintf(w, "Backend:     %s\nExposures:   %d\nFingerprint: %s\n", s.Backend, s.Exposures, s.Fingerprint)
			}
			if a := s.Applied; a != nil {
				what := "applied"
				if a.RolledBack {
					what = "rolled back"
				}
				fmt.Fprintf(w, "Last change: %s %s by %s", what, a.When.Local().Format(time.RFC3339), a.By)
				if a.Fingerprint == s.Fingerprint {
					fmt.Fprint(w, " (the kernel still holds it)")
				} else if !a.RolledBack {
					fmt.Fprint(w, " (the kernel holds something else now: run portwarden plan)")
				}
				fmt.Fprintln(w)
			}
			if p := s.Pending; p != nil {
				fmt.Fprintf(w, "Pending:     applied by %s, rolls back at %s unless `portwarden confirm`\n", p.By, p.Deadline.Local().Format(time.RFC3339))
			}
			for _, d := range s.Drift {
				fmt.Fprintf(w, "Drift:       %s\n", d)
			}
			if len(counters) > 0 {
				fmt.Fprintln(w)
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "EXPOSE\tRULE\tPACKETS\tBYTES")
				for _, c := range counters {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", c.Exposure, c.Rule, c.Packets, c.Bytes)
				}
				tw.Flush()
			}
			return nil
		},
	}
}
