package monitor

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/portwarden/portwarden/rules"
)

// ChangedSinceApply says how current (what the kernel holds) differs from
// applied (what the last apply wrote), one sentence per exposure and kind
// of change: sources, ports, destinations or attributes added or removed
// outside portwarden. Opening access by hand is a change as much as
// removing it. Access granted until a deadline that has passed by now is
// left out on both sides: the kernel drops it by itself (nftables element
// timeouts) or keeps it inert (iptables' time match), as applied.
func ChangedSinceApply(applied, current *rules.Ruleset, now time.Time) []string {
	if applied == nil || current == nil {
		return nil
	}
	d := rules.Compare(activeAt(applied, now), activeAt(current, now))
	var out []string
	for _, x := range d.Exposures {
		name := fmt.Sprintf("expose %q", x.Name)
		switch x.Action {
		case rules.Create:
			out = append(out, name+" is in the kernel but not in the last apply")
			continue
		case rules.Delete:
			out = append(out, name+" of the last apply is gone from the kernel")
			continue
		}
		for _, a := range x.Attributes {
			out = append(out, fmt.Sprintf("%s has %s %s, the last apply %s", name, a.Name, orNone(a.New), orNone(a.Old)))
		}
		add := func(verb string, k noun, items []string) {
			if len(items) > 0 {
				out = append(out, fmt.Sprintf("%s %s %d %s not in the last apply: %s", name, verb, len(items), k.of(len(items)), listSome(items)))
			}
		}
		remove := func(verb string, k noun, items []string) {
			if len(items) > 0 {
				out = append(out, fmt.Sprintf("%s no longer %s %d %s of the last apply: %s", name, verb, len(items), k.of(len(items)), listSome(items)))
			}
		}
		add("allows", source, prefixes(x.Allow.Added))
		remove("allows", source, prefixes(x.Allow.Removed))
		add("admits until a deadline", source, grants(x.Expiring.Added))
		remove("admits", granted, grants(x.Expiring.Removed))
		add("denies", source, prefixes(x.Deny.Added))
		remove("denies", source, prefixes(x.Deny.Removed))
		add("opens", portRange, ports(x.Ports.Added))
		remove("opens", portRange, ports(x.Ports.Removed))
		add("covers", destination, prefixes(x.Destinations.Added))
		remove("covers", destination, prefixes(x.Destinations.Removed))
	}
	return out
}

// noun is what changes, for one and for many.
type noun struct{ one, many string }

var (
	source      = noun{"source", "sources"}
	granted     = noun{"source granted until a deadline", "sources granted until a deadline"}
	portRange   = noun{"port range", "port ranges"}
	destination = noun{"destination", "destinations"}
)

func (n noun) of(k int) string {
	if k == 1 {
		return n.one
	}
	return n.many
}

// activeAt is rs without the grants whose deadline has passed at now;
// rs itself when none has. The result is canonical, as Compare wants.
func activeAt(rs *rules.Ruleset, now time.Time) *rules.Ruleset {
	out := &rules.Ruleset{Exposures: make([]rules.Exposure, len(rs.Exposures))}
	copy(out.Exposures, rs.Exposures)
	for i := range out.Exposures {
		out.Exposures[i].Expiring = rules.ActiveGrants(out.Exposures[i].Expiring, now)
	}
	return out.Canonical()
}

func prefixes(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = rules.SourceString(p)
	}
	return out
}

func grants(gs []rules.Grant) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = rules.SourceString(g.Source) + " until " + g.Until.UTC().Format(time.RFC3339)
	}
	return out
}

func ports(ps []rules.PortRange) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// listSome joins the first five items, and says how many more there are.
func listSome(items []string) string {
	if len(items) <= 5 {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:5], ", "), len(items)-5)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
