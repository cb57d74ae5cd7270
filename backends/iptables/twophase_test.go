package iptables

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"go4.org/netipx"

	"github.com/portwarden/portwarden/rules"
)

// grantDeadlines are the deadlines random grants take.
var grantDeadlines = []time.Time{
	time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC),
}

// randomRuleset draws a small Ruleset over a few ports, interfaces and
// sources, so that exposures of two draws overlap in every way.
func randomRuleset(r *rand.Rand) *rules.Ruleset {
	rs := &rules.Ruleset{}
	names := []string{"a", "b", "c"}
	for _, name := range names {
		if r.IntN(3) == 0 {
			continue
		}
		e := rules.Exposure{Name: name, Protocol: rules.TCP, Default: rules.Drop, Loopback: r.IntN(2) == 0}
		first := uint16(20 + r.IntN(6))
		e.Ports = []rules.PortRange{{First: first, Last: first + uint16(r.IntN(3))}}
		if r.IntN(2) == 0 {
			e.Interfaces = []string{[]string{"eth0", "eth1"}[r.IntN(2)]}
		}
		var allow, deny []netip.Prefix
		for range r.IntN(6) {
			allow = append(allow, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(r.IntN(16))}), 32))
		}
		for range r.IntN(3) {
			deny = append(deny, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(r.IntN(16))}), 32))
		}
		if r.IntN(3) == 0 {
			allow = append(allow, netip.MustParsePrefix("2001:2::/126"))
		}
		e.Allow, e.Deny = rules.NewPrefixes(allow...), rules.NewPrefixes(deny...)
		for range r.IntN(3) {
			bits := 30 + r.IntN(3)
			src := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(r.IntN(16))}), bits).Masked()
			e.Expiring = append(e.Expiring, rules.Grant{Source: src, Until: grantDeadlines[r.IntN(len(grantDeadlines))]})
		}
		if r.IntN(2) == 0 {
			e.Default, e.RejectWith = rules.Reject, []rules.RejectWith{rules.TCPReset, rules.ICMPAdminProhibited}[r.IntN(2)]
		}
		rs.Exposures = append(rs.Exposures, e)
	}
	rs.Normalize()
	return rs
}

// The intersection admits no packet that the old or the new Ruleset
// refuses, and manages every port either manages; with the same match on
// both sides it admits exactly what both admit.
func TestIntersectAdmitsOnlyWhatBothAdmit(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 17))
	sources := []netip.Addr{netip.MustParseAddr("2001:2::1"), netip.MustParseAddr("2001:2::9")}
	for i := range 16 {
		sources = append(sources, netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}))
	}
	for n := range 2000 {
		old, new := randomRuleset(r), randomRuleset(r)
		mid := intersect(old, new)
		if err := validate(mid); err != nil {
			t.Fatalf("draw %d: %v", n, err)
		}
		for _, src := range sources {
			for port := uint16(19); port <= 28; port++ {
				for _, ifname := range []string{"eth0", "eth1", "eth2", "lo"} {
					pkt := rules.Packet{Protocol: rules.TCP, Source: src, Port: port, Interface: ifname}
					m := mid.Decide(pkt)
					if m.Verdict == rules.Accept || m.Verdict == rules.Pass {
						for _, d := range []rules.Decision{old.Decide(pkt), new.Decide(pkt)} {
							// Admitted as long: for good (no deadline), or
							// by a grant that lasts no shorter.
							longer := d.Verdict == rules.Pass || d.Verdict == rules.Accept &&
								(d.Until.IsZero() || !m.Until.IsZero() && !d.Until.Before(m.Until))
							if !longer {
								t.Fatalf("draw %d: %+v: intersection %s until %s, old %s, new %s\nold %+v\nnew %+v\nmid %+v", n, pkt, m.Verdict, m.Until, old.Decide(pkt).Verdict, new.Decide(pkt).Verdict, old, new, mid)
							}
						}
					}
				}
			}
		}
	}
}

