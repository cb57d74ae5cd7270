package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/auto"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
	"github.com/portwarden/portwarden/verify/monitor"
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

// newPolicyView is the view of the policies status, usage, metrics and
// check compare the kernel with: --policy when given, else the one last
// applied, loaded with opts (loadOptions).
func (g *globals) newPolicyView(cmd *cobra.Command, opts policies.Options) *monitor.PolicyView {
	return monitor.NewPolicyView(monitor.PolicyViewConfig{Policy: g.policyPath, Named: cmd.Flags().Changed("policy"),
		Options: opts, Inputs: g.variableInputs()})
}

// variableInputs names the variables this command was given.
func (g *globals) variableInputs() []string {
	var out []string
	for _, kv := range g.vars {
		name, _, _ := strings.Cut(kv, "=")
		out = append(out, "--var "+name)
	}
	for _, f := range g.varFiles {
		out = append(out, "--var-file "+f)
	}
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, policies.EnvPrefix) {
			out = append(out, name)
		}
	}
	return out
}

// loadPolicy loads and compiles the policy, printing diagnostics (errors
// and warnings) to stderr. An invalid policy returns an error that only
// carries exit code 1: the diagnostics already said everything.
func (g *globals) loadPolicy(cmd *cobra.Command) (*policies.Policy, *rules.Ruleset, error) {
	if g.loaded != nil && g.loaded.rs != nil {
		return g.loaded.pol, g.loaded.rs, nil
	}
	opts, err := g.loadOptions()
	if err != nil {
		return nil, nil, err
	}
	g.remember().started = time.Now()
	pol, diags := policies.Load(g.policyPath, opts)
	if len(diags) > 0 {
		g.writeDiagnostics(cmd.ErrOrStderr(), pol.Files, diags)
		if !diags.HasErrors() {
			var sb strings.Builder
			g.writeDiagnostics(&sb, pol.Files, diags)
			g.remember().warnings = sb.String()
		}
	}
	if diags.HasErrors() {
		return nil, nil, invalidPolicy(diags)
	}
	g.warnings = diags
	rs, err := rules.Compile(pol)
	if err != nil {
		return nil, nil, withCode(exitError1, err)
	}
	// Exposures another one always decides before: valid, but their
	// blocks (and tests) are dead on those ports. Said by every command
	// that loads the policy, and again by the unchanged fast path.
	if shadows := rs.ShadowDiagnostics(); len(shadows) > 0 {
		g.writeDiagnostics(cmd.ErrOrStderr(), pol.Files, shadows)
		var sb strings.Builder
		g.writeDiagnostics(&sb, pol.Files, shadows)
		g.remember().warnings += sb.String()
		g.warnings = append(g.warnings, shadows...)
	}
	g.remember().pol, g.loaded.rs = pol, rs
	return pol, rs, nil
}

// loaded is what one command loads at most once: a list of a million
// sources takes a second to load, and one backend instance remembers what
// it read, so plan and apply in one command read the kernel once.
type loaded struct {
	pol     *policies.Policy
	rs      *rules.Ruleset
	backend backends.Backend
	reason  string
	asked   string // --backend it was opened for
	// warnings are the diagnostics loading printed, for recordCompiled.
	warnings string
	// fingerprint is rs.Fingerprint(), once computed.
	fingerprint string
	// started is when the policy began to load.
	started time.Time
}

// fingerprint is rs.Fingerprint(), computed once for the ruleset this
// command compiled: with 100,000 sources it takes milliseconds, and plan
// and apply ask for it several times (Plan passes a canonical ruleset on
// as it is, so the desired state of a plan is that same ruleset).
func (g *globals) fingerprint(rs *rules.Ruleset) string {
	if l := g.loaded; l != nil && rs != nil && l.rs == rs {
		if l.fingerprint == "" {
			l.fingerprint = rs.Fingerprint()
		}
		return l.fingerprint
	}
	return rs.Fingerprint()
}

// releasePolicy drops the loaded policy, keeping what it compiled to:
// applying needs only the rules, and a million list file lines hold
// 100 MB of addresses the collector can then reuse while the kernel is
// written. Only a command that loads nothing more calls it.
func (g *globals) releasePolicy() {
	if g.loaded != nil {
		g.loaded.pol = nil
	}
}

