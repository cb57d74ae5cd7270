package rules

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/portwarden/portwarden/policies"
)

// The property tests below compare the compiled model with a reference
// evaluation written directly over policies.Policy: a linear scan of the
// blocks, with prefix containment done bit by bit on 16-byte addresses.
// It shares no code with Compile, Prefixes or Decide (no netipx, no merged
// sets, no binary search), so a bug in either shows up as a disagreement.
// The random generator is seeded: a failure names the iteration and
// reproduces on every run.

// referenceDecision is what the reference evaluation says about a packet.
type referenceDecision struct {
	verdict  Verdict
	exposure string
	kind     string               // Origin kind; "" with Pass
	block    *policies.SourceRule // the deciding allow/deny block
}

// referenceDecide follows the order documented on Exposure, over the policy.
func referenceDecide(p *policies.Policy, pkt Packet) referenceDecision {
	exposes := slices.Clone(p.Exposes)
	slices.SortFunc(exposes, func(a, b *policies.Expose) int { return strings.Compare(a.Name, b.Name) })
	for _, x := range exposes {
		if Protocol(x.Protocol) != pkt.Protocol || !referencePortIn(x.Ports, pkt.Port) {
			continue
		}
		if pkt.Interface != "" && len(x.Interfaces) > 0 && !slices.Contains(x.Interfaces, pkt.Interface) {
			continue
		}
		if len(x.Destinations) > 0 {
			if pkt.Destination.IsValid() {
				if !referenceIn(x.Destinations, pkt.Destination) {
					continue
				}
			} else if !referenceHasFamily(x.Destinations, referenceFamily(pkt.Source)) {
				// No destination given: only a packet of a family the
				// expose has destinations for can match it.
				continue
			}
		}
		def := Verdict(x.Default)
		if def == "" {
			def = Drop
		}
		if x.Loopback && pkt.Interface == "lo" {
			return referenceDecision{Accept, x.Name, OriginLoopback, nil}
		}
		for _, b := range x.Deny {
			if referenceIn(b.From, pkt.Source) {
				return referenceDecision{def, x.Name, OriginDeny, b}
			}
		}
		for _, b := range x.Allow {
			if referenceIn(b.From, pkt.Source) {
				return referenceDecision{Accept, x.Name, OriginAllow, b}
			}
		}
		return referenceDecision{def, x.Name, OriginDefault, nil}
	}
	return referenceDecision{verdict: Pass}
}

func referencePortIn(rs []policies.PortRange, port uint16) bool {
	for _, r := range rs {
		if port >= r.First && port <= r.Last {
			return true
		}
	}
	return false
}

func referenceIn(as []policies.Address, a netip.Addr) bool {
	for _, x := range as {
		if referenceContains(x.Prefix, a) {
			return true
		}
	}
	return false
}

func referenceHasFamily(as []policies.Address, family int) bool {
	for _, x := range as {
		if referencePrefixFamily(x.Prefix) == family {
			return true
		}
	}
	return false
}

// referenceFamily: an IPv4-mapped IPv6 address is IPv4 (the kernel never
// sees one on the wire; Decide unmaps them).
func referenceFamily(a netip.Addr) int {
	if a.Is4() || a.Is4In6() {
		return 4
	}
	return 6
}

// referencePrefixFamily: a mapped prefix is IPv4 only when it stays inside
// ::ffff:0:0/96.
func referencePrefixFamily(p netip.Prefix) int {
	if p.Addr().Is4() || p.Addr().Is4In6() && p.Bits() >= 96 {
		return 4
	}
	return 6
}

// referenceContains compares the first bits of both addresses in their
// 16-byte form (IPv4 as ::ffff:a.b.c.d), within one family.
func referenceContains(p netip.Prefix, a netip.Addr) bool {
	if referencePrefixFamily(p) != referenceFamily(a) {
		return false
	}
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	pb, ab := p.Addr().As16(), a.As16()
	for i := 0; i < bits; i++ {
		mask := byte(0x80) >> (i % 8)
		if pb[i/8]&mask != ab[i/8]&mask {
			return false
		}
	}
	return true
}

