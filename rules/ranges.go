package rules

import (
	"net/netip"
	"slices"

	"go4.org/netipx"
)

// RangeDecision is the decision for every source in Range.
type RangeDecision struct {
	Range    netipx.IPRange `json:"-"`
	From     netip.Addr     `json:"from"`
	To       netip.Addr     `json:"to"`
	Prefixes []netip.Prefix `json:"prefixes"` // Range as prefixes
	Decision Decision       `json:"decision"`
}

// Loopback source ranges: packets from them arrive on the loopback
// interface, as the kernel routes them.
var loopbackRanges = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// DecideRange tells what the Ruleset does with pkt for every source in
// from (pkt.Source is ignored): the sub-ranges of from, in address order,
// with the decision each gets, adjacent ranges with the same decision
// merged. One element means one decision for all of from. The number of
// ranges is bounded by the prefixes the Ruleset lists, not by the size of
// from.
func (rs *Ruleset) DecideRange(pkt Packet, from netip.Prefix) []RangeDecision {
	from = from.Masked()
	whole := netipx.RangeOfPrefix(from)
	// A verdict can change only where some listed prefix starts or ends.
	cuts := []netip.Addr{whole.From()}
	cut := func(p netip.Prefix) {
		r := netipx.RangeOfPrefix(p.Masked())
		if !r.Overlaps(whole) {
			return
		}
		if r.From().Compare(whole.From()) > 0 {
			cuts = append(cuts, r.From())
		}
		if next := r.To().Next(); next.IsValid() && next.Compare(whole.To()) <= 0 {
			cuts = append(cuts, next)
		}
	}
	for _, p := range loopbackRanges {
		cut(p)
	}
	for i := range rs.Exposures {
		e := &rs.Exposures[i]
		for _, p := range e.Deny.All() {
			cut(p)
		}
		for _, p := range e.Allow.All() {
			cut(p)
		}
		for _, g := range e.Expiring {
			cut(g.Source)
		}
		for _, o := range e.Origins {
			for _, p := range o.Prefixes {
				cut(p)
			}
		}
	}
	slices.SortFunc(cuts, func(a, b netip.Addr) int { return a.Compare(b) })
	cuts = slices.Compact(cuts)
	var out []RangeDecision
	for i, start := range cuts {
		end := whole.To()
		if i+1 < len(cuts) {
			end = cuts[i+1].Prev()
		}
		p := pkt
		p.Source = start
		d := rs.Decide(p)
		if n := len(out); n > 0 && sameDecision(out[n-1].Decision, d) {
			out[n-1].Range = netipx.IPRangeFrom(out[n-1].Range.From(), end)
			continue
		}
		out = append(out, RangeDecision{Range: netipx.IPRangeFrom(start, end), Decision: d})
	}
	for i := range out {
		out[i].From, out[i].To = out[i].Range.From(), out[i].Range.To()
		out[i].Prefixes = out[i].Range.Prefixes()
	}
	return out
}

func sameDecision(a, b Decision) bool { return a.Same(b) }

// Same reports whether two decisions say the same: verdict, exposure,
// deciding block, deadline, and the expired access behind a default, with
// its list file line. The line of a deciding allow or deny block is not
// compared: DecideRange merges the sources of one block whatever lines
// they are on.
func (d Decision) Same(o Decision) bool {
	if d.Verdict != o.Verdict || d.Exposure != o.Exposure || !sameOrigin(d.Origin, o.Origin) || !d.Until.Equal(o.Until) {
		return false
	}
	if (d.Expired == nil) != (o.Expired == nil) {
		return false
	}
	return d.Expired == nil || (sameOrigin(d.Expired.Origin, o.Expired.Origin) && d.Expired.Until.Equal(o.Expired.Until) &&
		d.Expired.Deadline == o.Expired.Deadline && sameLine(d.Expired.Line, o.Expired.Line))
}

func sameOrigin(a, b *Origin) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Kind == b.Kind && a.Range == b.Range
}

func sameLine(a, b *SourceRange) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Filename == b.Filename && a.Start.Line == b.Start.Line
}
