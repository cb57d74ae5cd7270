package iptables

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"

	"go4.org/netipx"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/rules"
)

// Two-phase apply. IPv4 and IPv6 are separate tables, loaded by separate
// iptables-restore commits, so a process killed between them leaves one
// family on the old rules and the other on the new: new sources already
// get in over one family while revoked ones still get in over the other,
// more open than either policy. So Apply goes in two phases: first every
// family to the intersection of old and new (revocations only), then every
// family to the new rules. Whenever it stops, each family holds old,
// intersection or new, and the families are either both in {old,
// intersection} or both in {intersection, new}: the firewall admits a
// subset of what the old policy admits or of what the new one does.

// applyPhased writes the transition from owned to plan.Desired in the two
// phases described above. Steps with nothing to change write nothing: an
// apply that only adds sources has an intersection equal to the old rules,
// one that only revokes has an intersection equal to the new rules.
//
// Within a step, a family's sets and chains are separate commits, ordered
// so that the family is never more open than before the step or after
// it: whether a source is accepted depends only on the exposure's allow
// set, monotonically, so every allow set first shrinks to what it keeps
// (elements deleted, or a swap), then the chains are loaded, then the
// allow sets grow to their new contents. Deny sets decide no packet's
// fate (deny and the default refuse alike) and change before the chains.
// Sets no longer used are destroyed at the end, when no rule names them.
func (b *Backend) applyPhased(ctx context.Context, owned [2]ownedFamily, plan *backends.Plan) error {
	var previous *rules.Ruleset
	if plan.Current != nil {
		previous = plan.Current.Ruleset
	}
	steps := []struct {
		name string
		rs   *rules.Ruleset
	}{
		{"the revocations (the intersection of the old and new rules)", intersect(previous, plan.Desired)},
		{"the new rules", plan.Desired},
	}
	have := owned
	// every owned set that exists or will, to destroy those not wanted
	existing := [2]map[string]bool{{}, {}}
	for _, fam := range families {
		for name := range owned[fam].sets {
			existing[fam][name] = true
		}
	}
	var wants [2]familyRules
	for i, step := range steps {
		var texts [2]string
		var pre, post [2][]setOp
		for _, fam := range families {
			want, err := renderFamily(step.rs, fam, false)
			if err != nil {
				return fmt.Errorf("iptables backend cannot express the policy: %w", err)
			}
			wants[fam] = want
			texts[fam] = transition(have[fam], want, b.maxEditedChain())
			pre[fam], post[fam], err = setTransition(have[fam].sets, want.sets)
			if err != nil {
				return err
			}
		}
		for _, fam := range families {
			if err := b.sets.write(pre[fam]); err != nil {
				return phaseError(err, i, fam, texts)
			}
			if texts[fam] != "" {
				if err := b.run.restore(ctx, fam, texts[fam]); err != nil {
					return phaseError(err, i, fam, texts)
				}
			}
			if err := b.sets.write(post[fam]); err != nil {
				return phaseError(err, i, fam, texts)
			}
		}
		for _, fam := range families {
			next := ownedFromRendered(fam, wants[fam])
			carryCounters(next.sets, have[fam].sets)
			have[fam] = next
			for _, s := range wants[fam].sets {
				existing[fam][s.name] = true
			}
		}
	}
	for _, fam := range families {
		final := map[string]bool{}
		for _, s := range wants[fam].sets {
			final[s.name] = true
		}
		var ops []setOp
		for _, name := range slices.Sorted(maps.Keys(existing[fam])) {
			if !final[name] {
				ops = append(ops, setOp{kind: "destroy", name: name})
			}
		}
		if err := b.sets.write(ops); err != nil {
			return fmt.Errorf("%w (the rules are in place; only sets no longer used are left, which plan reports and apply removes)", err)
		}
	}
	return nil
}

