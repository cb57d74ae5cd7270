package monitor

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
	"github.com/zclconf/go-cty/cty"
)

// PolicyComparison says whether the kernel holds a policy, loaded with
// the variables the command was given; status and usage print it as JSON,
// metrics as portwarden_policy_matches (Snapshot.Policy).
type PolicyComparison struct {
	Path    string `json:"path"`
	Matches bool   `json:"matches"`
	Error   string `json:"error,omitempty"`
	// Inputs are the variables this command was given, as plan takes
	// them: "--var NAME", "--var-file FILE", "PORTWARDEN_VAR_NAME".
	// Defaults are the policy's variables that kept their default.
	Inputs   []string `json:"inputs,omitempty"`
	Defaults []string `json:"defaults,omitempty"`
	// AsApplied: the kernel holds what was last applied from Path, yet
	// Path loaded with these variables compiles to other rules: apply had
	// other variables, or the policy changed since.
	AsApplied bool `json:"as_applied,omitempty"`
}

// Variables says in words what the policy was loaded with; "" when it
// declares no variables and none were given.
func (m *PolicyComparison) Variables() string {
	var parts []string
	parts = append(parts, m.Inputs...)
	switch len(m.Defaults) {
	case 0:
	case 1:
		parts = append(parts, m.Defaults[0]+" at its default")
	default:
		parts = append(parts, strings.Join(m.Defaults, ", ")+" at their defaults")
	}
	return strings.Join(parts, "; ")
}

// PolicyViewConfig is what a command was given that decides which policy
// the kernel is compared with, and how it loads.
type PolicyViewConfig struct {
	// Policy is the policy path the command was given (--policy, or its
	// default); Named says it was given explicitly, and then it is the
	// policy compared with rather than the one last applied.
	Policy string
	Named  bool
	// Options load every policy the view loads: the command's variables
	// as plan takes them.
	Options policies.Options
	// Inputs name those variables as the command was given them
	// ("--var NAME", "--var-file FILE", "PORTWARDEN_VAR_NAME").
	Inputs []string
	// StateRoot is the state directory's root ("" for the default,
	// PORTWARDEN_STATE_DIR), where the last apply is recorded.
	StateRoot string
}

// PolicyView loads the policies status, usage, metrics and check compare
// the kernel with, each at most once per command, with the variables the
// command was given (--var, --var-file, PORTWARDEN_VAR_*) as plan takes
// them, and knows the last apply: what the kernel should hold whatever
// the variables (the journal records its fingerprint).
type PolicyView struct {
	c PolicyViewConfig
	// dir is the state directory as NewPolicyView opened it, nil when
	// there is none; applied is its last apply.
	dir     *safeapply.Dir
	applied *safeapply.Applied
	loaded  map[string]*loadedPolicy
}

// loadedPolicy is one policy loaded and compiled now, or why it could not be.
type loadedPolicy struct {
	pol *policies.Policy
	rs  *rules.Ruleset
	err error
}

// NewPolicyView reads the last apply from the state directory; when there
// is none, or it cannot be read, nothing was applied as far as the view
// knows.
func NewPolicyView(c PolicyViewConfig) *PolicyView {
	v := &PolicyView{c: c, loaded: map[string]*loadedPolicy{}}
	if dir, err := safeapply.OpenExisting(c.StateRoot); err == nil && dir != nil {
		v.dir = dir
		v.applied, _ = dir.LastApplied()
	}
	return v
}

// Named reports whether the command named the policy to compare with
// (--policy).
func (v *PolicyView) Named() bool { return v.c.Named }

// Path is the policy to compare the kernel with: --policy, else the one
// last applied; "" when neither is known.
func (v *PolicyView) Path() string {
	if v.c.Named {
		return v.c.Policy
	}
	if a := v.applied; a != nil && !a.RolledBack {
		return a.Policy
	}
	return ""
}