func (g *globals) remember() *loaded {
	if g.loaded == nil {
		g.loaded = &loaded{}
	}
	return g.loaded
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
	if l := g.loaded; l != nil && l.backend != nil && l.asked == g.backend {
		return l.backend, l.reason, nil
	}
	b, reason, err := auto.Open(g.backend, backends.Config{StateDir: safeapply.RootDir(""), Later: safeapply.Later})
	if err != nil {
		return nil, "", withCode(exitError1, explainKernelError(err))
	}
	g.remember().backend, g.loaded.reason, g.loaded.asked = b, reason, g.backend
	return b, reason, nil
}

// prefetchKernel opens the backend and, for one that remembers what it
// read (backends.Holder), reads the kernel while the policy loads: neither
// needs the other, and with 100,000 sources each takes tens of
// milliseconds (seconds when the kernel must be dumped). The returned
// func waits for it and hands the backend to openBackend; a failure is
// left for openBackend and Plan to report in their turn.
func (g *globals) prefetchKernel() (wait func()) {
	if l := g.loaded; l != nil && l.backend != nil && l.asked == g.backend {
		// Open already (the unchanged check found the kernel written since).
		b := l.backend
		if _, ok := b.(backends.Holder); !ok {
			return func() {}
		}
		read := make(chan struct{})
		go func() {
			b.Current(context.Background())
			close(read)
		}()
		return func() { <-read }
	}
	type opened struct {
		b      backends.Backend
		reason string
		err    error
	}
	asked := g.backend
	done := make(chan opened, 1)
	go func() {
		b, reason, err := auto.Open(asked, backends.Config{StateDir: safeapply.RootDir(""), Later: safeapply.Later})
		if _, ok := b.(backends.Holder); ok && err == nil {
			b.Current(context.Background()) // remembered; an error comes again from Plan
		}
		done <- opened{b, reason, err}
	}()
	return func() {
		o := <-done
		if l := g.loaded; o.err == nil && (l == nil || l.backend == nil) {
			g.remember().backend, g.loaded.reason, g.loaded.asked = o.b, o.reason, asked
		}
	}
}

// explainKernelError adds what to do to the errors people meet most.
func explainKernelError(err error) error {
	switch {
	case errors.Is(err, backends.ErrPermission):
		return fmt.Errorf("%w\nRun portwarden as root (it needs CAP_NET_ADMIN), e.g. with sudo", err)
	}
	return err
}

// printJSON writes v as indented JSON.
// A map document (the small outputs of apply, destroy, confirm, test,
// doctor, compile) gets the format_version every document carries.
func printJSON(w io.Writer, v any) error {
	if m, ok := v.(map[string]any); ok {
		if _, has := m["format_version"]; !has {
			m["format_version"] = formatVersion
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether standard input is a terminal a person can
// answer on.
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// state is this namespace's state directory and the journal entry of the
// last apply, each read once per process: plan asks for them in several
// places (the compiled record, drift, an unfinished apply).
type state struct {
	dir         *safeapply.Dir
	err         error
	applied     *safeapply.Applied
	appliedRead bool
	// compiled is the record of the last compile, as unchanged read it.
	compiled *safeapply.Compiled
}

// stateDir opens (and creates) this namespace's state directory once.
func (g *globals) stateDir() (*safeapply.Dir, error) {
	if g.state == nil {
		g.state = &state{}
		g.state.dir, g.state.err = safeapply.Open("")
	}
	return g.state.dir, g.state.err
}

// existingStateDir is this namespace's state directory when it exists
// already (safeapply.OpenExisting), nil otherwise, for what only looks:
// it makes no directory. The one stateDir opened, if any, is reused.
func (g *globals) existingStateDir() (*safeapply.Dir, error) {
	if g.state != nil {
		return g.state.dir, g.state.err
	}
	return safeapply.OpenExisting("")
}

// lastApplied is the journal entry of the last apply here, nil when there
// is none or it cannot be read.
func (g *globals) lastApplied() *safeapply.Applied {
	dir, err := g.stateDir()
	if err != nil {
		return nil
	}
	if !g.state.appliedRead {
		g.state.applied, _ = dir.LastApplied()
		g.state.appliedRead = true
	}
	return g.state.applied
}
