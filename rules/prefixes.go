package rules

import (
	"net/netip"
	"slices"

	"go4.org/netipx"
)

// NewPrefixes builds a normalised set from any prefixes: host bits are
// masked, overlapping and adjacent prefixes merge, and each family is
// sorted.
func NewPrefixes(ps ...netip.Prefix) Prefixes {
	return normalized(slices.Clone(ps))
}

// normalized is NewPrefixes for a slice the caller gives away.
func normalized(ps []netip.Prefix) Prefixes {
	// Sets read back from a kernel or normalised before are already in
	// canonical form; checking that is linear, rebuilding is not.
	if v4, v6, ok := splitCanonical(ps); ok {
		return Prefixes{V4: v4, V6: v6}
	}
	// In place, as ps is ours: valid prefixes masked, IPv4 ones (mapped
	// ones unmapped) moved to the front; merged sorts each family anyway.
	// Copies of 100,000 prefixes cost a fresh process more in page faults
	// than the work itself.
	n, n4 := 0, 0
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		p = p.Masked()
		if p.Addr().Is4() || p.Addr().Is4In6() && p.Bits() >= 96 {
			ps[n] = ps[n4]
			ps[n4] = unmap(p)
			n4++
		} else {
			ps[n] = p
		}
		n++
	}
	return Prefixes{V4: merged(ps[:n4:n4]), V6: merged(ps[n4:n:n])}
}

// normalized is the set in canonical form: itself when it is already (a
// compiled policy, a set read back; checking is one pass, a copy of
// 100,000 prefixes costs a fresh process its page faults and the garbage
// collector a scan), else a new normalised set.
func (p Prefixes) normalized() Prefixes {
	if p.isCanonical() {
		if len(p.V4) == 0 {
			p.V4 = nil
		}
		if len(p.V6) == 0 {
			p.V6 = nil
		}
		return p
	}
	// All returns a fresh slice, so it can be given away.
	return normalized(p.All())
}

// merged sorts prefixes of one family, joins overlapping and adjacent
// ones into maximal ranges and returns their minimal prefixes: what
// netipx.IPSet.Prefixes gives, without building a set (which took 170 ms
// for 100,000 sources, a sort and one sweep take a fraction).
func merged(ps []netip.Prefix) []netip.Prefix {
	if len(ps) == 0 {
		return nil
	}
	byStart := func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	}
	if !slices.IsSortedFunc(ps, byStart) { // list files are often sorted already
		slices.SortFunc(ps, byStart)
	}
	// The output is written over the input: a run of prefixes never
	// decomposes into more prefixes than it has, so writing never
	// overtakes reading.
	out := ps[:0]
	// single: cur is exactly the prefix first, which is then its own
	// minimal decomposition. Most sources merge with nothing, and
	// decomposing each range again cost as much as the rest of the sweep.
	first, single := ps[0], true
	cur := netipx.RangeOfPrefix(first)
	flush := func() {
		if single {
			out = append(out, first)
		} else {
			out = cur.AppendPrefixes(out)
		}
	}
	for _, p := range ps[1:] {
		r := netipx.RangeOfPrefix(p)
		next := cur.To().Next()
		if r.From().Compare(cur.To()) <= 0 || next.IsValid() && r.From() == next {
			if r.To().Compare(cur.To()) > 0 {
				cur = netipx.IPRangeFrom(cur.From(), r.To())
				single = false
			}
			continue
		}
		flush()
		first, single, cur = p, true, r
	}
	flush()
	return out
}

// splitCanonical returns ps split by family when ps is already canonical:
// IPv4 then IPv6, each sorted, masked, disjoint, and the minimal prefix
// decomposition of its maximal ranges (what netipx.IPSet.Prefixes gives).
func splitCanonical(ps []netip.Prefix) (v4, v6 []netip.Prefix, ok bool) {
	i := 0
	for i < len(ps) && ps[i].Addr().Is4() {
		i++
	}
	v4, v6 = ps[:i:i], ps[i:]
	if !canonical(v4) || !canonical(v6) {
		return nil, nil, false
	}
	if len(v4) == 0 {
		v4 = nil
	}
	if len(v6) == 0 {
		v6 = nil
	}
	return v4, v6, true
}

