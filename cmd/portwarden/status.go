package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
	"github.com/portwarden/portwarden/verify/monitor"
	"github.com/spf13/cobra"
	"github.com/zclconf/go-cty/cty"
)

type statusJSON struct {
	FormatVersion int      `json:"format_version"`
	Backend       string   `json:"backend"`
	Installed     bool     `json:"installed"`
	Fingerprint   string   `json:"fingerprint"` // of the ruleset in the kernel
	Exposures     int      `json:"exposures"`
	Drift         []string `json:"drift"`
	// DriftUnverified: the kernel differs from the last apply, by access
	// that expired or by a change by hand, which status could not tell.
	DriftUnverified string             `json:"drift_unverified,omitempty"`
	Applied         *safeapply.Applied `json:"last_applied,omitempty"`
	LastEvent       *safeapply.Event   `json:"last_event,omitempty"`
	Pending         *safeapply.Pending `json:"pending_confirmation,omitempty"`
	Counters        []backends.Counter `json:"counters"`
	// Access says who may get in, per exposure.
	Access []accessJSON `json:"access"`
	// Policy is the policy the kernel was compared with (--policy, or the
	// one last applied), and whether the kernel matches it.
	Policy *policyMatch `json:"policy,omitempty"`
	// Unfinished: the last apply did not finish (what each family holds).
	Unfinished string `json:"unfinished_apply,omitempty"`
	// ExpiringSoon: access the kernel holds that ends within 7 days.
	ExpiringSoon []rules.Expiry `json:"expiring_soon"`

	// changedSinceApply: the kernel differs from the last apply by more
	// than access that expired (or status could not tell).
	changedSinceApply bool
}

type policyMatch struct {
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

// variables says in words what the policy was loaded with; "" when it
// declares no variables and none were given.
func (m *policyMatch) variables() string {
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

// policyView loads the policies status, usage, metrics and check compare
// the kernel with, each at most once per command, with the variables the
// command was given (--var, --var-file, PORTWARDEN_VAR_*) as plan takes
// them, and knows the last apply: what the kernel should hold whatever
// the variables (the journal records its fingerprint).
type policyView struct {
	g       *globals
	named   bool // --policy was given
	applied *safeapply.Applied
	loaded  map[string]*viewPolicy
}

// viewPolicy is one policy loaded and compiled now, or why it could not be.
type viewPolicy struct {
	pol *policies.Policy
	rs  *rules.Ruleset
	err error
}

func (g *globals) newPolicyView(cmd *cobra.Command) *policyView {
	v := &policyView{g: g, named: cmd.Flags().Changed("policy"), loaded: map[string]*viewPolicy{}}
	if dir, err := safeapply.OpenExisting(""); err == nil && dir != nil {
		v.applied, _ = dir.LastApplied()
	}
	return v
}

// path is the policy to compare the kernel with: --policy, else the one
// last applied; "" when neither is known.
func (v *policyView) path() string {
	if v.named {
		return v.g.policyPath
	}
	if a := v.applied; a != nil && !a.RolledBack {
		return a.Policy
	}
	return ""
}

func (v *policyView) load(path string) *viewPolicy {
	if p, ok := v.loaded[path]; ok {
		return p
	}
	p := &viewPolicy{}
	v.loaded[path] = p
	opts, err := v.g.loadOptions()
	if err != nil {
		p.err = err
		return p
	}
	pol, diags := policies.Load(path, opts)
	if diags.HasErrors() {
		p.err = fmt.Errorf("the policy does not load: run portwarden --policy %s validate", path)
		return p
	}
	p.pol = pol
	if p.rs, err = rules.Compile(pol); err != nil {
		p.err = err
	}
	return p
}

// inputs names the variables this command was given.
func (v *policyView) inputs() []string {
	var out []string
	for _, kv := range v.g.vars {
		name, _, _ := strings.Cut(kv, "=")
		out = append(out, "--var "+name)
	}
	for _, f := range v.g.varFiles {
		out = append(out, "--var-file "+f)
	}
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, policies.EnvPrefix) {
			out = append(out, name)
		}
	}
	return out
}