// setTransition is the set writes of one family's step, before the chains
// are loaded and after. A set that does not exist yet is created whole
// before: no loaded rule names it. An allow set that loses elements
// shrinks before, one that gains elements grows after, each in one atomic
// kernel step: a single element is deleted or added in place, more are
// built in a temporary set that is then swapped with the live one (the
// kernel applies an element list one element at a time, so packets could
// see it half done). In the two phases an allow set only shrinks in the
// first and only grows in the second, so each exposure's sources change
// at once. Elements keep their counters through a swap.
func setTransition(have map[string]*ownedSet, want []setSpec) (pre, post []setOp, err error) {
	for _, w := range want {
		h := have[w.name]
		if have[w.name+tempSuffix] != nil { // left by an apply that was cut short
			pre = append(pre, setOp{kind: "destroy", name: w.name + tempSuffix})
		}
		if h == nil {
			pre = append(pre, setOp{kind: "create", name: w.name, spec: w, elems: w.elems})
			continue
		}
		if h.typ != setType || h.family != w.fam.ipsetFamily() {
			if h.refs > 0 {
				return nil, nil, fmt.Errorf("ipset %s is a %s set of family %d, not %s, and rules use it: portwarden cannot replace it; remove those rules and the set by hand (ipset destroy %s), then apply again", w.name, h.typ, h.family, setType, w.name)
			}
			pre = append(pre, setOp{kind: "destroy", name: w.name}, setOp{kind: "create", name: w.name, spec: w, elems: w.elems})
			continue
		}
		keep, del, add := diffElems(h.elems, w.elems)
		full := func() []setElem { return withCounters(w.elems, h.elems) }
		ok := h.headerOK(w)
		if w.role == roleDeny {
			// Deny sets decide no packet's fate (deny and the default
			// refuse alike): all before.
			switch {
			case !ok || len(del)+len(add) > 1:
				pre = append(pre, swapIn(w, full())...)
			case len(del) == 1:
				pre = append(pre, setOp{kind: "del", name: w.name, elems: del})
			case len(add) == 1:
				pre = append(pre, setOp{kind: "add", name: w.name, elems: add})
			}
			continue
		}
		if ok && len(del) == 0 && len(add) == 0 {
			continue
		}
		if hasNomatch(h.elems) || hasNomatch(w.elems) {
			// A nomatch element removes addresses, so adding one shrinks
			// the set and deleting one grows it (and the other way round
			// for a match element). One element changes in place, before
			// if it shrinks, after if it grows; more go by swaps, first to
			// have ∩ want when the change revokes anything, then to want.
			if ok && len(del)+len(add) == 1 {
				switch {
				case len(add) == 1 && add[0].nomatch:
					pre = append(pre, setOp{kind: "add", name: w.name, elems: add})
				case len(add) == 1:
					post = append(post, setOp{kind: "add", name: w.name, elems: add})
				case del[0].nomatch:
					post = append(post, setOp{kind: "del", name: w.name, elems: del})
				default:
					pre = append(pre, setOp{kind: "del", name: w.name, elems: del})
				}
				continue
			}
			haveSpace, wantSpace := elemSpace(h.elems), elemSpace(w.elems)
			if !ok || !within(haveSpace, wantSpace) {
				pre = append(pre, swapIn(w, withCounters(intersectElems(h.elems, w.elems), h.elems))...)
			}
			post = append(post, swapIn(w, full())...)
			continue
		}
		// Before, the set shrinks to what both admit, have ∩ want; it
		// must not lose more: an element merged or split by the change
		// (198.18.0.100/32 and /31 for .100 and .101) is no revocation,
		// and deleting it before its successor is in would refuse, for
		// the length of the apply (and for good if it is killed), a source
		// both policies admit. Elements of want inside have's space go in
		// before; elements of have inside want's space leave only after.
		var preAdd, preDel, postAdd, postDel []setElem
		for _, a := range add {
			if elemsCover(h.elems, a.prefix) {
				preAdd = append(preAdd, a)
			} else {
				postAdd = append(postAdd, a)
			}
		}
		for _, d := range del {
			if elemsCover(w.elems, d.prefix) {
				postDel = append(postDel, d)
			} else {
				preDel = append(preDel, d)
			}
		}
		// (Without nomatch and comments, an allow set's elements differ
		// only by prefix: none leaves and comes back with other flags.)
		switch {
		case !ok || len(preAdd)+len(preDel) > 1:
			between := withCounters(mergeElems(keep, postDel, preAdd), h.elems)
			pre = append(pre, swapIn(w, between)...)
		case len(preAdd) == 1:
			pre = append(pre, setOp{kind: "add", name: w.name, elems: preAdd})
		case len(preDel) == 1:
			pre = append(pre, setOp{kind: "del", name: w.name, elems: preDel})
		}
		switch {
		case len(postAdd)+len(postDel) > 1:
			post = append(post, swapIn(w, full())...)
		case len(postAdd) == 1:
			post = append(post, setOp{kind: "add", name: w.name, elems: postAdd})
		case len(postDel) == 1:
			post = append(post, setOp{kind: "del", name: w.name, elems: postDel})
		}
	}
	return pre, post, nil
}

