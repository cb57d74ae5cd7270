package rules

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/portwarden/portwarden/policies"
)

func addrs(ss ...string) []policies.Address {
	var out []policies.Address
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a := netip.MustParseAddr(s)
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, policies.Address{Prefix: p})
	}
	return out
}

func block(kind string, line int, from ...string) *policies.SourceRule {
	return &policies.SourceRule{Kind: kind, From: addrs(from...), DeclRange: hcl.Range{Filename: "p.hcl", Start: hcl.Pos{Line: line}}}
}

func port27Policy() *policies.Policy {
	return &policies.Policy{Exposes: []*policies.Expose{{
		Name: "nscp", Protocol: "tcp", Ports: []policies.PortRange{{First: 27, Last: 27}},
		Default: "drop", Loopback: true,
		Allow: []*policies.SourceRule{block("allow", 10, "198.18.1.0/24", "2001:2:0:1::/64"), block("allow", 14, "198.18.9.9")},
		Deny:  []*policies.SourceRule{block("deny", 20, "198.18.1.66")},
	}, {
		Name: "dns", Protocol: "udp", Ports: []policies.PortRange{{First: 53, Last: 53}},
		Default: "reject", Interfaces: []string{"eth1", "eth0", "eth1"},
		Destinations: addrs("198.18.0.1"),
		Allow:        []*policies.SourceRule{block("allow", 30, "198.19.0.0/16")},
	}}}
}

func TestCompileNormalises(t *testing.T) {
	rs, err := Compile(port27Policy())
	if err != nil {
		t.Fatal(err)
	}
	if rs.Exposures[0].Name != "dns" || rs.Exposures[1].Name != "nscp" {
		t.Fatalf("exposures not sorted: %v", rs.Exposures)
	}
	if got := rs.Exposures[0].Interfaces; len(got) != 2 || got[0] != "eth0" {
		t.Errorf("interfaces = %v", got)
	}
	nscp := rs.Exposure("nscp")
	if got := nscp.Allow.All(); len(got) != 3 || got[0].String() != "198.18.1.0/24" || got[1].String() != "198.18.9.9/32" {
		t.Errorf("allow = %v", got)
	}
	again, _ := Compile(port27Policy())
	if rs.Fingerprint() != again.Fingerprint() {
		t.Error("compile is not deterministic")
	}
}

func TestDecide(t *testing.T) {
	rs, err := Compile(port27Policy())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		pkt      Packet
		verdict  Verdict
		kind     string
		line     int
		exposure string
	}{
		{"allowed v4", Packet{Protocol: TCP, Source: netip.MustParseAddr("198.18.1.7"), Port: 27}, Accept, OriginAllow, 10, "nscp"},
		{"allowed v6", Packet{Protocol: TCP, Source: netip.MustParseAddr("2001:2:0:1::99"), Port: 27}, Accept, OriginAllow, 10, "nscp"},
		{"second block", Packet{Protocol: TCP, Source: netip.MustParseAddr("198.18.9.9"), Port: 27}, Accept, OriginAllow, 14, "nscp"},
		{"deny beats allow", Packet{Protocol: TCP, Source: netip.MustParseAddr("198.18.1.66"), Port: 27}, Drop, OriginDeny, 20, "nscp"},
		{"default drop", Packet{Protocol: TCP, Source: netip.MustParseAddr("198.18.2.1"), Port: 27}, Drop, OriginDefault, 0, "nscp"},
		{"loopback", Packet{Protocol: TCP, Source: netip.MustParseAddr("198.18.2.1"), Port: 27, Interface: "lo"}, Accept, OriginLoopback, 0, "nscp"},
		{"other port passes", Packet{Protocol: TCP, Source: netip.MustParseAddr("198.18.2.1"), Port: 22}, Pass, "", 0, ""},
		{"udp reject", Packet{Protocol: UDP, Source: netip.MustParseAddr("198.18.2.1"), Port: 53, Interface: "eth0", Destination: netip.MustParseAddr("198.18.0.1")}, Reject, OriginDefault, 0, "dns"},
		{"other interface passes", Packet{Protocol: UDP, Source: netip.MustParseAddr("198.18.2.1"), Port: 53, Interface: "eth9"}, Pass, "", 0, ""},
		{"other destination passes", Packet{Protocol: UDP, Source: netip.MustParseAddr("198.18.2.1"), Port: 53, Destination: netip.MustParseAddr("198.18.0.2")}, Pass, "", 0, ""},
		{"v6 to v4-only destinations passes", Packet{Protocol: UDP, Source: netip.MustParseAddr("2001:2::1"), Port: 53}, Pass, "", 0, ""},
		{"udp allowed", Packet{Protocol: UDP, Source: netip.MustParseAddr("198.19.3.3"), Port: 53}, Accept, OriginAllow, 30, "dns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := rs.Decide(tc.pkt)
			if d.Verdict != tc.verdict || d.Exposure != tc.exposure {
				t.Fatalf("Decide = %+v, want %s by %s", d, tc.verdict, tc.exposure)
			}
			if tc.kind == "" {
				if d.Origin != nil {
					t.Fatalf("origin %+v on pass", d.Origin)
				}
				return
			}
			if d.Origin == nil || d.Origin.Kind != tc.kind || (tc.line != 0 && d.Origin.Range.Start.Line != tc.line) {
				t.Fatalf("origin = %+v, want %s at line %d", d.Origin, tc.kind, tc.line)
			}
		})
	}
}

