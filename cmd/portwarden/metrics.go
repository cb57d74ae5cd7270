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
		Example: `  portwarden metrics
  portwarden metrics --out /var/lib/prometheus/node-exporter/portwarden.prom`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, _, err := g.openBackend()
			if err != nil {
				return err
			}
			s, err := monitor.Take(context.Background(), b, "")
			if err != nil {
				return withCode(exitError1, explainKernelError(err))
			}
			// Per allow block packets, where the backend keeps them.
			if r, _, err := g.usageReport(cmd, b, &backends.State{Ruleset: s.Ruleset, Drift: s.Drift}, 0); err == nil {
				s.Usage = r
			}
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