// elemSpace is the addresses a hash:net set of elems matches: each
// address as the most specific element holding it says (a nomatch one
// cuts it out). Applied from the least specific element to the most, each
// later one overrides the earlier for its addresses, which is that rule.
func elemSpace(elems []setElem) *netipx.IPSet {
	ordered := elems
	if hasNomatch(elems) {
		ordered = slices.Clone(elems)
		slices.SortStableFunc(ordered, func(a, b setElem) int { return cmp.Compare(a.prefix.Bits(), b.prefix.Bits()) })
	}
	var b netipx.IPSetBuilder
	for _, e := range ordered {
		if e.nomatch {
			b.RemovePrefix(e.prefix)
		} else {
			b.AddPrefix(e.prefix)
		}
	}
	s, _ := b.IPSet()
	return s
}

// elemsCover reports whether one of the sorted elements (none nomatch)
// holds all of p, by the binary search coveredBy makes: building the
// address set of a list of 100,000 cost a one-source change a tenth of
// its time. Written lists are merged; a list split or nested by hand may
// be answered no where the answer is yes, which only moves an addition
// after the chains load.
func elemsCover(elems []setElem, p netip.Prefix) bool {
	return covers(elems, func(e setElem) netip.Prefix { return e.prefix }, p)
}

// within reports whether every address of a is in b.
func within(a, b *netipx.IPSet) bool {
	for _, r := range a.Ranges() {
		if !b.ContainsRange(r) {
			return false
		}
	}
	return true
}

func hasNomatch(elems []setElem) bool {
	return slices.ContainsFunc(elems, func(e setElem) bool { return e.nomatch })
}

// intersectElems are hash:net elements that match what both a and b
// match: (match of a ∩ match of b) minus (nomatch of a ∪ nomatch of b).
func intersectElems(a, b []setElem) []setElem {
	split := func(elems []setElem) (match, nomatch []netip.Prefix) {
		for _, e := range elems {
			if e.nomatch {
				nomatch = append(nomatch, e.prefix)
			} else {
				match = append(match, e.prefix)
			}
		}
		return prefixSet(match).Prefixes(), nomatch
	}
	am, an := split(a)
	bm, bn := split(b)
	return netElems(intersectPrefixes(am, bm), prefixSet(append(an, bn...)).Prefixes())
}

// mergeElems is the elements of the lists together, sorted.
func mergeElems(lists ...[]setElem) []setElem {
	var out []setElem
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.SortFunc(out, cmpElem)
	return out
}

// cmpElem orders elements as sortElems does, then by what else they
// carry, so sorted lists can be walked side by side.
func cmpElem(a, b setElem) int {
	if c := a.prefix.Addr().Compare(b.prefix.Addr()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.prefix.Bits(), b.prefix.Bits()); c != 0 {
		return c
	}
	if c := strings.Compare(a.comment, b.comment); c != 0 {
		return c
	}
	if a.nomatch != b.nomatch {
		if a.nomatch {
			return 1
		}
		return -1
	}
	return 0
}

// diffElems walks two sorted element lists: what have keeps (with its
// counters), what it must lose and what it must gain.
func diffElems(have, want []setElem) (keep, del, add []setElem) {
	i, j := 0, 0
	for i < len(have) || j < len(want) {
		switch {
		case j == len(want) || i < len(have) && cmpElem(have[i], want[j]) < 0:
			del = append(del, have[i])
			i++
		case i == len(have) || cmpElem(have[i], want[j]) > 0:
			add = append(add, want[j])
			j++
		default:
			keep = append(keep, have[i])
			i++
			j++
		}
	}
	return keep, del, add
}

// withCounters copies elems (sorted) with the counters the same elements
// have in from (sorted).
func withCounters(elems, from []setElem) []setElem {
	out := slices.Clone(elems)
	i := 0
	for k := range out {
		for i < len(from) && cmpElem(from[i], out[k]) < 0 {
			i++
		}
		if i < len(from) && cmpElem(from[i], out[k]) == 0 {
			out[k].packets, out[k].nbytes = from[i].packets, from[i].nbytes
		}
	}
	return out
}

