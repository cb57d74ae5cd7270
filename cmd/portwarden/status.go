package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/rules"
	"github.com/portwarden/portwarden/verify/monitor"
	"github.com/spf13/cobra"
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
	Policy *monitor.PolicyComparison `json:"policy,omitempty"`
	// Unfinished: the last apply did not finish (what each family holds).
	Unfinished string `json:"unfinished_apply,omitempty"`
	// ExpiringSoon: access the kernel holds that ends within 7 days.
	ExpiringSoon []rules.Expiry `json:"expiring_soon"`
	// StateError: why the state directory was not used (the last apply,
	// the pending change and the history are then unknown, not absent).
	StateError string `json:"state_error,omitempty"`

	// changedSinceApply: the kernel differs from the last apply by more
	// than access that expired (or status could not tell).
	changedSinceApply bool
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
			opts, err := g.loadOptions()
			if err != nil {
				return err
			}
			b, _, err := g.openBackend()
			if err != nil {
				return err
			}
			snap, err := monitor.Take(context.Background(), b, "")
			if err != nil {
				return withCode(exitError1, explainKernelError(err))
			}
			// Access opened or closed outside portwarden since the last
			// apply is drift as much as an owned object changed by hand.
			v := g.newPolicyView(cmd, opts)
			changed := v.AddDriftSinceApply(snap)
			// The policy to compare with and to take the blocks from: the
			// one named with --policy, else the one last applied, loaded
			// with the variables this command was given.
			var desired *rules.Ruleset
			snap.Policy, desired = v.Match(snap.Backend, snap.Ruleset, snap.Drift)
			s := newStatusJSON(snap, desired)
			s.changedSinceApply = changed
			if in := g.unfinishedApply(b); in != nil {
				s.Unfinished = in.String()
			}
			s.ExpiringSoon = snap.Ruleset.ExpiringWithin(time.Now(), safeapply.ExpiryWindow)
			w := cmd.OutOrStdout()
			if g.json {
				return printJSON(w, s)
			}
			writeStatus(w, &s)
			return nil
		},
	}
}

// newStatusJSON is what status prints of a snapshot (monitor.Take, with
// the drift since the last apply and the policy compared with); desired
// is the ruleset of that policy when the kernel holds it.
func newStatusJSON(snap *monitor.Snapshot, desired *rules.Ruleset) statusJSON {
	s := statusJSON{FormatVersion: formatVersion, Backend: snap.Backend, Installed: snap.Installed, Fingerprint: snap.Fingerprint,
		Exposures: len(snap.Ruleset.Exposures), Drift: snap.Drift, DriftUnverified: snap.DriftUnverified,
		Applied: snap.Applied, LastEvent: snap.LastEvent, Pending: snap.Pending, Counters: snap.Counters,
		Access: []accessJSON{}, Policy: snap.Policy}
	if s.Drift == nil {
		s.Drift = []string{}
	}
	if snap.StateErr != nil {
		s.StateError = snap.StateErr.Error()
	}
	if s.Counters == nil {
		s.Counters = []backends.Counter{}
	}
	for i := range snap.Ruleset.Exposures {
		s.Access = append(s.Access, access(&snap.Ruleset.Exposures[i], desired))
	}
	return s
}

// access describes one installed exposure; with the policy that matches
// the kernel, its sources come grouped by the blocks that wrote them
// (monitor.SourceGroups).
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
	for _, g := range monitor.SourceGroups(e, desired, statusListMax) {
		a.Blocks = append(a.Blocks, block(g))
	}
	return a
}

func block(g monitor.SourceGroup) accessBlock {
	b := accessBlock{Kind: g.Kind, Range: g.Range, Comment: g.Comment, Count: g.Count, Sources: prefixStrings(g.Sources), Expires: g.Expires}
	for i, u := range g.Until {
		if !u.IsZero() {
			if b.Until == nil {
				b.Until = map[string]time.Time{}
			}
			b.Until[b.Sources[i]] = u
		}
	}
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
	if s.StateError != "" {
		fmt.Fprintf(w, "State directory not used, so the last change and any pending one are unknown: %s\n\n", s.StateError)
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
		if v := p.Variables(); v != "" {
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
