package rules

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"go4.org/netipx"
)

// Grant is access until a deadline: sources of an allow block (or of list
// file lines) written with expires. The kernel itself stops admitting them
// at Until (nftables element timeouts, iptables' time match), with no
// portwarden process running.
type Grant struct {
	Source netip.Prefix `json:"source"`
	Until  time.Time    `json:"until"` // UTC, whole seconds
}

// GrantDiff lists grants that appear and disappear; a deadline that moves
// is one removed and one added.
type GrantDiff struct {
	Added   []Grant `json:"added,omitempty"`
	Removed []Grant `json:"removed,omitempty"`
}

// Empty reports whether nothing is added or removed.
func (d GrantDiff) Empty() bool { return len(d.Added)+len(d.Removed) == 0 }

// compareGrants orders grants by family, address, prefix length, then
// deadline: the order of normalised Expiring lists.
func compareGrants(a, b Grant) int {
	if a.Source.Addr().Is4() != b.Source.Addr().Is4() {
		if a.Source.Addr().Is4() {
			return -1
		}
		return 1
	}
	if c := a.Source.Addr().Compare(b.Source.Addr()); c != 0 {
		return c
	}
	if c := a.Source.Bits() - b.Source.Bits(); c != 0 {
		return c
	}
	return a.Until.Compare(b.Until)
}

// normalizeGrants puts grants in canonical form: an address listed until
// several deadlines keeps the latest, an address permanently allowed needs
// no grant, and per deadline the prefixes are merged. Two grant lists that
// admit the same addresses until the same instants normalise equal.
func normalizeGrants(gs []Grant, allow Prefixes) []Grant {
	return NormalizeGrants(gs, allow)
}

// NormalizeGrants is what Normalize does to an exposure's Expiring, for a
// backend that decodes the rest of an exposure in a form of its own.
func NormalizeGrants(gs []Grant, allow Prefixes) []Grant {
	if len(gs) == 0 {
		return nil
	}
	if slices.IsSortedFunc(gs, compareGrants) && grantsCanonical(gs, allow) {
		return gs
	}
	byUntil := map[time.Time][]netip.Prefix{}
	var untils []time.Time
	for _, g := range gs {
		u := g.Until.UTC().Truncate(time.Second)
		if _, ok := byUntil[u]; !ok {
			untils = append(untils, u)
		}
		byUntil[u] = append(byUntil[u], g.Source)
	}
	slices.SortFunc(untils, func(a, b time.Time) int { return b.Compare(a) }) // latest first
	var taken netipx.IPSetBuilder
	for _, p := range allow.All() {
		taken.AddPrefix(p)
	}
	var out []Grant
	for _, u := range untils {
		var b netipx.IPSetBuilder
		for _, p := range byUntil[u] {
			b.AddPrefix(unmap(p.Masked()))
		}
		prev, _ := taken.IPSet()
		b.RemoveSet(prev)
		set, _ := b.IPSet()
		for _, p := range set.Prefixes() {
			out = append(out, Grant{Source: p, Until: u})
		}
		taken.AddSet(set)
	}
	slices.SortFunc(out, compareGrants)
	return out
}

// grantsCanonical reports, for sorted grants, whether normalizeGrants
// would keep them as they are: disjoint, outside allow, whole seconds, and
// no two neighbours with one deadline that would merge.
func grantsCanonical(gs []Grant, allow Prefixes) bool {
	for i, g := range gs {
		if g.Until.Location() != time.UTC || g.Until.Nanosecond() != 0 || g.Source != unmap(g.Source.Masked()) {
			return false
		}
		if overlapsAny(allow.Family(familyOf(g.Source.Addr())), g.Source) {
			return false
		}
		if i == 0 {
			continue
		}
		prev := gs[i-1]
		if prev.Source.Overlaps(g.Source) {
			return false
		}
		if prev.Until.Equal(g.Until) && netipx.RangeOfPrefix(prev.Source).To().Next() == g.Source.Addr() {
			return false // adjacent, same deadline: might merge
		}
	}
	return true
}

// overlapsAny reports whether any of the sorted, disjoint prefixes ps
// overlaps p: only the last one starting at or before p's last address
// can, since every earlier one ends before it starts.
func overlapsAny(ps []netip.Prefix, p netip.Prefix) bool {
	last := netipx.PrefixLastIP(p)
	i, found := slices.BinarySearchFunc(ps, last, func(x netip.Prefix, a netip.Addr) int { return x.Addr().Compare(a) })
	if !found {
		i--
	}
	return i >= 0 && ps[i].Overlaps(p)
}