// carryCounters gives the sets of next the counters the same elements
// have in prev, so a later swap in the same apply keeps them.
func carryCounters(next, prev map[string]*ownedSet) {
	for name, s := range next {
		if p := prev[name]; p != nil {
			s.elems = withCounters(s.elems, p.elems)
		}
	}
}

// swapIn builds elems in a temporary set made like w, swaps it with the
// live set in one step, and destroys what is then the temporary set.
func swapIn(w setSpec, elems []setElem) []setOp {
	temp := w.name + tempSuffix
	return []setOp{
		{kind: "create", name: temp, spec: w, elems: elems},
		{kind: "swap", name: w.name, other: temp},
		{kind: "destroy", name: temp},
	}
}

// phaseError says what each family holds after a failed restore; either
// way the firewall is no more open than the old or the new policy.
func phaseError(err error, phase int, failed family, texts [2]string) error {
	other := ipv4
	if failed == ipv4 {
		other = ipv6
	}
	switch {
	case phase == 0 && failed == ipv6 && texts[ipv4] != "":
		return fmt.Errorf("%w (IPv4 holds only the revocations of the change, IPv6 the old rules: no more open than the old policy; run plan and apply again)", err)
	case phase == 0:
		return fmt.Errorf("%w (nothing was changed)", err)
	case failed == ipv6 && texts[ipv4] != "":
		return fmt.Errorf("%w (IPv4 holds the new rules, IPv6 only the revocations of the change: no more open than the new policy; run plan and apply again)", err)
	default:
		return fmt.Errorf("%w (both families hold only the revocations of the change, %s unchanged since: no more open than either policy; run plan and apply again)", err, other)
	}
}

// ownedFromRendered is what a family's table holds right after rendered
// was loaded: the chains as written and the jump at the top of INPUT.
func ownedFromRendered(fam family, fr familyRules) ownedFamily {
	o := ownedFamily{fam: fam, jumps: []savedRule{{chain: "INPUT", line: jumpRule}}, jumpAtTop: true, chains: map[string][]savedRule{},
		sets: map[string]*ownedSet{}}
	for _, s := range fr.sets {
		o.sets[s.name] = &ownedSet{name: s.name, typ: setType, family: fam.ipsetFamily(), counters: true, comments: s.comments(),
			maxElem: setMaxElem, refs: 1, elems: s.elems}
	}
	for _, c := range fr.chains {
		o.chainOrder = append(o.chainOrder, c.name)
		rs := make([]savedRule, len(c.rules))
		for i, r := range c.rules {
			rs[i] = savedRule{chain: c.name, line: r}
		}
		o.chains[c.name] = rs
	}
	return o
}

// intersect is a Ruleset that admits no packet that old or new refuses:
// every exposure of either is kept with its own match (protocol, ports,
// interfaces, destinations), and a packet it matches is admitted only if
// every exposure of old and new that could match the same packet admits
// its source (allow sets intersected, deny sets united, loopback only if
// all allow it). Because each kept exposure is restricted by all that
// overlap it, the first-match order between them does not matter, and
// because every exposure of both is kept, nothing either manages passes
// unchecked. An exposure whose match changed is kept twice: the new one
// under its name, the old one under "NAME (previous)".
func intersect(old, new *rules.Ruleset) *rules.Ruleset {
	if old == nil {
		old = &rules.Ruleset{}
	}
	if new == nil {
		new = &rules.Ruleset{}
	}
	all := make([]*rules.Exposure, 0, len(old.Exposures)+len(new.Exposures))
	for i := range old.Exposures {
		all = append(all, &old.Exposures[i])
	}
	for i := range new.Exposures {
		all = append(all, &new.Exposures[i])
	}
	names := map[string]bool{}
	for _, e := range all {
		names[e.Name] = true
	}
	out := &rules.Ruleset{}
	add := func(e *rules.Exposure, name string) {
		x := rules.Exposure{Name: name, Protocol: e.Protocol, Ports: slices.Clone(e.Ports), Interfaces: slices.Clone(e.Interfaces),
			Destinations: e.Destinations, Default: e.Default, RejectWith: e.RejectWith, Log: e.Log, Loopback: true}
		var allow, deny [2][]netip.Prefix
		var overlapping []*rules.Exposure
		first := true
		for _, f := range all {
			if !overlaps(e, f) {
				continue
			}
			overlapping = append(overlapping, f)
			x.Loopback = x.Loopback && f.Loopback
			a := [2][]netip.Prefix{f.Allow.V4, f.Allow.V6}
			d := [2][]netip.Prefix{f.Deny.V4, f.Deny.V6}
			for v := range 2 {
				if first {
					allow[v], deny[v] = a[v], d[v]
					continue
				}
				allow[v] = intersectPrefixes(allow[v], a[v])
				if len(d[v]) > 0 {
					deny[v] = prefixSet(append(slices.Clone(deny[v]), d[v]...)).Prefixes()
				}
			}
			first = false
		}
		x.Allow = rules.Prefixes{V4: slices.Clone(allow[0]), V6: slices.Clone(allow[1])}
		x.Deny = rules.Prefixes{V4: slices.Clone(deny[0]), V6: slices.Clone(deny[1])}
		x.Expiring = intersectGrants(overlapping)
		out.Exposures = append(out.Exposures, x)
	}
	for i := range new.Exposures {
		add(&new.Exposures[i], new.Exposures[i].Name)
	}
	for i := range old.Exposures {
		e := &old.Exposures[i]
		if n := new.Exposure(e.Name); n != nil && sameMatch(e, n) {
			continue // the new one's match is the same: restricted by both already
		}
		name := e.Name
		if names[name] {
			name = previousName(e.Name, names)
		}
		names[name] = true
		add(e, name)
	}
	out.Normalize()
	return out
}

