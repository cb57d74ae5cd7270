package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/portwarden/portwarden/verify"
	"github.com/spf13/cobra"
)

func newVerifyCmd(g *globals) *cobra.Command {
	var sandbox, noBoundary bool
	var target, as, source, junit string
	var timeout time.Duration
	var parallel int
	cmd := &cobra.Command{
		Use:   "verify (--sandbox | --target HOST [--as ADDR] [--source ADDR])",
		Short: "Prove the policy with real connections: in a throwaway sandbox, or live against a host",
		Example: `  portwarden --policy /etc/portwarden verify --sandbox
  portwarden --policy /etc/portwarden verify --target 198.51.100.10                  # from a peer
  portwarden --policy /etc/portwarden verify --target 198.51.100.10 --as 203.0.113.5 # the server sees this peer as 203.0.113.5 (NAT)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if sandbox == (target != "") {
				return withCode(exitError1, errors.New("choose one: --sandbox, or --target HOST"))
			}
			pol, rs, err := g.loadPolicy(cmd)
			if err != nil {
				return err
			}
			// Ctrl-C and SIGTERM cancel the probes; deferred clean-up removes
			// every sandbox namespace before the process exits.
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var rep *verify.Report
			if sandbox {
				cfg := verify.SandboxConfig{Policy: pol, Ruleset: rs, Backend: g.backend, Timeout: timeout, Parallel: parallel, Boundary: !noBoundary}
				if f, ok := cmd.ErrOrStderr().(*os.File); ok && isTerminal(f) && !g.json {
					cfg.Progress = func(done, total int) {
						if done%25 == 0 || done == total {
							fmt.Fprintf(f, "\rprobing %d/%d", done, total)
							if done == total {
								fmt.Fprint(f, "\r\033[K")
							}
						}
					}
				}
				rep, err = verify.Sandbox(ctx, cfg)
			} else {
				cfg := verify.LiveConfig{Ruleset: rs, Target: target, Timeout: timeout, Parallel: parallel}
				if as != "" {
					if cfg.As, err = netip.ParseAddr(as); err != nil {
						return withCode(exitError1, fmt.Errorf("--as %q is not an IP address", as))
					}
				}
				if source != "" {
					if cfg.Source, err = netip.ParseAddr(source); err != nil {
						return withCode(exitError1, fmt.Errorf("--source %q is not an IP address", source))
					}
					if !verify.IsLocalAddr(cfg.Source) {
						return withCode(exitError1, fmt.Errorf("--source %s is not an address of this host: probes can only leave from one (ip -br addr lists them); use --as for the address the server sees", source))
					}
				}
				rep, err = verify.Live(ctx, cfg)
			}
			if err != nil {
				return withCode(exitError1, explainKernelError(err))
			}
			if junit != "" {
				f, err := os.Create(junit)
				if err != nil {
					return withCode(exitError1, fmt.Errorf("junit report: %w", err))
				}
				err = rep.WriteJUnit(f)
				f.Close()
				if err != nil {
					return withCode(exitError1, err)
				}
			}
			w := cmd.OutOrStdout()
			if g.json {
				if rep.Checks == nil {
					rep.Checks = []verify.Check{}
				}
				if err := printJSON(w, verifyJSON{FormatVersion: formatVersion, Report: rep}); err != nil {
					return err
				}
			} else {
				rep.WriteText(w, g.color(w))
			}
			if rep.Failed() {
				return silentExit(exitFailed)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&sandbox, "sandbox", false, "verify in throwaway network namespaces with the real kernel")
	f.BoolVar(&noBoundary, "no-boundary", false, "with --sandbox: probe only the test blocks' sources")
	f.StringVar(&target, "target", "", "verify this live host from here")
	f.StringVar(&as, "as", "", "with --target: the address the server sees for this host; probes leave from it when it is local")
	f.StringVar(&source, "source", "", "with --target: send the probes from this address of this host (as nc -s)")
	f.StringVar(&junit, "junit", "", "also write a JUnit XML report to this file")
	f.DurationVar(&timeout, "timeout", verify.DefaultTimeout, "per-probe timeout")
	f.IntVar(&parallel, "parallel", 0, "probes at once (default 128 in the sandbox, 32 live)")
	return cmd
}

// verifyJSON is the report with the format version of the JSON contract.
type verifyJSON struct {
	FormatVersion int `json:"format_version"`
	*verify.Report
}