// referenceLast is the last address of p, by setting the host bits.
func referenceLast(p netip.Prefix) netip.Addr {
	p = p.Masked()
	if p.Addr().Is4() {
		b := p.Addr().As4()
		for i := p.Bits(); i < 32; i++ {
			b[i/8] |= byte(0x80) >> (i % 8)
		}
		return netip.AddrFrom4(b)
	}
	b := p.Addr().As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= byte(0x80) >> (i % 8)
	}
	return netip.AddrFrom16(b)
}

// randomPrefix draws from a small space (198.18.0.0/15, 2001:2::/48 and a
// few extremes) so that prefixes of different blocks overlap often.
func randomPrefix(r *rand.Rand) netip.Prefix {
	switch n := r.IntN(40); {
	case n == 0:
		return []netip.Prefix{
			netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"),
			netip.MustParsePrefix("0.0.0.0/32"), netip.MustParsePrefix("255.255.255.255/32"),
			netip.MustParsePrefix("::/128"), netip.MustParsePrefix("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"),
		}[r.IntN(6)]
	case n < 20:
		a := netip.AddrFrom4([4]byte{198, 18 + byte(r.IntN(2)), byte(r.IntN(4)), byte(r.IntN(256))})
		return netip.PrefixFrom(a, 15+r.IntN(18)).Masked()
	default:
		var b [16]byte
		copy(b[:], []byte{0x20, 0x01, 0, 2, 0, byte(r.IntN(3))})
		b[8] = byte(r.IntN(2))
		b[15] = byte(r.IntN(256))
		return netip.PrefixFrom(netip.AddrFrom16(b), 40+r.IntN(89)).Masked()
	}
}

// asWritten sometimes writes an IPv4 prefix as IPv4-mapped IPv6 and
// sometimes leaves host bits set, as hand-built policies may.
func asWritten(r *rand.Rand, p netip.Prefix) netip.Prefix {
	if p.Addr().Is4() && r.IntN(10) == 0 {
		return netip.PrefixFrom(netip.AddrFrom16(p.Addr().As16()), p.Bits()+96)
	}
	if r.IntN(10) == 0 && p.Bits() < p.Addr().BitLen() {
		return netip.PrefixFrom(referenceLast(p), p.Bits())
	}
	return p
}

// randomSource is, two times in three, an address at the edge of one of
// the given prefixes: its first or last address or just outside.
func randomSource(r *rand.Rand, near []netip.Prefix) netip.Addr {
	if len(near) > 0 && r.IntN(3) > 0 {
		p := near[r.IntN(len(near))].Masked()
		var a netip.Addr
		switch r.IntN(4) {
		case 0:
			a = p.Addr()
		case 1:
			a = p.Addr().Prev()
		case 2:
			a = referenceLast(p)
		default:
			a = referenceLast(p).Next()
		}
		if a.IsValid() {
			if a.Is4() && r.IntN(20) == 0 {
				a = netip.AddrFrom16(a.As16()) // mapped: Decide must unmap it
			}
			return a
		}
	}
	return randomPrefix(r).Addr()
}

