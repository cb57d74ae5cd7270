package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/verify/monitor"
	"github.com/portwarden/portwarden/verify/usage"
	"github.com/spf13/cobra"
)

type usageJSON struct {
	FormatVersion int    `json:"format_version"`
	Backend       string `json:"backend"`
	// UnusedSince as given ("30d", "0s"), and in seconds.
	UnusedSince        string                    `json:"unused_since"`
	UnusedSinceSeconds int64                     `json:"unused_since_seconds"`
	Policy             *monitor.PolicyComparison `json:"policy,omitempty"`
	*usage.Report
}

func newUsageCmd(g *globals) *cobra.Command {
	var since string
	cmd := &cobra.Command{
		Use:   "usage [--unused-since D]",
		Short: "Per allowed source: packets and when it was last seen, from the kernel's own records; flags unused ones",
		Long: `usage lists, per exposure and allow block (file:line), each source as written
with the packets the kernel admitted from it and when it last connected, and
flags the sources not seen within --unused-since (0s: not seen at all since
the rules went in). The kernel keeps these records itself (nftables: a
counter per set element and a set of sources seen, refreshed by the packet
path). Where a backend cannot know when a source was last seen (iptables),
usage says so and flags the sources that counted no packet instead.
The blocks come from --policy, else the policy last applied, loaded with the
variables given to usage (--var, --var-file, PORTWARDEN_VAR_*, as for plan:
give it those apply had), when the kernel holds exactly that policy;
otherwise from what the kernel holds.`,
		Example: `  portwarden usage
  portwarden usage --unused-since 90d
  portwarden usage --unused-since 0s --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := usage.ParseDuration(since)
			if err != nil {
				return withCode(exitError1, fmt.Errorf("--unused-since: %w", err))
			}
			opts, err := g.loadOptions()
			if err != nil {
				return err
			}
			b, _, err := g.openBackend()
			if err != nil {
				return err
			}
			st, err := b.Current(context.Background())
			if err != nil {
				return withCode(exitError1, explainKernelError(err))
			}
			v := g.newPolicyView(cmd, opts)
			changes, _ := v.DriftSinceApply(b.Name(), st, time.Now())
			st = &backends.State{Installed: st.Installed, Ruleset: st.Ruleset, Drift: append(slices.Clip(st.Drift), changes...)}
			r, match, err := usageReport(v, b, st, d)
			if err != nil {
				return withCode(exitError1, explainKernelError(err))
			}
			out := usageJSON{FormatVersion: formatVersion, Backend: b.Name(), UnusedSince: since,
				UnusedSinceSeconds: int64(d / time.Second), Policy: match, Report: r}
			if g.json {
				return printJSON(cmd.OutOrStdout(), out)
			}
			writeUsage(cmd.OutOrStdout(), &out, time.Now())
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "unused-since", "30d", "flag sources not seen within this time: a Go duration (36h), days (30d) or both (1d12h); 0s: never seen since the rules went in")
	return cmd
}

// usageReport reads the kernel's usage records and maps them onto the
// policy the kernel holds (--policy, else the one last applied, loaded
// with the command's variables), or onto the kernel's own sources when no
// known policy matches. st.Drift is all that differs from what
// portwarden wrote (PolicyView.DriftSinceApply included).
func usageReport(v *monitor.PolicyView, b backends.Backend, st *backends.State, since time.Duration) (*usage.Report, *monitor.PolicyComparison, error) {
	ur, ok := b.(backends.UsageReader)
	if !ok {
		return nil, nil, fmt.Errorf("the %s backend cannot report usage yet: it keeps no per-source records", b.Name())
	}
	u, err := ur.Usage(context.Background())
	if err != nil {
		return nil, nil, err
	}
	match, desired := v.Match(b.Name(), st.Ruleset, st.Drift)
	return usage.Build(st.Ruleset, desired, u, usage.Options{UnusedSince: since}), match, nil
}

func writeUsage(w io.Writer, u *usageJSON, now time.Time) {
	r := u.Report
	if len(r.Exposures) == 0 {
		fmt.Fprintf(w, "Nothing installed: portwarden owns no %s objects here, so nothing is allowed through it.\n", u.Backend)
		return
	}
	rule := "not seen since the rules went in"
	if r.UnusedSince > 0 {
		rule = "not seen in the last " + u.UnusedSince
	}
	if !r.LastSeenKnown {
		rule = "no packets counted"
		fmt.Fprintf(w, "Last seen:   unknown: %s\n", r.LastSeenWhy)
	}
	fmt.Fprintf(w, "Backend:     %s\nUnused:      %d of %d allowed %s (%s)\n", u.Backend, r.Unused, r.Entries, plural(r.Entries, "source", "sources"), rule)
	if p := u.Policy; p != nil {
		vars, with := p.Variables(), ""
		if vars != "" {
			with = " (variables: " + vars + ")"
		}
		switch {
		case p.Error != "":
			fmt.Fprintf(w, "Policy:      %s: %s; showing the kernel's sources\n", p.Path, p.Error)
		case p.Matches && vars != "":
			fmt.Fprintf(w, "Policy:      %s (the kernel holds it; variables: %s)\n", p.Path, vars)
		case p.Matches:
			fmt.Fprintf(w, "Policy:      %s (the kernel holds it)\n", p.Path)
		case p.AsApplied:
			fmt.Fprintf(w, "Policy:      the kernel holds what was last applied from %s, but %s%s compiles to other rules: apply had other variables (give usage the same --var/--var-file), or the policy changed since; showing the kernel's sources\n", p.Path, p.Path, with)
		default:
			fmt.Fprintf(w, "Policy:      the kernel does not hold %s%s; showing the kernel's sources\n", p.Path, with)
		}
	}
	for _, x := range r.Exposures {
		fmt.Fprintf(w, "\nexpose %q\n", x.Name)
		if len(x.Blocks) == 0 {
			fmt.Fprintln(w, "  nobody is allowed")
		}
		for _, b := range x.Blocks {
			where := b.Where()
			if where == "" {
				where = "(every source the kernel allows)"
			}
			fmt.Fprintf(w, "  allow %s", where)
			if b.Comment != "" {
				fmt.Fprintf(w, " %q", b.Comment)
			}
			fmt.Fprintf(w, ": %d %s%s\n", b.Packets, plural(int(b.Packets), "packet", "packets"), sharedMark(b.PacketsShared))
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "    SOURCE\tPACKETS\tLAST SEEN\t")
			for _, e := range b.Entries {
				src := e.Source
				if e.ListFile != "" {
					src += fmt.Sprintf(" (%s:%d)", e.ListFile, e.ListLine)
				}
				seen := "unknown"
				if r.LastSeenKnown {
					seen = "never"
					if e.LastSeen != nil {
						seen = fmt.Sprintf("%s (%s ago)", e.LastSeen.Local().Format(time.RFC3339), ago(now.Sub(*e.LastSeen)))
					}
				}
				flag := ""
				if e.Unused {
					flag = "UNUSED"
				}
				packets := fmt.Sprintf("%d%s", e.Packets, sharedMark(e.PacketsShared))
				if e.NoRecord {
					// Denied whole, or admitted by a rule of its own.
					packets = "-"
					flag = strings.TrimSuffix("no kernel record, "+flag, ", ")
				}
				fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", src, packets, seen, flag)
			}
			tw.Flush()
		}
	}
	if hasShared(r) {
		fmt.Fprintln(w, "\n* counted by a kernel element that covers other sources too (merged ranges): the count is theirs together")
	}
}

func sharedMark(shared bool) string {
	if shared {
		return "*"
	}
	return ""
}

func hasShared(r *usage.Report) bool {
	for _, x := range r.Exposures {
		for _, b := range x.Blocks {
			if b.PacketsShared {
				return true
			}
			for _, e := range b.Entries {
				if e.PacketsShared {
					return true
				}
			}
		}
	}
	return false
}

// ago rounds a duration for people: seconds, minutes, hours or days.
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