// ActiveGrants are the grants still in force at now.
func ActiveGrants(gs []Grant, now time.Time) []Grant {
	if !slices.ContainsFunc(gs, func(g Grant) bool { return !g.Until.After(now) }) {
		return gs
	}
	return slices.DeleteFunc(slices.Clone(gs), func(g Grant) bool { return !g.Until.After(now) })
}

// WithoutGrantsEndedBy is rs without the grants whose deadline is not
// after by: what the kernel enforces from then on. It is rs itself when
// no grant ends by then; otherwise a copy that shares all else with rs.
func (rs *Ruleset) WithoutGrantsEndedBy(by time.Time) *Ruleset {
	var out *Ruleset
	for i := range rs.Exposures {
		active := ActiveGrants(rs.Exposures[i].Expiring, by)
		if len(active) == len(rs.Exposures[i].Expiring) {
			continue
		}
		if out == nil {
			out = &Ruleset{Exposures: slices.Clone(rs.Exposures)}
		}
		out.Exposures[i].Expiring = active
	}
	if out == nil {
		return rs
	}
	return out
}

// GrantFor returns the grant that admits a, or nil; e is normalised.
func (e *Exposure) GrantFor(a netip.Addr) *Grant {
	a = a.Unmap()
	// Normalised grants are sorted (IPv4 first) and disjoint: the last
	// one starting at or before a is the only one that can hold it.
	i, found := slices.BinarySearchFunc(e.Expiring, a, func(g Grant, a netip.Addr) int {
		if g.Source.Addr().Is4() != a.Is4() {
			if g.Source.Addr().Is4() {
				return -1
			}
			return 1
		}
		return g.Source.Addr().Compare(a)
	})
	if !found {
		i--
	}
	if i >= 0 && i < len(e.Expiring) && e.Expiring[i].Source.Contains(a) {
		return &e.Expiring[i]
	}
	return nil
}

// NextExpiry is the earliest deadline among the grants of rs, zero when
// none.
func (rs *Ruleset) NextExpiry() time.Time {
	var next time.Time
	for _, e := range rs.Exposures {
		for _, g := range e.Expiring {
			if next.IsZero() || g.Until.Before(next) {
				next = g.Until
			}
		}
	}
	return next
}

// Expiry is a grant of one exposure, for reports of what expires when.
type Expiry struct {
	Exposure string    `json:"exposure"`
	Source   string    `json:"source"`
	Until    time.Time `json:"until"`
}

// ExpiringWithin lists the grants of rs whose deadline falls in (now,
// now+d], soonest first.
func (rs *Ruleset) ExpiringWithin(now time.Time, d time.Duration) []Expiry {
	out := []Expiry{}
	for _, e := range rs.Exposures {
		for _, g := range e.Expiring {
			if g.Until.After(now) && !g.Until.After(now.Add(d)) {
				out = append(out, Expiry{Exposure: e.Name, Source: SourceString(g.Source), Until: g.Until})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Expiry) int {
		return cmp.Or(a.Until.Compare(b.Until), cmp.Compare(a.Exposure, b.Exposure))
	})
	return out
}

func diffGrants(before, after []Grant) GrantDiff {
	add, rem := diffSorted(before, after, compareGrants)
	return GrantDiff{Added: add, Removed: rem}
}

// AllowOrigin is the allow block that lists src, or nil: for a granted
// source, the block its deadline comes from.
func (e *Exposure) AllowOrigin(src netip.Addr) *Origin {
	d := e.decision(Accept, OriginAllow, src.Unmap())
	return d.Origin
}

// HumanDuration writes a duration the way people read a deadline: the two
// largest units of days, hours, minutes and seconds ("3d4h", "2h5m",
// "40s").
func HumanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	d = d.Round(time.Second)
	units := []struct {
		name string
		size time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}}
	out, parts := "", 0
	for _, u := range units {
		if n := d / u.size; n > 0 || (parts == 0 && u.name == "s") {
			out += strconv.FormatInt(int64(n), 10) + u.name
			d -= n * u.size
			parts++
		} else if parts > 0 {
			parts++ // a skipped unit still counts: "1d0h" reads as "1d"
		}
		if parts == 2 {
			break
		}
	}
	return out
}