func canonical(ps []netip.Prefix) bool {
	var buf []netip.Prefix
	for i := 0; i < len(ps); {
		p := ps[i]
		if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return false
		}
		// The maximal range starting here: prefixes that follow without a gap.
		last := netipx.PrefixLastIP(p)
		j := i + 1
		for ; j < len(ps); j++ {
			next := ps[j]
			if next.Addr().BitLen() != p.Addr().BitLen() || next != next.Masked() {
				return false
			}
			if last.Next() != next.Addr() {
				break
			}
			last = netipx.PrefixLastIP(next)
		}
		if j < len(ps) && ps[j].Addr().Compare(last) <= 0 {
			return false // overlapping or out of order
		}
		// One prefix is always the minimal form of its own range; only runs
		// of adjacent ones need decomposing again (rare, and costly).
		if j-i > 1 {
			buf = netipx.IPRangeFrom(p.Addr(), last).AppendPrefixes(buf[:0])
			if !slices.Equal(buf, ps[i:j]) {
				return false
			}
		}
		i = j
	}
	return true
}

func unmap(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// All returns both families, IPv4 first, in a new slice.
func (p Prefixes) All() []netip.Prefix {
	out := make([]netip.Prefix, 0, p.Len())
	return append(append(out, p.V4...), p.V6...)
}

// Len is the number of prefixes in both families.
func (p Prefixes) Len() int { return len(p.V4) + len(p.V6) }

// isCanonical reports whether the set is already normalised.
func (p Prefixes) isCanonical() bool {
	return (len(p.V4) == 0 || p.V4[0].Addr().Is4()) && canonical(p.V4) &&
		(len(p.V6) == 0 || p.V6[0].Addr().Is6() && !p.V6[0].Addr().Is4In6()) && canonical(p.V6)
}

// Empty reports whether the set holds no prefix.
func (p Prefixes) Empty() bool { return p.Len() == 0 }

// Contains reports whether a is in the set.
func (p Prefixes) Contains(a netip.Addr) bool {
	a = a.Unmap()
	list := p.V6
	if a.Is4() {
		list = p.V4
	}
	// Normalised prefixes are sorted and disjoint: binary search for the
	// last prefix starting at or before a.
	i, _ := slices.BinarySearchFunc(list, a, func(p netip.Prefix, a netip.Addr) int {
		return p.Addr().Compare(a)
	})
	for _, j := range []int{i, i - 1} {
		if j >= 0 && j < len(list) && list[j].Contains(a) {
			return true
		}
	}
	return false
}

// FamilyOf returns the prefixes of a's family.
func (p Prefixes) FamilyOf(a netip.Addr) []netip.Prefix { return p.Family(familyOf(a)) }

// Family returns the prefixes of one family: 4 or 6.
func (p Prefixes) Family(v int) []netip.Prefix {
	if v == 4 {
		return p.V4
	}
	return p.V6
}

func (p Prefixes) equal(o Prefixes) bool {
	return slices.Equal(p.V4, o.V4) && slices.Equal(p.V6, o.V6)
}

// normalizePorts sorts and merges overlapping or adjacent ranges.
func normalizePorts(in []PortRange) []PortRange {
	ps := slices.Clone(in)
	slices.SortFunc(ps, func(a, b PortRange) int {
		if a.First != b.First {
			return int(a.First) - int(b.First)
		}
		return int(a.Last) - int(b.Last)
	})
	var out []PortRange
	for _, p := range ps {
		if n := len(out); n > 0 && int(p.First) <= int(out[n-1].Last)+1 {
			if p.Last > out[n-1].Last {
				out[n-1].Last = p.Last
			}
			continue
		}
		out = append(out, p)
	}
	return out
}

// ContainsPort reports whether port is in one of the ranges.
func ContainsPort(ranges []PortRange, port uint16) bool {
	for _, r := range ranges {
		if port >= r.First && port <= r.Last {
			return true
		}
	}
	return false
}