// With the same match on both sides the intersection admits what both
// admit, for as long as both do: a grant partly inside the other side's
// allow set or grants keeps that part (a policy that made 198.18.0.2 a
// grant inside a wider /16 refused it between the phases).
func TestIntersectKeepsWhatBothAdmit(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	draw := func() *rules.Ruleset {
		e := rules.Exposure{Name: "x", Protocol: rules.TCP, Default: rules.Drop, Ports: []rules.PortRange{{First: 22, Last: 22}}}
		var allow, deny []netip.Prefix
		for range r.IntN(4) {
			allow = append(allow, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(r.IntN(16))}), 28+r.IntN(5)).Masked())
		}
		for range r.IntN(2) {
			deny = append(deny, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(r.IntN(16))}), 32))
		}
		for range r.IntN(4) {
			src := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(r.IntN(16))}), 28+r.IntN(5)).Masked()
			e.Expiring = append(e.Expiring, rules.Grant{Source: src, Until: grantDeadlines[r.IntN(len(grantDeadlines))]})
		}
		e.Allow, e.Deny = rules.NewPrefixes(allow...), rules.NewPrefixes(deny...)
		rs := &rules.Ruleset{Exposures: []rules.Exposure{e}}
		rs.Normalize()
		return rs
	}
	for n := range 3000 {
		old, new := draw(), draw()
		mid := intersect(old, new)
		for i := range 16 {
			pkt := rules.Packet{Protocol: rules.TCP, Source: netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}), Port: 22, Interface: "eth0"}
			o, w, m := old.Decide(pkt), new.Decide(pkt), mid.Decide(pkt)
			if o.Verdict != rules.Accept || w.Verdict != rules.Accept {
				continue
			}
			until := o.Until // zero: for good
			if until.IsZero() || !w.Until.IsZero() && w.Until.Before(until) {
				until = w.Until
			}
			if m.Verdict != rules.Accept || !m.Until.Equal(until) {
				t.Fatalf("draw %d: %s admitted by old until %v and new until %v, by the intersection %s until %v\nold %+v\nnew %+v\nmid %+v",
					n, pkt.Source, o.Until, w.Until, m.Verdict, m.Until, old.Exposures[0], new.Exposures[0], mid.Exposures[0])
			}
		}
	}
}

// Adding sources only: the intersection is the old rules (phase one
// writes nothing); revoking only: it is the new rules.
func TestIntersectOfPureAdditionOrRevocation(t *testing.T) {
	mk := func(ps ...string) *rules.Ruleset {
		var pfx []netip.Prefix
		for _, p := range ps {
			pfx = append(pfx, netip.MustParsePrefix(p))
		}
		rs := &rules.Ruleset{Exposures: []rules.Exposure{{Name: "nscp", Protocol: rules.TCP, Default: rules.Drop, Loopback: true,
			Ports: []rules.PortRange{{First: 27, Last: 27}}, Allow: rules.NewPrefixes(pfx...)}}}
		rs.Normalize()
		return rs
	}
	small, big := mk("198.18.0.1/32"), mk("198.18.0.1/32", "198.18.0.9/32", "2001:2::5/128")
	if got := intersect(small, big); got.Fingerprint() != small.Fingerprint() {
		t.Errorf("adding sources: intersection %+v, want the old rules", got)
	}
	if got := intersect(big, small); got.Fingerprint() != small.Fingerprint() {
		t.Errorf("revoking sources: intersection %+v, want the new rules", got)
	}
	// With grants and a reject kind of their own, both kept: before, the
	// intersection lost them, so every apply refused the grants' holders
	// while it ran (and for good if killed between its phases).
	withGrant := func(rs *rules.Ruleset) *rules.Ruleset {
		rs.Exposures[0].Default, rs.Exposures[0].RejectWith = rules.Reject, rules.ICMPAdminProhibited
		rs.Exposures[0].Expiring = []rules.Grant{
			{Source: netip.MustParsePrefix("198.18.0.66/32"), Until: grantDeadlines[0]},
			{Source: netip.MustParsePrefix("2001:2::66/128"), Until: grantDeadlines[1]},
		}
		rs.Normalize()
		return rs
	}
	small, big = withGrant(mk("198.18.0.1/32")), withGrant(mk("198.18.0.1/32", "198.18.0.9/32"))
	if got := intersect(small, big); got.Fingerprint() != small.Fingerprint() {
		t.Errorf("adding sources beside grants: intersection %+v, want the old rules", got)
	}
	if got := intersect(big, small); got.Fingerprint() != small.Fingerprint() {
		t.Errorf("revoking sources beside grants: intersection %+v, want the new rules", got)
	}
	// A grant moved to a later deadline is kept until the earlier one; one
	// made permanent is kept until its deadline.
	later := withGrant(mk("198.18.0.1/32"))
	later.Exposures[0].Expiring[0].Until = grantDeadlines[2]
	later.Normalize()
	if got := intersect(small, later); got.Fingerprint() != small.Fingerprint() {
		t.Errorf("a deadline moved later: intersection %+v, want the old rules", got)
	}
	permanent := withGrant(mk("198.18.0.1/32", "198.18.0.66/32"))
	if got := intersect(small, permanent); got.Fingerprint() != small.Fingerprint() {
		t.Errorf("a grant made permanent: intersection %+v, want the old rules", got)
	}
}