func (v *PolicyView) load(path string) *loadedPolicy {
	if p, ok := v.loaded[path]; ok {
		return p
	}
	p := &loadedPolicy{}
	v.loaded[path] = p
	pol, diags := policies.Load(path, v.c.Options)
	if diags.HasErrors() {
		p.err = fmt.Errorf("the policy does not load: run portwarden --policy %s validate", path)
		return p
	}
	p.pol = pol
	var err error
	if p.rs, err = rules.Compile(pol); err != nil {
		p.err = err
	}
	return p
}

// defaultedVariables names the variables of pol that kept their default.
func defaultedVariables(pol *policies.Policy) []string {
	var out []string
	for _, x := range pol.Variables {
		if x.Default != cty.NilVal && x.Value.RawEquals(x.Default) {
			out = append(out, x.Name)
		}
	}
	return out
}

// isApplied reports whether path is the policy of the last apply with
// this backend.
func (v *PolicyView) isApplied(path, backend string) bool {
	a := v.applied
	if a == nil || a.RolledBack || a.Policy == "" || a.Backend != backend {
		return false
	}
	abs, err := filepath.Abs(path)
	return err == nil && (abs == a.Policy || path == a.Policy)
}

// Match compares the kernel (current, and drift: what differs from what
// portwarden wrote) with the policy of Path(), and returns that
// policy's ruleset when the kernel holds exactly it (its blocks then
// group the kernel's sources); nil, nil when no policy is known.
func (v *PolicyView) Match(backend string, current *rules.Ruleset, drift []string) (*PolicyComparison, *rules.Ruleset) {
	path := v.Path()
	if path == "" {
		return nil, nil
	}
	m := &PolicyComparison{Path: path, Inputs: v.c.Inputs}
	p := v.load(path)
	if p.pol != nil {
		m.Defaults = defaultedVariables(p.pol)
	}
	if p.err != nil {
		m.Error = p.err.Error()
		return m, nil
	}
	fp := current.Fingerprint()
	m.Matches = p.rs.Fingerprint() == fp && len(drift) == 0
	if m.Matches {
		return m, p.rs
	}
	m.AsApplied = len(drift) == 0 && v.isApplied(path, backend) && v.applied.Fingerprint == fp
	return m, nil
}

// DriftSinceApply says how the kernel differs from what the last apply
// wrote: access opened or closed, ports, exposures changed outside
// portwarden (access that expired as applied is no change). It rebuilds
// what was applied from the policy of the last apply, loaded with this
// command's variables and compiled as of the apply, when that gives the
// recorded fingerprint; else it knows only that the fingerprints differ,
// which is a change (first result) unless access may have expired since,
// when it cannot tell (second result).
func (v *PolicyView) DriftSinceApply(backend string, st *backends.State, now time.Time) (changes []string, unverified string) {
	a := v.applied
	if a == nil || a.Backend != backend || a.Fingerprint == "" || !st.Installed {
		return nil, "" // nothing recorded, or missing rules (Snapshot.Missing)
	}
	kernel := st.Ruleset.Fingerprint()
	if kernel == a.Fingerprint {
		return nil, ""
	}
	hint := "the last change was rolled back: portwarden --policy POLICY plan shows how the kernel differs from a policy"
	if !a.RolledBack && a.Policy != "" {
		p := v.load(a.Policy)
		if p.err == nil {
			asApplied := *p.pol
			asApplied.LoadedAt = a.When
			if rs, err := rules.Compile(&asApplied); err == nil && rs.Fingerprint() == a.Fingerprint {
				return ChangedSinceApply(rs, st.Ruleset, now), ""
			}
		}
		m := PolicyComparison{Inputs: v.c.Inputs}
		if p.pol != nil {
			m.Defaults = defaultedVariables(p.pol)
		}
		with := ""
		if w := m.Variables(); w != "" {
			with = " loaded with " + w
		}
		what := "does not rebuild that apply to say how (apply had other variables, or the policy changed since)"
		if p.pol == nil {
			what = "does not load to rebuild that apply and say how"
		}
		hint = fmt.Sprintf("%s%s %s: run portwarden --policy %s plan with apply's variables", a.Policy, with, what, a.Policy)
	}
	differ := fmt.Sprintf("the kernel's rules (fingerprint %.12s) differ from the last apply (%.12s)", kernel, a.Fingerprint)
	var pol *policies.Policy
	if !a.RolledBack && a.Policy != "" {
		pol = v.load(a.Policy).pol
	}
	if !mayHaveExpired(v.dir, a, backend, now, pol) {
		return []string{differ + "; " + hint}, ""
	}
	return nil, differ + " and access granted until a deadline may have expired since, which cannot be told from a change by hand without what was applied; " + hint
}

