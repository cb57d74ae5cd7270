package rules

import (
	"math/bits"
	"net/netip"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"go4.org/netipx"
)

// SourceChange is one line of a plan in the policy's own words: a source
// as a block wrote it (with the block's range) that the kernel does not
// admit or refuse yet, or addresses the kernel holds that no block lists
// any more.
type SourceChange struct {
	Kind    string       `json:"kind"` // OriginAllow | OriginDeny
	Added   bool         `json:"added"`
	Prefix  netip.Prefix `json:"prefix"`
	Comment string       `json:"comment,omitempty"`
	// Range is the block that lists an added source; nil for a removed
	// one (the kernel does not remember who wrote it).
	Range *hcl.Range `json:"range,omitempty"`
}

// SourceChanges says what changes in an exposure's allow and deny sets
// the way the policy wrote them: the model merges 198.18.20.10 and
// 198.18.20.11 into a /31, but the person who added .11 wants to read
// "+ 198.18.20.11" and where it was written. An added entry is a source
// listed by a block of after (its Origins) that before's set does not
// hold in full; a removed entry is a part of before's set that after's set
// no longer holds, as merged prefixes. ok is false when after has no
// Origins (it was not compiled from a policy); callers then fall back to
// the element-level Diff.
func SourceChanges(before, after *Exposure) (changes []SourceChange, ok bool) {
	changes, _, ok = SourceChangesUpTo(before, after, -1)
	return changes, ok
}

// SourceChangesUpTo is SourceChanges keeping at most limit changes (all
// when limit is negative) of each kind and direction, for a plan that
// shows the first few: more counts the ones left out, per kind, removed
// ones at [0] and added ones at [1]. A cold apply of a million sources
// lists every one as added, and the full list took 600 MB.
func SourceChangesUpTo(before, after *Exposure, limit int) (changes []SourceChange, more map[string][2]int, ok bool) {
	if after != nil && len(after.Origins) == 0 && !(after.Allow.Empty() && after.Deny.Empty()) {
		return nil, nil, false
	}
	var empty Exposure
	if before == nil {
		before = &empty
	}
	if after == nil {
		after = &empty
	}
	more = map[string][2]int{}
	for _, kind := range []string{OriginDeny, OriginAllow} {
		was, will := before.Deny, after.Deny
		if kind == OriginAllow {
			was, will = before.Allow, after.Allow
		}
		var left [2]int
		kept := 0
		// Onto an empty set every source listed is added; when no two of
		// them overlap there is nothing to tell apart either (a cold apply
		// of a million sources: the map took 200 MB).
		distinct := was.Empty() && disjointListing(after.Origins, kind, will)
		seen := map[netip.Prefix]bool{}
		var c coverage
		for i := range after.Origins {
			o := &after.Origins[i]
			if o.Kind != kind {
				continue
			}
			r := o.Range // one copy per block, shared by its sources
			for _, p := range o.Prefixes {
				if !distinct {
					if c.covered(was, p) || seen[p] {
						continue
					}
					if kind == OriginAllow && !covered(will, p) {
						continue // expiring or expired: the grant diff says it
					}
					seen[p] = true
				}
				if limit >= 0 && kept >= limit {
					left[1]++
					continue
				}
				kept++
				changes = append(changes, SourceChange{Kind: kind, Added: true, Prefix: p, Comment: o.Comment, Range: &r})
			}
		}
		// Both sets are normalised (disjoint prefixes), so what was and is
		// no more is the removed elements less the added ones: only the
		// (usually few) differing elements go through an IPSet.
		if was.Empty() {
			more[kind] = left
			continue
		}
		d := diffPrefixes(was, will)
		if len(d.Removed) == 0 {
			more[kind] = left
			continue
		}
		var gone netipx.IPSetBuilder
		for _, p := range d.Removed {
			gone.AddPrefix(p)
		}
		for _, p := range d.Added {
			gone.RemovePrefix(p)
		}
		goneSet, _ := gone.IPSet()
		for i, p := range goneSet.Prefixes() {
			if limit >= 0 && i >= limit {
				left[0]++
				continue
			}
			changes = append(changes, SourceChange{Kind: kind, Prefix: p})
		}
		more[kind] = left
	}
	return changes, more, true
}

// disjointListing reports whether the prefixes the origins of kind list
// are pairwise disjoint, given that they make up the normalised set will:
// exactly when their sizes add up to its size.
func disjointListing(origins []Origin, kind string, will Prefixes) bool {
	var listed, union addressTotal
	for i := range origins {
		if origins[i].Kind == kind {
			for _, p := range origins[i].Prefixes {
				listed.add(p)
			}
		}
	}
	for _, p := range will.V4 {
		union.add(p)
	}
	for _, p := range will.V6 {
		union.add(p)
	}
	return !listed.over && !union.over && listed == union
}

// addressTotal adds up the sizes of prefixes as a 128-bit number; over
// says it did not fit.
type addressTotal struct {
	hi, lo uint64
	over   bool
}

func (c *addressTotal) add(p netip.Prefix) {
	host := p.Addr().BitLen() - p.Bits()
	var hi, lo uint64
	switch {
	case host >= 128 || host < 0:
		c.over = true
		return
	case host >= 64:
		hi = 1 << (host - 64)
	default:
		lo = 1 << host
	}
	var carry uint64
	c.lo, carry = bits.Add64(c.lo, lo, 0)
	c.hi, carry = bits.Add64(c.hi, hi, carry)
	c.over = c.over || carry != 0
}

// covered reports whether the normalised set holds all of p.
func covered(set Prefixes, p netip.Prefix) bool {
	var c coverage
	return c.covered(set, p)
}

// coverage reports whether a normalised set holds all of each prefix
// asked about. The set's prefixes are the largest aligned blocks of the
// addresses it holds, so an aligned block inside the set lies inside one
// of them: the last prefix starting at or before p's address. It searches
// on from where the last prefix of the same family was found: a list file
// is usually sorted, and 100,000 binary searches from scratch cost a
// one-source plan more than the rest of its output.
type coverage struct{ at [2]int }

func (c *coverage) covered(set Prefixes, p netip.Prefix) bool {
	p = p.Masked()
	fam := familyOf(p.Addr())
	ps := set.Family(fam)
	at := &c.at[fam/6] // 4 → 0, 6 → 1
	// i: the first prefix starting after p's address, found by galloping
	// from the last position when p comes after it, else from scratch.
	lo, hi := 0, len(ps)
	if *at < len(ps) && ps[*at].Addr().Compare(p.Addr()) <= 0 {
		lo = *at + 1
		for step := 1; ; step *= 2 {
			if lo+step-1 >= len(ps) || ps[lo+step-1].Addr().Compare(p.Addr()) > 0 {
				hi = min(lo+step-1, len(ps))
				break
			}
			lo += step
		}
	}
	i := lo + sort.Search(hi-lo, func(k int) bool { return ps[lo+k].Addr().Compare(p.Addr()) > 0 })
	if i > 0 {
		*at = i - 1
	}
	i--
	return i >= 0 && ps[i].Bits() <= p.Bits() && ps[i].Contains(p.Addr())
}

// SourceString writes a prefix the way people write a single address: a
// /32 or /128 as the bare address.
func SourceString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}