func TestCompareElementLevel(t *testing.T) {
	cur, _ := Compile(port27Policy())
	p := port27Policy()
	p.Exposes[0].Allow[1] = block("allow", 14, "198.18.9.10")
	p.Exposes[1].Default = "drop"
	want, _ := Compile(p)
	d := Compare(cur, want)
	if len(d.Exposures) != 2 {
		t.Fatalf("diff = %+v", d)
	}
	dns, nscp := d.Exposures[0], d.Exposures[1]
	// reject -> drop also drops the reject's answer.
	if dns.Action != Update || len(dns.Attributes) != 2 || dns.Attributes[0].Name != "default" || dns.Attributes[1].Name != "reject_with" {
		t.Errorf("dns diff = %+v", dns)
	}
	if nscp.Action != Update || len(nscp.Allow.Added) != 1 || len(nscp.Allow.Removed) != 1 ||
		nscp.Allow.Added[0].String() != "198.18.9.10/32" {
		t.Errorf("nscp diff = %+v", nscp.Allow)
	}
	if !Compare(want, want).Empty() {
		t.Error("diff of a ruleset with itself is not empty")
	}
	created := Compare(&Ruleset{}, want)
	if c, u, r := created.Summary(); c != 2 || u != 0 || r != 0 {
		t.Errorf("summary = %d %d %d", c, u, r)
	}
	deleted := Compare(want, nil)
	if _, _, r := deleted.Summary(); r != 2 {
		t.Errorf("deleted summary: %+v", deleted)
	}
}

func TestBoundarySources(t *testing.T) {
	rs := &Ruleset{Exposures: []Exposure{{Name: "x", Allow: NewPrefixes(netip.MustParsePrefix("198.18.1.0/24"))}}}
	got := BoundarySources(rs)
	want := []string{"198.18.0.255", "198.18.1.0", "198.18.1.255", "198.18.2.0"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("got %v, want %v", got, want)
		}
	}
}

func TestNewPrefixesCanonicalFastPath(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		var ps []netip.Prefix
		for k := 0; k < r.IntN(20); k++ {
			ps = append(ps, randomPrefix(r))
		}
		once := NewPrefixes(ps...)
		twice := NewPrefixes(once.All()...)
		if !once.equal(twice) {
			t.Fatalf("not idempotent: %v -> %v", once, twice)
		}
		if !once.isCanonical() {
			t.Fatalf("NewPrefixes gave a non-canonical set: %v", once)
		}
		// Every input address is contained, and nothing outside the input.
		for _, p := range ps {
			if !once.Contains(p.Addr()) || !once.Contains(lastAddr(p)) {
				t.Fatalf("%v lost %v", once, p)
			}
		}
		all := once.All()
		if len(all) > 0 {
			all[0] = netip.MustParsePrefix("0.0.0.0/0")
			if again := NewPrefixes(once.All()...); !again.equal(once) {
				t.Fatal("NewPrefixes result aliases its input")
			}
		}
		rs := &Ruleset{Exposures: []Exposure{{Name: "x", Allow: once}}}
		if !rs.isNormalized() {
			t.Fatalf("normalised ruleset not recognised: %v", once)
		}
	}
	unsorted := []netip.Prefix{netip.MustParsePrefix("198.18.2.0/24"), netip.MustParsePrefix("198.18.1.0/24")}
	if (Prefixes{V4: unsorted}).isCanonical() {
		t.Error("unsorted set taken as canonical")
	}
	adjacent := []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("198.18.1.0/24")}
	if (Prefixes{V4: adjacent}).isCanonical() {
		t.Error("two prefixes that make one /23 taken as canonical")
	}
}
