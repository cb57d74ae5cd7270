package main

import (
	"context"
	"fmt"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
	"github.com/portwarden/portwarden/verify/monitor"
	"github.com/portwarden/portwarden/verify/usage"
	"github.com/spf13/cobra"
)

func newCheckCmd(g *globals) *cobra.Command {
	var runTests bool
	var warnUnused string
	var warnExpiry time.Duration
	cmd := &cobra.Command{
		Use:   "check [--verify] [--warn-expiry 72h] [--warn-unused D]",
		Short: "A Nagios/Icinga plugin: one status line, perfdata, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
		Long: `check judges the firewall as a monitoring plugin: exit 2 (CRITICAL) for drift,
for applied rules missing from the kernel, and with --verify for a test block
of the policy that fails against what the kernel holds, and with --policy
when the kernel does not hold that policy; exit 1 (WARNING) for
a change awaiting portwarden confirm (it rolls back without one), with
--warn-expiry D for access (allow blocks with expires) that ends within D,
and with --warn-unused D for an allowed source not seen within D (see
usage); exit 3 (UNKNOWN) when the kernel cannot be read (no privileges, no
backend); else exit 0 (OK).
The policy for --verify is --policy, else the one last applied.`,
		Example: `  portwarden check
  portwarden --policy /etc/portwarden check --verify
  portwarden check --warn-expiry 72h   # WARNING three days before access ends
  portwarden check --warn-unused 90d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			b, _, err := g.openBackend()
			if err != nil {
				monitor.UnknownResult(err).Write(w)
				return silentExit(monitor.Unknown)
			}
			s, err := monitor.Take(context.Background(), b, "")
			if err != nil {
				monitor.UnknownResult(explainKernelError(err)).Write(w)
				return silentExit(monitor.Unknown)
			}
			var o monitor.CheckOptions
			if runTests || cmd.Flags().Changed("policy") {
				if o, err = g.policyChecks(cmd, s, runTests); err != nil {
					monitor.UnknownResult(err).Write(w)
					return silentExit(monitor.Unknown)
				}
			}
			o.WarnExpiry = warnExpiry
			if warnUnused != "" {
				d, err := usage.ParseDuration(warnUnused)
				if err != nil {
					monitor.UnknownResult(fmt.Errorf("--warn-unused: %w", err)).Write(w)
					return silentExit(monitor.Unknown)
				}
				if s.Usage, _, err = g.usageReport(cmd, b, &backends.State{Ruleset: s.Ruleset, Drift: s.Drift}, d); err != nil {
					monitor.UnknownResult(explainKernelError(err)).Write(w)
					return silentExit(monitor.Unknown)
				}
				o.WarnUnused, o.UnusedWindow = true, warnUnused
			}
			r := monitor.Check(s, o)
			r.Write(w)
			if r.Code != monitor.OK {
				return silentExit(r.Code)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&runTests, "verify", false, "also run the policy's test blocks against the ruleset the kernel holds")
	cmd.Flags().DurationVar(&warnExpiry, "warn-expiry", 0, "WARNING when access the kernel holds ends within this time (e.g. 72h)")
	cmd.Flags().StringVar(&warnUnused, "warn-unused", "", "WARNING when an allowed source was not seen within this time (30d, 36h; 0s: never seen since the rules went in); see portwarden usage")
	return cmd
}

// policyChecks compares the kernel with the policy named with --policy,
// and with runTests runs that policy's test blocks (else the last applied
// policy's) against the ruleset the kernel holds.
func (g *globals) policyChecks(cmd *cobra.Command, s *monitor.Snapshot, runTests bool) (monitor.CheckOptions, error) {
	var o monitor.CheckOptions
	named := cmd.Flags().Changed("policy")
	if !named {
		if p := lastAppliedPolicy(); p != "" {
			g.policyPath = p
		}
	}
	opts, err := g.loadOptions()
	if err != nil {
		return o, err
	}
	pol, diags := policies.Load(g.policyPath, opts)
	if diags.HasErrors() {
		return o, fmt.Errorf("the policy %s does not load: run portwarden --policy %s validate", g.policyPath, g.policyPath)
	}
	if named {
		desired, err := rules.Compile(pol)
		if err != nil {
			return o, fmt.Errorf("the policy %s does not compile: %w", g.policyPath, err)
		}
		if desired.Fingerprint() != s.Fingerprint {
			o.Mismatch = g.policyPath
		}
	}
	if !runTests {
		return o, nil
	}
	o.FailedTests = []string{}
	for _, r := range rules.RunTests(pol, s.Ruleset) {
		o.TestsRun++
		if !r.Pass {
			o.FailedTests = append(o.FailedTests, r.Name)
		}
	}
	return o, nil
}

// lastAppliedPolicy is the path of the policy last applied here, "" when
// unknown.
func lastAppliedPolicy() string {
	dir, err := safeapply.OpenExisting("")
	if err != nil || dir == nil {
		return ""
	}
	a, _ := dir.LastApplied()
	if a == nil {
		return ""
	}
	return a.Policy
}