// An allow set loses elements before the chains load and gains them
// after, each change in one kernel step: one element in place, more
// through a swapped temporary set; unchanged elements keep counters.
func TestSetTransitionShrinksBeforeGrowsAfter(t *testing.T) {
	mk := func(ps ...string) []setElem {
		var es []setElem
		for _, p := range ps {
			es = append(es, setElem{prefix: netip.MustParsePrefix(p)})
		}
		sortElems(es)
		return es
	}
	w := setSpec{name: "PW-0123456789-a4", fam: ipv4, role: roleAllow}
	have := func(es []setElem) map[string]*ownedSet {
		es[0].packets = 7
		return map[string]*ownedSet{w.name: {name: w.name, typ: setType, family: ipv4.ipsetFamily(), counters: true, maxElem: setMaxElem, refs: 1, elems: es}}
	}
	kinds := func(ops []setOp) string {
		var k []string
		for _, op := range ops {
			k = append(k, op.kind)
		}
		return strings.Join(k, ",")
	}
	for _, c := range []struct {
		name       string
		have, want []string
		pre, post  string
	}{
		{"unchanged", []string{"198.18.0.1/32", "198.18.0.3/32"}, []string{"198.18.0.1/32", "198.18.0.3/32"}, "", ""},
		{"one added", []string{"198.18.0.1/32"}, []string{"198.18.0.1/32", "198.18.0.3/32"}, "", "add"},
		{"one removed", []string{"198.18.0.1/32", "198.18.0.3/32"}, []string{"198.18.0.1/32"}, "del", ""},
		{"one replaced", []string{"198.18.0.1/32", "198.18.0.3/32"}, []string{"198.18.0.1/32", "198.18.0.5/32"}, "del", "add"},
		{"many added", []string{"198.18.0.1/32"}, []string{"198.18.0.1/32", "198.18.0.3/32", "198.18.0.5/32"}, "", "create,swap,destroy"},
		{"many removed", []string{"198.18.0.1/32", "198.18.0.3/32", "198.18.0.5/32"}, []string{"198.18.0.1/32"}, "create,swap,destroy", ""},
		// A neighbour added merges with a kept source: nothing leaves
		// before the merged element is in.
		{"merged", []string{"198.18.0.100/32"}, []string{"198.18.0.100/31"}, "", "create,swap,destroy"},
		{"split", []string{"198.18.0.100/31"}, []string{"198.18.0.100/32"}, "create,swap,destroy", ""},
		{"split, one piece left", []string{"198.18.0.100/30", "198.18.0.1/32"}, []string{"198.18.0.100/31", "198.18.0.102/32", "198.18.0.1/32"}, "create,swap,destroy", ""},
	} {
		w.elems = mk(c.want...)
		pre, post, err := setTransition(have(mk(c.have...)), []setSpec{w})
		if err != nil {
			t.Fatal(err)
		}
		if kinds(pre) != c.pre || kinds(post) != c.post {
			t.Errorf("%s: pre %q post %q, want %q %q", c.name, kinds(pre), kinds(post), c.pre, c.post)
		}
		first := mk(c.have...)[0].prefix
		for _, op := range append(pre, post...) {
			if op.kind == "create" && op.elems[0].prefix == first && op.elems[0].packets != 7 {
				t.Errorf("%s: the swapped-in set lost the counters of %s", c.name, op.elems[0].prefix)
			}
		}
	}
}