// intersectGrants are the grants of the intersection of exposures: the
// part of each exposure's grants that every one of them admits, in its
// allow set or by a grant, until the earliest of those deadlines. (Left
// out, every apply would refuse the holders of grants that both policies
// admit for as long as it runs, and an apply killed between its phases
// would leave them refused.)
func intersectGrants(exposures []*rules.Exposure) []rules.Grant {
	var out []rules.Grant
	for _, e := range exposures {
		for _, g := range e.Expiring {
			pieces := []rules.Grant{g}
			for _, f := range exposures {
				if pieces = admittedBy(f, pieces); len(pieces) == 0 {
					break
				}
			}
			out = append(out, pieces...)
		}
	}
	return out
}

// admittedBy are the parts of pieces that f admits: those inside its
// allow set, until the piece's deadline, and those inside one of its
// grants, until the earlier of the two deadlines. (f's grants lie outside
// its allow set, so no part is counted twice.)
func admittedBy(f *rules.Exposure, pieces []rules.Grant) []rules.Grant {
	var out []rules.Grant
	for _, p := range pieces {
		for _, a := range intersectPrefixes([]netip.Prefix{p.Source}, f.Allow.FamilyOf(p.Source.Addr())) {
			out = append(out, rules.Grant{Source: a, Until: p.Until})
		}
		for _, h := range f.Expiring {
			if !h.Source.Overlaps(p.Source) {
				continue
			}
			part := rules.Grant{Source: h.Source, Until: p.Until}
			if p.Source.Bits() > h.Source.Bits() {
				part.Source = p.Source
			}
			if h.Until.Before(part.Until) {
				part.Until = h.Until
			}
			out = append(out, part)
		}
	}
	return out
}

// coveredBy reports whether p lies whole within the normalised (sorted,
// merged) prefixes ps: an aligned block inside their union lies inside
// the one of them that holds its first address.
func coveredBy(ps []netip.Prefix, p netip.Prefix) bool {
	return covers(ps, func(q netip.Prefix) netip.Prefix { return q }, p)
}

// covers is coveredBy over any sorted list whose items have a prefix: the
// first item starting at p's address (the least specific there), else the
// last one starting before it, is the only one that can hold p whole.
func covers[T any](items []T, prefixOf func(T) netip.Prefix, p netip.Prefix) bool {
	i, found := slices.BinarySearchFunc(items, p.Addr(), func(x T, a netip.Addr) int { return prefixOf(x).Addr().Compare(a) })
	if !found {
		i--
	}
	return i >= 0 && prefixOf(items[i]).Contains(p.Addr()) && prefixOf(items[i]).Bits() <= p.Bits()
}