// AddDriftSinceApply adds to the snapshot how the kernel differs from the
// last apply (DriftSinceApply, as of s.Taken): access opened or closed
// outside portwarden is drift, as an owned object changed by hand is. It
// reports whether the kernel differs from the last apply by more than
// access that expired as applied, or may (s.DriftUnverified).
func (v *PolicyView) AddDriftSinceApply(s *Snapshot) (changed bool) {
	st := &backends.State{Installed: s.Installed, Ruleset: s.Ruleset, Drift: s.Drift}
	changes, unverified := v.DriftSinceApply(s.Backend, st, s.Taken)
	s.Drift = append(s.Drift, changes...)
	s.DriftUnverified = unverified
	return len(changes) > 0 || unverified != ""
}

// mayHaveExpired reports whether access of the last apply may have
// expired since and left the kernel by itself. iptables keeps an expired
// grant's rule (inert) until the next apply, so there it never did. On
// nftables the record of the apply's compile (in the state directory
// dir, the one the view read the apply from) says when its first grant
// ended, when it is that apply's; else the policy of the apply (pol, nil
// when it does not load) grants nothing until a deadline, whatever its
// variables, when none of its allow blocks and list file lines has
// expires.
func mayHaveExpired(dir *safeapply.Dir, a *safeapply.Applied, backend string, now time.Time, pol *policies.Policy) bool {
	if backend == "iptables" {
		return false
	}
	if dir != nil {
		if c, _ := dir.LastCompiled(); c != nil && c.Fingerprint == a.Fingerprint && c.Backend == backend {
			return !c.NextExpiry.IsZero() && !c.NextExpiry.After(now)
		}
	}
	return pol == nil || grantsUntilDeadline(pol)
}

// grantsUntilDeadline reports whether an allow block or a list file line
// of pol has expires.
func grantsUntilDeadline(pol *policies.Policy) bool {
	for _, x := range pol.Exposes {
		for _, r := range x.Allow {
			if !r.Expires.IsZero() {
				return true
			}
			for _, f := range r.From {
				if !f.Expires.IsZero() {
					return true
				}
			}
		}
	}
	return false
}

// CheckPolicy compares the kernel with the policy named with --policy,
// and with runTests runs that policy's test blocks (else the last applied
// policy's) against the ruleset the kernel holds; the policy is loaded
// with the variables check was given. What it finds goes into o, for
// Check to judge.
func (v *PolicyView) CheckPolicy(s *Snapshot, runTests bool, o *CheckOptions) error {
	path := v.Path()
	if path == "" {
		path = v.c.Policy // nothing applied here: the default, "."
	}
	p := v.load(path)
	if p.err != nil {
		if p.pol == nil {
			return fmt.Errorf("the policy %s does not load: run portwarden --policy %s validate", path, path)
		}
		return fmt.Errorf("the policy %s does not compile: %w", path, p.err)
	}
	if v.c.Named {
		if m, _ := v.Match(s.Backend, s.Ruleset, s.Drift); m != nil && !m.Matches {
			o.Mismatch, o.MismatchVariables, o.MismatchAsApplied = path, m.Variables(), m.AsApplied
		}
	}
	if !runTests {
		return nil
	}
	o.FailedTests = []string{}
	o.TestsVariables = (&PolicyComparison{Inputs: v.c.Inputs, Defaults: defaultedVariables(p.pol)}).Variables()
	for _, r := range rules.RunTests(p.pol, s.Ruleset) {
		o.TestsRun++
		if !r.Pass {
			o.FailedTests = append(o.FailedTests, r.Name)
		}
	}
	return nil
}