// Played op by op, a set's transition never admits an address that
// neither have nor want admits in its step, and never refuses one both
// admit: before the chains load it goes from have to have ∩ want, after
// from there to want, over random lists that merge and split.
func TestSetTransitionNeverRefusesWhatBothAdmit(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 9))
	w := setSpec{name: "PW-0123456789-a4", fam: ipv4, role: roleAllow}
	random := func() []setElem {
		if r.IntN(2) == 0 { // allow minus deny, with nomatch elements
			return netElems(randomPrefixes(r, r.IntN(6)), randomPrefixes(r, r.IntN(4)))
		}
		var es []setElem
		for _, p := range randomPrefixes(r, r.IntN(6)) {
			es = append(es, setElem{prefix: p})
		}
		sortElems(es)
		return es
	}
	// What hash:net matches (elemSpace, itself checked address by address
	// against a lookup in TestNetElemsHoldAllowMinusDeny).
	space := elemSpace
	for n := range 3000 {
		haveElems, wantElems := random(), random()
		w.elems = wantElems
		have := map[string]*ownedSet{w.name: {name: w.name, typ: setType, family: ipv4.ipsetFamily(), counters: true, maxElem: setMaxElem, refs: 1, elems: haveElems}}
		pre, post, err := setTransition(have, []setSpec{w})
		if err != nil {
			t.Fatal(err)
		}
		hs, ws := space(haveElems), space(wantElems)
		var both netipx.IPSetBuilder
		both.AddSet(hs)
		both.Intersect(ws)
		bothSet, _ := both.IPSet()
		live, temp := slices.Clone(haveElems), []setElem(nil)
		check := func(phase string, bound *netipx.IPSet, op setOp) {
			cur := space(live)
			var over netipx.IPSetBuilder
			over.AddSet(cur)
			over.RemoveSet(bound)
			o, _ := over.IPSet()
			var under netipx.IPSetBuilder
			under.AddSet(bothSet)
			under.RemoveSet(cur)
			u, _ := under.IPSet()
			if len(o.Prefixes()) > 0 || len(u.Prefixes()) > 0 {
				t.Fatalf("draw %d, %s, after %s: admits %v beyond its step, refuses %v both admit\nhave %v\nwant %v\npre %+v\npost %+v", n, phase, op.kind, o.Prefixes(), u.Prefixes(), haveElems, wantElems, pre, post)
			}
		}
		play := func(phase string, ops []setOp, bound *netipx.IPSet) {
			for _, op := range ops {
				switch op.kind {
				case "add":
					live = append(live, op.elems...)
				case "del":
					live = slices.DeleteFunc(live, func(e setElem) bool {
						return slices.ContainsFunc(op.elems, func(d setElem) bool { return d.prefix == e.prefix })
					})
				case "destroy":
					temp = nil
				case "create":
					temp = slices.Clone(op.elems)
				case "swap":
					live, temp = temp, live
				}
				check(phase, bound, op)
			}
		}
		play("before the chains", pre, hs)
		play("after the chains", post, ws)
		if got := space(live); !slices.Equal(got.Prefixes(), ws.Prefixes()) {
			t.Fatalf("draw %d: the set ends as %v, want %v", n, got.Prefixes(), ws.Prefixes())
		}
	}
}

// intersectPrefixes agrees with netipx, normalised, on lists that nest.
func TestIntersectPrefixesAgreesWithNetipx(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 27))
	random := func(n int) []netip.Prefix { return randomPrefixes(r, n) }
	for range 2000 {
		a, b := random(r.IntN(12)), random(r.IntN(12))
		var ib netipx.IPSetBuilder
		ib.AddSet(prefixSet(a))
		ib.Intersect(prefixSet(b))
		want, _ := ib.IPSet()
		if got := intersectPrefixes(a, b); !slices.Equal(got, want.Prefixes()) {
			t.Fatalf("%v ∩ %v = %v, want %v", a, b, got, want.Prefixes())
		}
	}
}
