package main

import (
	"context"
	"fmt"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/verify/monitor"
	"github.com/portwarden/portwarden/verify/usage"
	"github.com/spf13/cobra"
)

func newCheckCmd(g *globals) *cobra.Command {
	var runTests bool
	var warnUnused, warnExpiry string
	cmd := &cobra.Command{
		Use:   "check [--verify] [--warn-expiry 3d] [--warn-unused D]",
		Short: "A Nagios/Icinga plugin: one status line, perfdata, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
		Long: `check judges the firewall as a monitoring plugin: exit 2 (CRITICAL) for drift
(owned objects changed by hand, or access opened or closed outside portwarden
since the last apply), for applied rules missing from the kernel, and with
--verify for a test block of the policy that fails against what the kernel
holds, and with --policy when the kernel does not hold that policy; exit 1
(WARNING) for a change awaiting portwarden confirm (it rolls back without
one), with --warn-expiry D for access (allow blocks with expires) that ends
within D, with --warn-unused D for an allowed source not seen within D (see
usage), and when the kernel differs from the last apply in a way check cannot
tell from access that expired (give it the variables apply had); exit 3
(UNKNOWN) when the kernel cannot be read (no privileges, no backend) and for
any other failure, bad flags included; else exit 0 (OK).
Durations are days (3d), a Go duration (72h) or both (1d12h).
The policy for --verify is --policy, else the one last applied, loaded with
the variables given to check (--var, --var-file, PORTWARDEN_VAR_*, as for
plan): give it those apply had.`,
		Example: `  portwarden check
  portwarden --policy /etc/portwarden check --verify
  portwarden --var-file /etc/portwarden/vars.hcl.json check --verify
  portwarden check --warn-expiry 3d    # WARNING three days before access ends
  portwarden check --warn-unused 90d`,
		// Arguments and flags are checked in RunE and by the flag error
		// function: every failure is one UNKNOWN line, exit 3.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			unknown := func(err error) error {
				monitor.UnknownResult(err).Write(w)
				return silentExit(monitor.Unknown)
			}
			if len(args) > 0 {
				return unknown(fmt.Errorf("check takes no arguments, got %q: see portwarden check --help", args[0]))
			}
			var o monitor.CheckOptions
			if warnExpiry != "" {
				d, err := usage.ParseDuration(warnExpiry)
				if err != nil {
					return unknown(fmt.Errorf("--warn-expiry: %w", err))
				}
				o.WarnExpiry = d
			}
			var unusedSince time.Duration
			if warnUnused != "" {
				d, err := usage.ParseDuration(warnUnused)
				if err != nil {
					return unknown(fmt.Errorf("--warn-unused: %w", err))
				}
				unusedSince = d
			}
			opts, err := g.loadOptions()
			if err != nil {
				return unknown(err)
			}
			b, _, err := g.openBackend()
			if err != nil {
				return unknown(err)
			}
			s, err := monitor.Take(context.Background(), b, "")
			if err != nil {
				return unknown(explainKernelError(err))
			}
			v := g.newPolicyView(cmd, opts)
			v.AddDriftSinceApply(s)
			if runTests || v.Named() {
				if err := v.CheckPolicy(s, runTests, &o); err != nil {
					return unknown(err)
				}
			}
			if warnUnused != "" {
				st := &backends.State{Installed: s.Installed, Ruleset: s.Ruleset, Drift: s.Drift}
				if s.Usage, _, err = usageReport(v, b, st, unusedSince); err != nil {
					return unknown(explainKernelError(err))
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
	// A flag that does not parse is UNKNOWN too, never cobra's exit 1
	// (WARNING to Nagios) with only an error on stderr.
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		monitor.UnknownResult(fmt.Errorf("%w: see portwarden check --help", err)).Write(c.OutOrStdout())
		return silentExit(monitor.Unknown)
	})
	cmd.Flags().BoolVar(&runTests, "verify", false, "also run the policy's test blocks against the ruleset the kernel holds")
	cmd.Flags().StringVar(&warnExpiry, "warn-expiry", "", "WARNING when access the kernel holds ends within this time (3d, 72h, 1d12h)")
	cmd.Flags().StringVar(&warnUnused, "warn-unused", "", "WARNING when an allowed source was not seen within this time (30d, 36h; 0s: never seen since the rules went in); see portwarden usage")
	return cmd
}