// randomPolicy builds a policy by hand: up to four exposes (names may sort
// differently from declaration order), TCP or UDP, overlapping ports,
// optional interfaces and destinations, random defaults and loopback, and
// up to five allow/deny blocks each. It returns every prefix it wrote.
func randomPolicy(r *rand.Rand) (*policies.Policy, []netip.Prefix) {
	p := &policies.Policy{}
	var written []netip.Prefix
	line := 1
	rng := func() hcl.Range {
		line++
		return hcl.Range{Filename: "random.hcl", Start: hcl.Pos{Line: line, Column: 1}, End: hcl.Pos{Line: line, Column: 2}}
	}
	names := []string{"alpha", "bravo", "charlie", "delta", "echo"}
	r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	for _, name := range names[:1+r.IntN(4)] {
		x := &policies.Expose{
			Name:      name,
			Protocol:  []string{"tcp", "udp"}[r.IntN(2)],
			Default:   []string{"drop", "reject", ""}[r.IntN(3)],
			Log:       r.IntN(2) == 0,
			Loopback:  r.IntN(2) == 0,
			DeclRange: rng(),
		}
		for range 1 + r.IntN(3) {
			first := uint16(20 + r.IntN(10))
			x.Ports = append(x.Ports, policies.PortRange{First: first, Last: first + uint16(r.IntN(4))})
		}
		if r.IntN(4) == 0 {
			for range 1 + r.IntN(2) {
				x.Interfaces = append(x.Interfaces, []string{"eth0", "eth1", "lo"}[r.IntN(3)])
			}
		}
		if r.IntN(4) == 0 {
			for range 1 + r.IntN(2) {
				d := randomPrefix(r)
				written = append(written, d)
				x.Destinations = append(x.Destinations, policies.Address{Prefix: asWritten(r, d)})
			}
		}
		for range r.IntN(6) {
			sr := &policies.SourceRule{Kind: []string{policies.KindAllow, policies.KindDeny}[r.IntN(2)], DeclRange: rng()}
			sr.Comment = fmt.Sprintf("block at line %d", line)
			for range 1 + r.IntN(4) {
				pr := randomPrefix(r)
				written = append(written, pr)
				sr.From = append(sr.From, policies.Address{Prefix: asWritten(r, pr)})
			}
			if sr.Kind == policies.KindAllow {
				x.Allow = append(x.Allow, sr)
			} else {
				x.Deny = append(x.Deny, sr)
			}
		}
		p.Exposes = append(p.Exposes, x)
	}
	return p, written
}

func randomPacket(r *rand.Rand, near []netip.Prefix) Packet {
	pkt := Packet{
		Protocol:  []Protocol{TCP, UDP}[r.IntN(2)],
		Source:    randomSource(r, near),
		Port:      uint16(19 + r.IntN(16)),
		Interface: []string{"", "", "eth0", "eth1", "lo"}[r.IntN(5)],
	}
	if r.IntN(2) == 0 {
		pkt.Destination = randomSource(r, near)
	}
	return pkt
}

func TestDecideMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 2026))
	const policiesToTry, packetsPerPolicy = 400, 25
	verdicts := map[string]int{}
	for iter := range policiesToTry {
		p, written := randomPolicy(r)
		rs, err := Compile(p)
		if err != nil {
			t.Fatalf("iteration %d: Compile: %v", iter, err)
		}
		// The same rules without the origin index: Decide must find the
		// same deciding block by scanning.
		scanned := rs.Clone()
		for i := range scanned.Exposures {
			scanned.Exposures[i].index = nil
		}
		for range packetsPerPolicy {
			pkt := randomPacket(r, written)
			want := referenceDecide(p, pkt)
			got := rs.Decide(pkt)
			if viaScan := scanned.Decide(pkt); viaScan.Verdict != got.Verdict ||
				(viaScan.Origin == nil) != (got.Origin == nil) || got.Origin != nil && got.Origin.Range != viaScan.Origin.Range {
				t.Fatalf("iteration %d: Decide(%+v) with the origin index = %+v, by scanning = %+v", iter, pkt, got, viaScan)
			}
			verdicts[string(got.Verdict)+"/"+want.kind]++
			if got.Verdict != want.verdict || got.Exposure != want.exposure {
				t.Fatalf("iteration %d: Decide(%+v) = %s by %q, the reference says %s by %q",
					iter, pkt, got.Verdict, got.Exposure, want.verdict, want.exposure)
			}
			if want.verdict == Pass {
				if got.Origin != nil {
					t.Fatalf("iteration %d: Decide(%+v) passes with origin %+v", iter, pkt, got.Origin)
				}
				continue
			}
			if got.Origin == nil || got.Origin.Kind != want.kind {
				t.Fatalf("iteration %d: Decide(%+v) origin = %+v, the reference says %s", iter, pkt, got.Origin, want.kind)
			}
			wantRange := p.Exposes[slices.IndexFunc(p.Exposes, func(x *policies.Expose) bool { return x.Name == want.exposure })].DeclRange
			if want.block != nil {
				wantRange = want.block.DeclRange
				if got.Origin.Comment != want.block.Comment {
					t.Fatalf("iteration %d: origin comment %q, want %q", iter, got.Origin.Comment, want.block.Comment)
				}
			}
			if got.Origin.Range != wantRange {
				t.Fatalf("iteration %d: Decide(%+v) decided by %s at %s, the reference says %s", iter, pkt, got.Origin.Kind, got.Origin.Range, wantRange)
			}
		}
	}
	// The generator must reach every outcome, or the test proves little.
	for _, outcome := range []string{"accept/allow", "accept/loopback", "drop/deny", "reject/deny", "drop/default", "reject/default", "pass/"} {
		if verdicts[outcome] == 0 {
			t.Errorf("no packet ended as %s; outcomes seen: %v", outcome, verdicts)
		}
	}
}

// TestCompileIsDeterministic: the same policy, and the same policy with
// each block's addresses in another order, give identical Rulesets.
func TestCompileIsDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 27))
	for iter := range 300 {
		p, _ := randomPolicy(r)
		a, err := Compile(p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Compile(p)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("iteration %d: two compiles differ", iter)
		}
		for _, x := range p.Exposes {
			for _, sr := range slices.Concat(x.Allow, x.Deny) {
				r.Shuffle(len(sr.From), func(i, j int) { sr.From[i], sr.From[j] = sr.From[j], sr.From[i] })
			}
			r.Shuffle(len(x.Ports), func(i, j int) { x.Ports[i], x.Ports[j] = x.Ports[j], x.Ports[i] })
			r.Shuffle(len(x.Destinations), func(i, j int) { x.Destinations[i], x.Destinations[j] = x.Destinations[j], x.Destinations[i] })
		}
		r.Shuffle(len(p.Exposes), func(i, j int) { p.Exposes[i], p.Exposes[j] = p.Exposes[j], p.Exposes[i] })
		c, _ := Compile(p)
		if a.Fingerprint() != c.Fingerprint() || !Compare(a, c).Empty() {
			t.Fatalf("iteration %d: reordering the policy changed the rules: %+v", iter, Compare(a, c))
		}
		if !a.isNormalized() {
			t.Fatalf("iteration %d: Compile returned a ruleset Normalize would change", iter)
		}
	}
}

// TestCompareRoundTrip: applying Compare(current, desired) to current,
// element by element, gives desired, for random pairs of Rulesets.
func TestCompareRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for iter := range 300 {
		p1, _ := randomPolicy(r)
		p2, _ := randomPolicy(r)
		current, _ := Compile(p1)
		desired, _ := Compile(p2)
		d := Compare(current, desired)
		got := applyDiff(t, current, d)
		if got.Fingerprint() != desired.Fingerprint() {
			t.Fatalf("iteration %d: current + diff != desired\ncurrent: %+v\ndesired: %+v\ndiff: %+v\ngot: %+v", iter, current, desired, d, got)
		}
		if d.Empty() != (current.Fingerprint() == desired.Fingerprint()) {
			t.Fatalf("iteration %d: empty diff %t, equal fingerprints %t", iter, d.Empty(), current.Fingerprint() == desired.Fingerprint())
		}
		if !Compare(desired, desired).Empty() {
			t.Fatalf("iteration %d: a ruleset differs from itself", iter)
		}
	}
}