// defaults names the variables of pol that kept their default.
func defaults(pol *policies.Policy) []string {
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
func (v *policyView) isApplied(path, backend string) bool {
	a := v.applied
	if a == nil || a.RolledBack || a.Policy == "" || a.Backend != backend {
		return false
	}
	abs, err := filepath.Abs(path)
	return err == nil && (abs == a.Policy || path == a.Policy)
}

// match compares the kernel (current, and drift: what differs from what
// portwarden wrote) with the policy of path(), and returns that
// policy's ruleset when the kernel holds exactly it (its blocks then
// group the kernel's sources); nil, nil when no policy is known.
func (v *policyView) match(backend string, current *rules.Ruleset, drift []string) (*policyMatch, *rules.Ruleset) {
	path := v.path()
	if path == "" {
		return nil, nil
	}
	m := &policyMatch{Path: path, Inputs: v.inputs()}
	p := v.load(path)
	if p.pol != nil {
		m.Defaults = defaults(p.pol)
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

// sinceApply says how the kernel differs from what the last apply wrote:
// access opened or closed, ports, exposures changed outside portwarden
// (access that expired as applied is no change). It rebuilds what was
// applied from the policy of the last apply, loaded with this command's
// variables and compiled as of the apply, when that gives the recorded
// fingerprint; else it knows only that the fingerprints differ, which is
// a change (first result) unless access may have expired since, when it
// cannot tell (second result).
func (v *policyView) sinceApply(backend string, st *backends.State, now time.Time) (changes []string, unverified string) {
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
				return monitor.ChangedSinceApply(rs, st.Ruleset, now), ""
			}
		}
		m := policyMatch{Inputs: v.inputs()}
		if p.pol != nil {
			m.Defaults = defaults(p.pol)
		}
		with := ""
		if w := m.variables(); w != "" {
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
	if !mayHaveExpired(a, backend, now, pol) {
		return []string{differ + "; " + hint}, ""
	}
	return nil, differ + " and access granted until a deadline may have expired since, which cannot be told from a change by hand without what was applied; " + hint
}

// mayHaveExpired reports whether access of the last apply may have
// expired since and left the kernel by itself. iptables keeps an expired
// grant's rule (inert) until the next apply, so there it never did. On
// nftables the record of the apply's compile says when its first grant
// ended, when it is that apply's; else the policy of the apply (pol, nil
// when it does not load) grants nothing until a deadline, whatever its
// variables, when none of its allow blocks and list file lines has
// expires.
func mayHaveExpired(a *safeapply.Applied, backend string, now time.Time, pol *policies.Policy) bool {
	if backend == "iptables" {
		return false
	}
	if dir, err := safeapply.OpenExisting(""); err == nil && dir != nil {
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

// accessJSON is one exposure as status shows it: ports, default, and the
// sources, grouped by the block that wrote them when the policy is known.
type accessJSON struct {
	Expose       string         `json:"expose"`
	Protocol     rules.Protocol `json:"protocol"`
	Ports        []string       `json:"ports"`
	Default      rules.Verdict  `json:"default"`
	Log          bool           `json:"log"`
	Loopback     bool           `json:"loopback"`
	Interfaces   []string       `json:"interfaces"`
	Destinations []string       `json:"destinations"`
	Allowed      int            `json:"allowed_prefixes"`
	Denied       int            `json:"denied_prefixes"`
	Blocks       []accessBlock  `json:"blocks"`
}

// accessBlock is an allow or deny block as written, or, when the policy
// is not known, everything the kernel allows or denies.
type accessBlock struct {
	Kind    string             `json:"kind"` // allow | deny
	Range   *rules.SourceRange `json:"range,omitempty"`
	Comment string             `json:"comment,omitempty"`
	Count   int                `json:"count"`
	Sources []string           `json:"sources"` // the first statusListMax
	// Expires is the block's deadline (expires); zero when it has none.
	Expires time.Time `json:"expires,omitzero"`
	// Until gives, for each of Sources the kernel admits until a deadline
	// (the block's, or its list file line's), that deadline.
	Until map[string]time.Time `json:"until,omitempty"`
}

const statusListMax = 100

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Who may get in: per exposure the ports and sources installed, when and by whom, drift, counters",
		Example: `  portwarden status
  portwarden status --policy /etc/portwarden   # does the kernel match this policy?
  portwarden --var-file /etc/portwarden/vars.hcl.json status   # with the variables apply had
  portwarden status --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := g.loadOptions(); err != nil {
				return err
			}
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
			s := statusJSON{FormatVersion: formatVersion, Backend: b.Name(), Installed: st.Installed, Fingerprint: st.Ruleset.Fingerprint(),
				Exposures: len(st.Ruleset.Exposures), Drift: st.Drift, Counters: counters, Access: []accessJSON{}}
			if s.Drift == nil {
				s.Drift = []string{}
			}
			if s.Counters == nil {
				s.Counters = []backends.Counter{}
			}
			if dir, err := safeapply.OpenExisting(""); err == nil && dir != nil {
				s.Applied, _ = dir.LastApplied()
				s.Pending, _ = dir.GetPending()
			}
			s.LastEvent, _ = safeapply.LastEvent("")
			// Access opened or closed outside portwarden since the last
			// apply is drift as much as an owned object changed by hand.
			v := g.newPolicyView(cmd)
			changes, unverified := v.sinceApply(b.Name(), st, time.Now())
			s.Drift = append(s.Drift, changes...)
			s.DriftUnverified = unverified
			s.changedSinceApply = len(changes) > 0 || unverified != ""
			// The policy to compare with and to take the blocks from: the
			// one named with --policy, else the one last applied, loaded
			// with the variables this command was given.
			var desired *rules.Ruleset
			s.Policy, desired = v.match(b.Name(), st.Ruleset, s.Drift)
			for i := range st.Ruleset.Exposures {
				s.Access = append(s.Access, access(&st.Ruleset.Exposures[i], desired))
			}
			if in := g.unfinishedApply(b); in != nil {
				s.Unfinished = in.String()
			}
			s.ExpiringSoon = st.Ruleset.ExpiringWithin(time.Now(), safeapply.ExpiryWindow)
			w := cmd.OutOrStdout()
			if g.json {
				return printJSON(w, s)
			}
			writeStatus(w, &s)
			return nil
		},
	}
}

// access describes one installed exposure; with the policy that matches
// the kernel, its sources come grouped by the blocks that wrote them.
func access(e *rules.Exposure, desired *rules.Ruleset) accessJSON {
	a := accessJSON{Expose: e.Name, Protocol: e.Protocol, Default: e.Default, Log: e.Log, Loopback: e.Loopback,
		Interfaces: append([]string{}, e.Interfaces...), Destinations: prefixStrings(e.Destinations.All()),
		Allowed: e.Allow.Len(), Denied: e.Deny.Len(), Ports: []string{}, Blocks: []accessBlock{}}
	for _, p := range e.Ports {
		if p.First == p.Last {
			a.Ports = append(a.Ports, fmt.Sprint(p.First))
		} else {
			a.Ports = append(a.Ports, fmt.Sprintf("%d-%d", p.First, p.Last))
		}
	}
	if desired != nil {
		for i := range desired.Exposures {
			d := &desired.Exposures[i]
			if d.Name != e.Name {
				continue
			}
			for j := range d.Origins {
				o := &d.Origins[j]
				if o.Kind != rules.OriginAllow && o.Kind != rules.OriginDeny {
					continue
				}
				r := policies.RangeOf(o.Range)
				b := block(o.Kind, &r, o.Comment, o.Prefixes)
				b.Expires = o.Expires
				if o.Kind == rules.OriginAllow && len(e.Expiring) > 0 {
					for i, p := range o.Prefixes[:len(b.Sources)] {
						if g := e.GrantFor(p.Addr()); g != nil && g.Source.Bits() <= p.Bits() {
							if b.Until == nil {
								b.Until = map[string]time.Time{}
							}
							b.Until[b.Sources[i]] = g.Until
						}
					}
				}
				a.Blocks = append(a.Blocks, b)
			}
		}
		if len(a.Blocks) > 0 {
			return a
		}
	}
	if e.Deny.Len() > 0 {
		a.Blocks = append(a.Blocks, block(rules.OriginDeny, nil, "", e.Deny.All()))
	}
	if e.Allow.Len() > 0 {
		a.Blocks = append(a.Blocks, block(rules.OriginAllow, nil, "", e.Allow.All()))
	}
	// Grants, one block per deadline, soonest first.
	byUntil := map[time.Time][]netip.Prefix{}
	var untils []time.Time
	for _, g := range e.Expiring {
		if _, ok := byUntil[g.Until]; !ok {
			untils = append(untils, g.Until)
		}
		byUntil[g.Until] = append(byUntil[g.Until], g.Source)
	}
	slices.SortFunc(untils, time.Time.Compare)
	for _, u := range untils {
		b := block(rules.OriginAllow, nil, "", byUntil[u])
		b.Expires = u
		a.Blocks = append(a.Blocks, b)
	}
	return a
}

func block(kind string, r *rules.SourceRange, comment string, prefixes []netip.Prefix) accessBlock {
	b := accessBlock{Kind: kind, Range: r, Comment: comment, Count: len(prefixes)}
	if len(prefixes) > statusListMax {
		prefixes = prefixes[:statusListMax]
	}
	b.Sources = prefixStrings(prefixes)
	return b
}

// prefixStrings writes single addresses without /32 or /128, as people
// write them in policies.
func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		if p.IsSingleIP() {
			out = append(out, p.Addr().String())
		} else {
			out = append(out, p.String())
		}
	}
	return out
}

func writeStatus(w io.Writer, s *statusJSON) {
	if s.Unfinished != "" {
		fmt.Fprintf(w, "%s\n\n", s.Unfinished)
	}
	if !s.Installed {
		fmt.Fprintf(w, "Nothing installed: portwarden owns no %s objects here; every port is as the rest of the firewall leaves it.\n", s.Backend)
	} else {
		fmt.Fprintf(w, "Backend:     %s\nExposures:   %d\nFingerprint: %s\n", s.Backend, s.Exposures, s.Fingerprint)
	}
	if e := s.LastEvent; e != nil && e.Action == "destroy" && (s.Applied == nil || e.When.After(s.Applied.When)) {
		fmt.Fprintf(w, "Last change: destroyed %s by %s\n", e.When.Local().Format(time.RFC3339), e.By)
	} else if a := s.Applied; a != nil {
		what := "applied"
		if a.RolledBack {
			what = "rolled back"
		}
		fmt.Fprintf(w, "Last change: %s %s by %s", what, a.When.Local().Format(time.RFC3339), a.By)
		if a.Policy != "" && !a.RolledBack {
			fmt.Fprintf(w, " from %s", a.Policy)
		}
		switch {
		case a.Fingerprint == s.Fingerprint:
			fmt.Fprint(w, " (the kernel still holds it)")
		case s.changedSinceApply:
			fmt.Fprint(w, " (the kernel holds something else now: see Drift)")
		case s.Backend == a.Backend && s.Installed && a.Fingerprint != "":
			fmt.Fprint(w, " (access has expired since, as applied)")
		case !a.RolledBack:
			fmt.Fprint(w, " (the kernel holds something else now: run portwarden plan)")
		}
		fmt.Fprintln(w)
	}
	if p := s.Policy; p != nil {
		with := ""
		if v := p.variables(); v != "" {
			with = " (variables: " + v + ")"
		}
		switch {
		case p.Error != "":
			fmt.Fprintf(w, "Policy:      %s: %s\n", p.Path, p.Error)
		case p.Matches:
			fmt.Fprintf(w, "Policy:      the kernel matches %s%s\n", p.Path, with)
		case p.AsApplied:
			fmt.Fprintf(w, "Policy:      the kernel holds what was last applied from %s, but %s%s compiles to other rules: apply had other variables (give status the same --var/--var-file), or the policy changed since\n", p.Path, p.Path, with)
		default:
			fmt.Fprintf(w, "Policy:      the kernel does NOT match %s%s: run portwarden --policy %s plan\n", p.Path, with, p.Path)
		}
	}
	if p := s.Pending; p != nil {
		fmt.Fprintf(w, "Pending:     applied by %s, rolls back at %s unless `portwarden confirm`\n", p.By, p.Deadline.Local().Format(time.RFC3339))
	}
	for _, d := range s.Drift {
		fmt.Fprintf(w, "Drift:       %s\n", d)
	}
	if s.DriftUnverified != "" {
		fmt.Fprintf(w, "Drift?:      %s\n", s.DriftUnverified)
	}
	for _, a := range s.Access {
		fmt.Fprintf(w, "\nexpose %q: %s/%s, others get %s", a.Expose, a.Protocol, strings.Join(a.Ports, ","), a.Default)
		if a.Log {
			fmt.Fprint(w, " (logged)")
		}
		if !a.Loopback {
			fmt.Fprint(w, ", loopback refused too")
		}
		if len(a.Interfaces) > 0 {
			fmt.Fprintf(w, ", on %s", strings.Join(a.Interfaces, ","))
		}
		if len(a.Destinations) > 0 {
			fmt.Fprintf(w, ", to %s", strings.Join(a.Destinations, ","))
		}
		fmt.Fprintln(w)
		if len(a.Blocks) == 0 {
			fmt.Fprintln(w, "  nobody is allowed")
		}
		for _, b := range a.Blocks {
			fmt.Fprintf(w, "  %-5s %d %s", b.Kind, b.Count, plural(b.Count, "source", "sources"))
			if b.Range != nil {
				fmt.Fprintf(w, " (%s:%d)", b.Range.Filename, b.Range.Start.Line)
			}
			if b.Comment != "" {
				fmt.Fprintf(w, " %q", b.Comment)
			}
			if !b.Expires.IsZero() {
				word := "until"
				if !b.Expires.After(time.Now()) {
					word = "expired at"
				}
				fmt.Fprintf(w, " %s %s", word, b.Expires.Format(time.RFC3339))
			}
			list := b.Sources
			more := ""
			if len(list) > 10 {
				list, more = list[:10], fmt.Sprintf(", and %d more", b.Count-10)
			}
			if len(b.Until) > 0 && b.Expires.IsZero() {
				list = slices.Clone(list)
				for i, src := range list {
					if u, ok := b.Until[src]; ok {
						list[i] += " until " + u.Format(time.RFC3339)
					}
				}
			}
			fmt.Fprintf(w, ": %s%s\n", strings.Join(list, ", "), more)
		}
	}
	if len(s.ExpiringSoon) > 0 {
		fmt.Fprintln(w)
		writeExpiring(w, s.ExpiringSoon)
	}
	if len(s.Counters) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "EXPOSE\tRULE\tPACKETS\tBYTES")
		for _, c := range s.Counters {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", c.Exposure, c.Rule, c.Packets, c.Bytes)
		}
		tw.Flush()
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// writeExpiring lists access that ends soon, soonest first.
func writeExpiring(w io.Writer, soon []rules.Expiry) {
	fmt.Fprintf(w, "Access that expires within %s:\n", rules.HumanDuration(safeapply.ExpiryWindow))
	now := time.Now()
	for i, x := range soon {
		if i == statusListMax {
			fmt.Fprintf(w, "  ... and %d more\n", len(soon)-statusListMax)
			break
		}
		fmt.Fprintf(w, "  expose %q: %s until %s (in %s)\n", x.Exposure, x.Source, x.Until.Format(time.RFC3339), rules.HumanDuration(x.Until.Sub(now)))
	}
}
