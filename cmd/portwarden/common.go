package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/auto"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// loadOptions turns the global flags and the environment into policy
// loading options. --var values are name=value.
func (g *globals) loadOptions() (policies.Options, error) {
	opts := policies.Options{Vars: map[string]string{}, VarFiles: g.varFiles, Environ: os.Environ()}
	if !g.strictModes {
		opts.Trust = policies.TrustWarn
	}
	for _, kv := range g.vars {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return opts, withCode(exitError1, fmt.Errorf("--var %q: write it as name=value", kv))
		}
		opts.Vars[name] = value
	}
	return opts, nil
}

// loadPolicy loads and compiles the policy, printing diagnostics (errors
// and warnings) to stderr. An invalid policy returns an error that only
// carries exit code 1: the diagnostics already said everything.
func (g *globals) loadPolicy(cmd *cobra.Command) (*policies.Policy, *rules.Ruleset, error) {
	opts, err := g.loadOptions()
	if err != nil {
		return nil, nil, err
	}
	pol, diags := policies.Load(g.policyPath, opts)
	if len(diags) > 0 {
		g.writeDiagnostics(cmd.ErrOrStderr(), pol.Files, diags)
	}
	if diags.HasErrors() {
		return nil, nil, silentExit(exitError1)
	}
	rs, err := rules.Compile(pol)
	if err != nil {
		return nil, nil, withCode(exitError1, err)
	}
	return pol, rs, nil
}

func (g *globals) writeDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) {
	if err := policies.WriteDiagnostics(w, files, diags, g.color(w)); err != nil {
		for _, d := range diags {
			fmt.Fprintln(w, policies.FormatDiagnostic(d))
		}
	}
}

// color reports whether output to w may use colour: not with --no-color or
// NO_COLOR, and only on a terminal.
func (g *globals) color(w io.Writer) bool {
	if g.noColor || os.Getenv("NO_COLOR") != "" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// openBackend opens the chosen backend in the current network namespace
// (`ip netns exec NAME portwarden ...` chooses the namespace) and says why
// it was chosen.
func (g *globals) openBackend() (backends.Backend, string, error) {
	b, reason, err := auto.Open(g.backend, backends.Config{})
	if err != nil {
		return nil, "", withCode(exitError1, explainKernelError(err))
	}
	return b, reason, nil
}

// explainKernelError adds what to do to the errors people meet most.
func explainKernelError(err error) error {
	switch {
	case errors.Is(err, backends.ErrPermission):
		return fmt.Errorf("%w\nRun portwarden as root (it needs CAP_NET_ADMIN), e.g. with sudo", err)
	case errors.Is(err, backends.ErrStalePlan):
		return fmt.Errorf("%w\nThe saved plan no longer matches the firewall: run portwarden plan again and review it", err)
	}
	return err
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether standard input is a terminal a person can
// answer on.
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