// intersectPrefixes is the intersection of two normalised (sorted,
// merged) prefix lists, normalised, by a walk of both: two prefixes nest
// or are disjoint, so each overlapping pair contributes its smaller one.
// 100,000 sources intersect in milliseconds instead of a netipx rebuild.
func intersectPrefixes(a, b []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		x, y := a[i], b[j]
		if x.Overlaps(y) {
			if x.Bits() >= y.Bits() {
				out = append(out, x)
			} else {
				out = append(out, y)
			}
		}
		// Advance the one that ends first.
		if netipx.PrefixLastIP(x).Less(netipx.PrefixLastIP(y)) {
			i++
		} else {
			j++
		}
	}
	return out
}

// previousName names the old version of an exposure whose match changed.
func previousName(name string, taken map[string]bool) string {
	if n := name + " (previous)"; validName(n) && !taken[n] {
		return n
	}
	sum := sha256.Sum256([]byte(name))
	return "previous " + hex.EncodeToString(sum[:8])
}

func sameMatch(a, b *rules.Exposure) bool {
	return a.Protocol == b.Protocol && slices.Equal(a.Ports, b.Ports) && slices.Equal(a.Interfaces, b.Interfaces) &&
		slices.Equal(a.Destinations.V4, b.Destinations.V4) && slices.Equal(a.Destinations.V6, b.Destinations.V6)
}

// overlaps reports whether some packet could match both exposures. It may
// say yes when none could (which only makes the intersection stricter),
// never no when one could.
func overlaps(a, b *rules.Exposure) bool {
	if a.Protocol != b.Protocol {
		return false
	}
	ports := false
	for _, p := range a.Ports {
		for _, q := range b.Ports {
			if p.First <= q.Last && q.First <= p.Last {
				ports = true
			}
		}
	}
	if !ports {
		return false
	}
	if len(a.Interfaces) > 0 && len(b.Interfaces) > 0 && !slices.ContainsFunc(a.Interfaces, func(i string) bool { return slices.Contains(b.Interfaces, i) }) {
		return false
	}
	if a.Destinations.Empty() || b.Destinations.Empty() {
		return true
	}
	da, db := ipSets(a.Destinations), ipSets(b.Destinations)
	return da[0].Overlaps(db[0]) || da[1].Overlaps(db[1])
}

func ipSets(p rules.Prefixes) [2]*netipx.IPSet {
	var out [2]*netipx.IPSet
	for v, ps := range [][]netip.Prefix{p.V4, p.V6} {
		var b netipx.IPSetBuilder
		for _, x := range ps {
			b.AddPrefix(x)
		}
		out[v], _ = b.IPSet()
	}
	return out
}

// Holdings says, per family, which step of the transition from previous
// to desired the kernel holds: the old rules, only the revocations (the
// intersection), the new rules, or something else. safeapply uses it to
// describe an apply that was cut short.
func (b *Backend) Holdings(ctx context.Context, previous, desired *rules.Ruleset) ([]string, error) {
	owned, err := b.read(ctx)
	if err != nil {
		return nil, err
	}
	if previous == nil {
		previous = &rules.Ruleset{}
	}
	if desired == nil {
		desired = &rules.Ruleset{}
	}
	steps := []struct {
		what string
		rs   *rules.Ruleset
	}{
		{"the new rules", desired},
		{"the old rules", previous},
		{"only the revocations of the change (the intersection of old and new)", intersect(previous, desired)},
	}
	var out []string
	for _, fam := range families {
		what := "neither the old nor the new rules (changed by hand since?)"
		for _, s := range steps {
			if familyHolds(owned[fam], s.rs, fam) {
				what = s.what
				break
			}
		}
		out = append(out, fmt.Sprintf("%s holds %s", fam, what))
	}
	return out, nil
}

// familyHolds reports whether a family's owned objects are exactly rs.
func familyHolds(o ownedFamily, rs *rules.Ruleset, fam family) bool {
	if len(rs.Exposures) == 0 {
		return o.empty()
	}
	want, err := renderFamily(rs, fam, false)
	if err != nil {
		return false
	}
	if o.empty() || transition(o, want, math.MaxInt) != "" {
		return false
	}
	// Deny sets decide no packet's fate (deny and the default refuse
	// alike) and change first in a step, so they are not compared.
	for _, w := range want.sets {
		if h := o.sets[w.name]; w.role == roleAllow && (h == nil || !h.headerOK(w) || !sameElems(h.elems, w.elems)) {
			return false
		}
	}
	return true
}
