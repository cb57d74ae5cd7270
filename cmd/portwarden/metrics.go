package main

import (
	"bytes"
	"context"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/verify/monitor"
	"github.com/spf13/cobra"
)

func newMetricsCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "metrics",
		Short: "Print counters, drift and the last apply in the Prometheus text format (for node_exporter's textfile collector)",
		Long: `metrics prints the counters of the owned rules, drift (owned objects changed by
hand, or access opened or closed outside portwarden since the last apply),
the last apply and what expires next, in the Prometheus text format.
Allow block series are labelled with the block's file:line when the policy
(--policy, else the one last applied), loaded with the variables given to
metrics (--var, --var-file, PORTWARDEN_VAR_*, as for plan: give it those apply
had), compiles to what the kernel holds; portwarden_policy_matches says
whether it does, and with which variables.`,
		Example: `  portwarden metrics
  portwarden --var-file /etc/portwarden/vars.hcl.json metrics --out /var/lib/prometheus/node-exporter/portwarden.prom`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := g.loadOptions()
			if err != nil {
				return err
			}
			b, _, err := g.openBackend()
			if err != nil {
				return err
			}
			s, err := monitor.Take(context.Background(), b, "")
			if err != nil {
				return withCode(exitError1, explainKernelError(err))
			}
			v := g.newPolicyView(cmd, opts)
			v.AddDriftSinceApply(s)
			// Per allow block packets, where the backend keeps them, by
			// the blocks of the policy when the kernel holds it.
			st := &backends.State{Installed: s.Installed, Ruleset: s.Ruleset, Drift: s.Drift}
			if r, _, err := usageReport(v, b, st, 0); err == nil {
				s.Usage = r
			}
			s.Policy, _ = v.Match(b.Name(), s.Ruleset, s.Drift)
			if out == "" {
				return monitor.WriteMetrics(cmd.OutOrStdout(), s)
			}
			var buf bytes.Buffer
			if err := monitor.WriteMetrics(&buf, s); err != nil {
				return err
			}
			if err := monitor.WriteFileAtomic(out, buf.Bytes()); err != nil {
				return withCode(exitError1, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write to this file atomically (a temporary file in its directory, then a rename) instead of stdout")
	return cmd
}