// applyDiff plays a diff the way a backend would: whole exposures for
// Create and Delete, only the listed attributes and elements for Update.
func applyDiff(t *testing.T, current *Ruleset, d Diff) *Ruleset {
	t.Helper()
	out := current.Clone()
	for _, ed := range d.Exposures {
		switch ed.Action {
		case Create:
			out.Exposures = append(out.Exposures, *ed.After)
		case Delete:
			out.Exposures = slices.DeleteFunc(out.Exposures, func(e Exposure) bool { return e.Name == ed.Name })
		case Update:
			e := out.Exposure(ed.Name)
			for _, a := range ed.Attributes {
				switch a.Name {
				case "protocol":
					e.Protocol = Protocol(a.New)
				case "interfaces":
					e.Interfaces = nil
					if a.New != "" {
						e.Interfaces = strings.Split(a.New, ",")
					}
				case "default":
					e.Default = Verdict(a.New)
				case "reject_with":
					e.RejectWith = RejectWith(a.New)
				case "log":
					e.Log = a.New == "true"
				case "loopback":
					e.Loopback = a.New == "true"
				default:
					t.Fatalf("unknown attribute %q", a.Name)
				}
			}
			e.Ports = slices.DeleteFunc(e.Ports, func(p PortRange) bool { return slices.Contains(ed.Ports.Removed, p) })
			e.Ports = append(e.Ports, ed.Ports.Added...)
			e.Destinations = applyPrefixDiff(t, e.Destinations, ed.Destinations)
			e.Deny = applyPrefixDiff(t, e.Deny, ed.Deny)
			e.Allow = applyPrefixDiff(t, e.Allow, ed.Allow)
		}
	}
	out.Normalize()
	return out
}

func applyPrefixDiff(t *testing.T, set Prefixes, d PrefixDiff) Prefixes {
	t.Helper()
	all := set.All()
	for _, p := range d.Removed {
		i := slices.Index(all, p)
		if i < 0 {
			t.Fatalf("diff removes %v, which the set %v does not hold", p, set)
		}
		all = slices.Delete(all, i, i+1)
	}
	for _, p := range d.Added {
		if slices.Contains(all, p) {
			t.Fatalf("diff adds %v, which the set %v already holds", p, set)
		}
		all = append(all, p)
	}
	// Rebuild without merging: the element lists must match as they are.
	var out Prefixes
	for _, p := range all {
		if p.Addr().Is4() {
			out.V4 = append(out.V4, p)
		} else {
			out.V6 = append(out.V6, p)
		}
	}
	cmp := func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }
	slices.SortFunc(out.V4, cmp)
	slices.SortFunc(out.V6, cmp)
	return out
}

// TestBoundarySourcesProperty: every returned address is the first or last
// address of an allow/deny prefix or next to one, and every such address
// is returned.
func TestBoundarySourcesProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 18))
	for iter := range 200 {
		p, _ := randomPolicy(r)
		rs, _ := Compile(p)
		want := map[netip.Addr]bool{}
		for _, e := range rs.Exposures {
			for _, pr := range slices.Concat(e.Allow.All(), e.Deny.All()) {
				for _, a := range []netip.Addr{pr.Addr(), pr.Addr().Prev(), referenceLast(pr), referenceLast(pr).Next()} {
					if a.IsValid() {
						want[a] = true
					}
				}
			}
		}
		got := BoundarySources(rs)
		if !slices.IsSortedFunc(got, netip.Addr.Compare) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("iteration %d: not sorted and unique: %v", iter, got)
		}
		if len(got) != len(want) {
			t.Fatalf("iteration %d: %d boundary addresses, want %d", iter, len(got), len(want))
		}
		for _, a := range got {
			if !want[a] {
				t.Fatalf("iteration %d: %v is no boundary", iter, a)
			}
		}
	}
}
