package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/portwarden/portwarden/rules"
	"github.com/portwarden/portwarden/verify"
	"github.com/spf13/cobra"
)

func newProbeCmd(g *globals) *cobra.Command {
	var source, expect, protocol string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "probe HOST:PORT [--source ADDR] [--timeout D] [--expect STATE]",
		Short: "Probe one port: open, closed, filtered or rejected (exit 3 when --expect differs)",
		Example: `  portwarden probe 198.51.100.10:27
  portwarden probe [2001:db8::10]:27 --source 2001:db8::7 --expect filtered`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := netip.ParseAddrPort(args[0])
			if err != nil {
				return withCode(exitError1, fmt.Errorf("%q: give the target as ADDRESS:PORT, e.g. 198.51.100.10:27 or [2001:db8::10]:27", args[0]))
			}
			spec := verify.ProbeSpec{Protocol: rules.Protocol(protocol), Target: target, Timeout: timeout}
			if spec.Protocol != rules.TCP && spec.Protocol != rules.UDP {
				return withCode(exitError1, fmt.Errorf("--protocol %q: use tcp or udp", protocol))
			}
			if source != "" {
				if spec.Source, err = netip.ParseAddr(source); err != nil {
					return withCode(exitError1, fmt.Errorf("--source %q is not an IP address", source))
				}
			}
			var want verify.State
			if expect != "" {
				var ok bool
				if want, ok = verify.ParseState(expect); !ok {
					return withCode(exitError1, fmt.Errorf("--expect %q: use open, closed, filtered or rejected", expect))
				}
			}
			r := verify.Probe(context.Background(), spec)
			w := cmd.OutOrStdout()
			if g.json {
				if err := printJSON(w, r); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(w, "%s %s: %s in %s", r.Protocol, r.Target, r.State, r.Elapsed.Round(time.Millisecond))
				if r.Detail != "" && r.State != verify.Open {
					fmt.Fprintf(w, " (%s)", r.Detail)
				}
				fmt.Fprintln(w)
			}
			if r.State == verify.Error {
				return withCode(exitError1, fmt.Errorf("the probe could not run: %s", r.Detail))
			}
			if want != "" && r.State != want {
				fmt.Fprintf(cmd.ErrOrStderr(), "expected %s, observed %s\n", want, r.State)
				return silentExit(exitFailed)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&source, "source", "", "source address to probe from (default: the kernel's choice)")
	f.StringVar(&protocol, "protocol", "tcp", "tcp or udp")
	f.StringVar(&expect, "expect", "", "expected state: open, closed, filtered or rejected")
	f.DurationVar(&timeout, "timeout", verify.DefaultTimeout, "how long to wait for an answer")
	return cmd
}
