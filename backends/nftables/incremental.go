package nftables

import (
	"net/netip"

	"github.com/google/nftables"
	"github.com/portwarden/portwarden/rules"
	"go4.org/netipx"
)

// prefixEdit returns the intervals to delete from and add to an existing
// prefix set, straight from the prefix lists, when the kernel is known to
// hold exactly what now's model gives for it (a snapshot from the cache,
// or one this process wrote: lazy, and the set not read). Both interval
// lists are then derived from sorted prefixes, so one walk over both,
// coalescing as wantedIntervals does, finds the few that differ without
// building the 100,000 intervals of each side (13 MB, a quarter of a
// fresh process changing one source). ok is false when the set must be
// compared with what the kernel returned, or is not a prefix set.
func prefixEdit(now *snapshot, want *rules.Exposure, name, role string) (removed, added []interval, ok bool) {
	if !now.lazy || now.damagedSets[name] {
		return nil, nil, false
	}
	now.contentMu.Lock()
	_, read := now.content[name]
	now.contentMu.Unlock()
	if read {
		return nil, nil, false
	}
	have := now.ruleset.Exposure(want.Name)
	if have == nil {
		return nil, nil, false
	}
	hp, ok1 := rolePrefixes(have, role)
	wp, ok2 := rolePrefixes(want, role)
	if !ok1 || !ok2 {
		return nil, nil, false
	}
	h, w := rangeWalk{ps: hp}, rangeWalk{ps: wp}
	hr, hok := h.next()
	wr, wok := w.next()
	for hok || wok {
		c := 0
		switch {
		case !wok:
			c = -1
		case !hok:
			c = 1
		default:
			if c = hr.From().Compare(wr.From()); c == 0 {
				c = hr.To().Compare(wr.To())
			}
		}
		switch {
		case c == 0:
			hr, hok = h.next()
			wr, wok = w.next()
		case c < 0:
			removed = append(removed, rangeInterval(hr))
			hr, hok = h.next()
		default:
			added = append(added, rangeInterval(wr))
			wr, wok = w.next()
		}
	}
	return removed, added, true
}

// rolePrefixes is the prefix list a set of this role holds; false for
// the sets that hold ports or interface names.
func rolePrefixes(e *rules.Exposure, role string) ([]netip.Prefix, bool) {
	switch role {
	case roleDst4:
		return e.Destinations.V4, true
	case roleDst6:
		return e.Destinations.V6, true
	case roleDeny4:
		return e.Deny.V4, true
	case roleDeny6:
		return e.Deny.V6, true
	case roleAllow4:
		return e.Allow.V4, true
	case roleAllow6:
		return e.Allow.V6, true
	}
	return nil, false
}

// rangeWalk yields the maximal ranges of normalised (sorted, disjoint)
// prefixes: neighbours that touch coalesce, exactly as wantedIntervals
// joins them.
type rangeWalk struct {
	ps []netip.Prefix
	i  int
}

func (w *rangeWalk) next() (netipx.IPRange, bool) {
	if w.i >= len(w.ps) {
		return netipx.IPRange{}, false
	}
	cur := netipx.RangeOfPrefix(w.ps[w.i])
	for w.i++; w.i < len(w.ps); w.i++ {
		r := netipx.RangeOfPrefix(w.ps[w.i])
		if cur.To().Next() != r.From() {
			break
		}
		cur = netipx.IPRangeFrom(cur.From(), r.To())
	}
	return cur, true
}

// rangeInterval is the interval of set keys of r, as wantedIntervals
// writes it.
func rangeInterval(r netipx.IPRange) interval {
	return interval{first: addrKey(r.From()), last: addrKey(r.To())}
}

// ipRange is rangeInterval's inverse: the addresses iv spans, or the zero
// (invalid) range when its keys are no addresses of one family.
func (iv interval) ipRange() netipx.IPRange {
	from, _ := netip.AddrFromSlice(iv.first)
	to, _ := netip.AddrFromSlice(iv.last)
	return netipx.IPRangeFrom(from, to)
}

func addrKey(a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

// fillFromPrefixes adds the intervals of normalised prefixes to a new,
// empty set, as writeIntervals would add wantedIntervals, without making
// them: a million sources never hold their intervals all at once (80 MB).
func fillFromPrefixes(bt *batch, set *nftables.Set, ps []netip.Prefix) {
	w := bt.elements(set, false)
	r := rangeWalk{ps: ps}
	for {
		rg, ok := r.next()
		if !ok {
			break
		}
		w.addRange(rg.From(), rg.To())
	}
	w.close()
}
