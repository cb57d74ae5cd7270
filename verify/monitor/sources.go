package monitor

import (
	"net/netip"
	"slices"
	"time"

	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
)

// SourceGroup is some of the sources an installed exposure allows or
// denies, as status shows them: those an allow or deny block of the
// policy the kernel holds lists, or, when that policy is not known, all
// the kernel denies, all it allows, or all it admits until one deadline.
type SourceGroup struct {
	Kind string // rules.OriginAllow or rules.OriginDeny
	// Range is the block that lists the sources; nil when they are the
	// kernel's.
	Range   *rules.SourceRange
	Comment string
	// Count is how many sources the group has; Sources are the first of
	// them, at most the limit SourceGroups was given.
	Count   int
	Sources []netip.Prefix
	// Expires is the block's own deadline (expires), or for the kernel's
	// sources the deadline they share; zero when there is none.
	Expires time.Time
	// Until gives, for each of Sources that the kernel admits until a
	// deadline (the block's, or its list file line's), that deadline, and
	// zero for the others; nil when none is admitted until a deadline.
	// Only a policy's allow blocks have it.
	Until []time.Time
}

// SourceGroups groups the sources of e, an exposure the kernel holds.
// desired is the ruleset of the policy that matches the kernel
// (PolicyView.Match), nil when none does: with it the groups are the
// exposure's allow and deny blocks as written, in the policy's order;
// without it, or when the policy has no such block for e, they are the
// kernel's denied sources, its allowed sources, then its sources admitted
// until a deadline, one group per deadline, soonest first. Each group
// keeps at most limit sources (all when limit is negative), and counts
// them all.
func SourceGroups(e *rules.Exposure, desired *rules.Ruleset, limit int) []SourceGroup {
	var out []SourceGroup
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
				g := group(o.Kind, &r, o.Comment, o.Prefixes, limit)
				g.Expires = o.Expires
				if o.Kind == rules.OriginAllow && len(e.Expiring) > 0 {
					for k, p := range g.Sources {
						if grant := e.GrantFor(p.Addr()); grant != nil && grant.Source.Bits() <= p.Bits() {
							if g.Until == nil {
								g.Until = make([]time.Time, len(g.Sources))
							}
							g.Until[k] = grant.Until
						}
					}
				}
				out = append(out, g)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	if e.Deny.Len() > 0 {
		out = append(out, group(rules.OriginDeny, nil, "", e.Deny.All(), limit))
	}
	if e.Allow.Len() > 0 {
		out = append(out, group(rules.OriginAllow, nil, "", e.Allow.All(), limit))
	}
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
		g := group(rules.OriginAllow, nil, "", byUntil[u], limit)
		g.Expires = u
		out = append(out, g)
	}
	return out
}

// group is a group of kind with the first limit of prefixes (all when
// limit is negative).
func group(kind string, r *rules.SourceRange, comment string, prefixes []netip.Prefix, limit int) SourceGroup {
	n := len(prefixes)
	if limit >= 0 && limit < n {
		n = limit
	}
	return SourceGroup{Kind: kind, Range: r, Comment: comment, Count: len(prefixes), Sources: prefixes[:n:n]}
}
