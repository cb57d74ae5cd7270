package rules

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestDecideRangeProperty: the ranges cover the prefix in order without
// gaps, neighbours differ, and every address in a range (its ends and a
// random one inside) gets the range's decision from Decide.
func TestDecideRangeProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 7))
	for iter := range 200 {
		p, _ := randomPolicy(r)
		rs, err := Compile(p)
		if err != nil || len(rs.Exposures) == 0 {
			continue
		}
		e := rs.Exposures[0]
		pkt := e.SamplePacket(netip.Addr{})
		from := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(r.IntN(4)), 0}), 16+r.IntN(17)).Masked()
		if r.IntN(2) == 0 {
			from = netip.PrefixFrom(netip.MustParseAddr("2001:2::"), 32+r.IntN(97)).Masked()
		}
		ranges := rs.DecideRange(pkt, from)
		if len(ranges) == 0 || ranges[0].From != from.Addr() {
			t.Fatalf("iteration %d: %v does not start at %s", iter, ranges, from)
		}
		for i, rd := range ranges {
			if i > 0 && (ranges[i-1].To.Next() != rd.From || sameDecision(ranges[i-1].Decision, rd.Decision)) {
				t.Fatalf("iteration %d: ranges %d and %d do not join or do not differ: %+v", iter, i-1, i, ranges)
			}
			for _, a := range []netip.Addr{rd.From, rd.To} {
				q := pkt
				q.Source = a
				if d := rs.Decide(q); !sameDecision(d, rd.Decision) {
					t.Fatalf("iteration %d: %s gets %+v, its range %s-%s says %+v", iter, a, d, rd.From, rd.To, rd.Decision)
				}
			}
		}
		if last := ranges[len(ranges)-1].To; !from.Contains(last) || last.Next().IsValid() && from.Contains(last.Next()) {
			t.Fatalf("iteration %d: ranges end at %s, the prefix %s elsewhere", iter, last, from)
		}
	}
}

func TestDecideRangeLoopback(t *testing.T) {
	rs := &Ruleset{Exposures: []Exposure{{Name: "x", Protocol: TCP, Ports: []PortRange{{27, 27}}, Default: Drop, Loopback: true,
		Allow: NewPrefixes(netip.MustParsePrefix("198.18.0.0/16"))}}}
	rs.Normalize()
	pkt := Packet{Protocol: TCP, Port: 27}
	for _, src := range []string{"127.0.0.1", "127.9.9.9", "::1"} {
		pkt.Source = netip.MustParseAddr(src)
		if d := rs.Decide(pkt); d.Verdict != Accept {
			t.Errorf("%s: %s, want accept (loopback)", src, d.Verdict)
		}
	}
	pkt.Source, pkt.Interface = netip.MustParseAddr("127.0.0.1"), "eth0"
	if d := rs.Decide(pkt); d.Verdict != Drop {
		t.Errorf("127.0.0.1 said to come in on eth0: %s, want the default", d.Verdict)
	}
	got := rs.DecideRange(Packet{Protocol: TCP, Port: 27}, netip.MustParsePrefix("0.0.0.0/0"))
	if len(got) != 5 || got[1].Prefixes[0].String() != "127.0.0.0/8" || got[1].Decision.Verdict != Accept {
		t.Errorf("0.0.0.0/0: %+v", got)
	}
}
