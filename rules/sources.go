package rules

import (
	"net/netip"
	"slices"

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
	if after != nil && len(after.Origins) == 0 && !(after.Allow.Empty() && after.Deny.Empty()) {
		return nil, false
	}
	var empty Exposure
	if before == nil {
		before = &empty
	}
	if after == nil {
		after = &empty
	}
	for _, kind := range []string{OriginDeny, OriginAllow} {
		was, will := before.Deny, after.Deny
		if kind == OriginAllow {
			was, will = before.Allow, after.Allow
		}
		wasSet, willSet := ipSet(was), ipSet(will)
		wasRanges := wasSet.Ranges()
		seen := map[netip.Prefix]bool{}
		for i := range after.Origins {
			o := &after.Origins[i]
			if o.Kind != kind {
				continue
			}
			for _, p := range o.Prefixes {
				if covered(wasRanges, p) || seen[p] {
					continue
				}
				seen[p] = true
				r := o.Range
				changes = append(changes, SourceChange{Kind: kind, Added: true, Prefix: p, Comment: o.Comment, Range: &r})
			}
		}
		var gone netipx.IPSetBuilder
		gone.AddSet(wasSet)
		gone.RemoveSet(willSet)
		goneSet, _ := gone.IPSet()
		for _, p := range goneSet.Prefixes() {
			changes = append(changes, SourceChange{Kind: kind, Prefix: p})
		}
	}
	return changes, true
}

// covered reports whether the sorted, disjoint ranges hold all of p, by
// binary search (IPSet.ContainsPrefix scans every range, which made a
// 100,000-source plan quadratic).
func covered(ranges []netipx.IPRange, p netip.Prefix) bool {
	r := netipx.RangeOfPrefix(p.Masked())
	i, found := slices.BinarySearchFunc(ranges, r.From(), func(x netipx.IPRange, a netip.Addr) int { return x.From().Compare(a) })
	if !found {
		i--
	}
	return i >= 0 && ranges[i].From().Compare(r.From()) <= 0 && ranges[i].To().Compare(r.To()) >= 0
}

func ipSet(ps Prefixes) *netipx.IPSet {
	var b netipx.IPSetBuilder
	for _, p := range ps.All() {
		b.AddPrefix(p)
	}
	s, _ := b.IPSet()
	return s
}

// SourceString writes a prefix the way people write a single address: a
// /32 or /128 as the bare address.
func SourceString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}
