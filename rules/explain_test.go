package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// explainPolicy manages tcp 22 and 8000-8010, and udp 53. Ports 8005 and
// 8010 are managed by two exposes each, which cuts port segments there:
// "app" decides 8005 before "b" does, and "admin" decides 8010 for a
// packet that may arrive on eth1.
const explainPolicy = `
expose "admin" {
  protocol   = "tcp"
  ports      = [8010]
  interfaces = ["eth1"]
  allow {
    from = ["198.18.3.0/24"]
  }
}

expose "app" {
  protocol = "tcp"
  ports    = ["8000-8010", 22]
  allow {
    from = ["198.18.1.0/24"]
  }
  deny {
    from = ["198.18.1.9"]
  }
}

expose "b" {
  protocol = "tcp"
  ports    = [8005]
  allow {
    from = ["198.18.2.0/24"]
  }
}

expose "dns" {
  protocol = "udp"
  ports    = [53]
  allow {
    from = ["198.18.9.0/24"]
  }
}
`

var explainNow = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)

// explained writes each answer as "tcp 8000-8010 accept a", with the
// ranges of a prefix answer after it.
func explained(xs []Explanation) []string {
	var out []string
	for _, x := range xs {
		s := fmt.Sprintf("%s %d-%d", x.Packet.Protocol, x.Ports.First, x.Ports.Last)
		if x.Packet.Port != x.Ports.First {
			s += fmt.Sprintf(" (packet to %d)", x.Packet.Port)
		}
		if x.Decision != nil {
			s += " " + string(x.Decision.Verdict) + " " + x.Decision.Exposure
		}
		for _, r := range x.Ranges {
			s += fmt.Sprintf(" [%s-%s %s]", r.From, r.To, r.Decision.Verdict)
		}
		out = append(out, s)
	}
	return out
}

func TestExplain(t *testing.T) {
	rs := compileText(t, explainPolicy, nil, explainNow)
	both := []Protocol{TCP, UDP}
	for _, tc := range []struct {
		name      string
		src       string
		iface     string
		protocols []Protocol
		port      uint16
		want      []string
	}{
		{"no port: every managed port, neighbouring segments with one answer merged",
			"198.18.1.7", "eth0", both, 0,
			[]string{"tcp 22-22 accept app", "tcp 8000-8010 accept app", "udp 53-53 drop dns"}},
		{"no port: a segment that answers differently stays apart",
			"198.18.1.7", "", both, 0,
			[]string{"tcp 22-22 accept app", "tcp 8000-8009 accept app", "tcp 8010-8010 drop admin", "udp 53-53 drop dns"}},
		{"no port, one protocol", "198.18.9.7", "", []Protocol{UDP}, 0,
			[]string{"udp 53-53 accept dns"}},
		{"a port: only the protocols that manage it", "198.18.1.7", "", both, 8005,
			[]string{"tcp 8005-8005 accept app"}},
		{"a port nobody manages: every protocol asked about passes", "198.18.1.7", "", both, 9999,
			[]string{"tcp 9999-9999 pass ", "udp 9999-9999 pass "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := netip.MustParseAddr(tc.src)
			// base's protocol and port are the questions', whatever they were.
			base := Packet{Source: src, Interface: tc.iface, Protocol: UDP, Port: 1}
			xs := rs.Explain(base, tc.protocols, tc.port)
			if got := explained(xs); !slices.Equal(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			for _, x := range xs {
				if x.Packet.Source != src || x.Packet.Interface != tc.iface || x.Ranges != nil {
					t.Errorf("%+v: want base's source and interface, and no ranges", x)
				}
			}
		})
	}
}

// No port of the protocols asked about is managed: no answer, as an empty
// list rather than nil, so that JSON says [] and not null.
func TestExplainNothingManaged(t *testing.T) {
	rs := compileText(t, exposeText("x", "tcp", "[27]", ""), nil, explainNow)
	src := netip.MustParseAddr("198.18.1.7")
	if xs := rs.Explain(Packet{Source: src}, []Protocol{UDP}, 0); xs == nil || len(xs) != 0 {
		t.Errorf("Explain: %#v, want an empty, non-nil list", xs)
	}
	if xs := rs.ExplainRange(Packet{}, netip.MustParsePrefix("198.18.1.0/24"), []Protocol{UDP}, 0); xs == nil || len(xs) != 0 {
		t.Errorf("ExplainRange: %#v, want an empty, non-nil list", xs)
	}
}

// A source whose access ended gets the default, and the answer carries
// the allow block whose access ended, for one source and in a prefix.
func TestExplainExpired(t *testing.T) {
	rs := compileText(t, `
expose "a" {
  protocol = "tcp"
  ports    = [22, 27]
  allow {
    from    = ["198.18.1.9"]
    expires = "2026-12-01T00:00:00Z"
  }
}
`, nil, explainNow)
	xs := rs.Explain(Packet{Source: netip.MustParseAddr("198.18.1.9")}, []Protocol{TCP}, 0)
	if got, want := explained(xs), []string{"tcp 22-22 drop a", "tcp 27-27 drop a"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, x := range xs {
		e := x.Decision.Expired
		if e == nil || e.Origin.Kind != OriginAllow || !e.Until.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) || e.Deadline != DeadlineBlock {
			t.Errorf("%s: expired %+v, want the allow block's, ended 2026-12-01", explained([]Explanation{x})[0], e)
		}
	}
	ranges := rs.ExplainRange(Packet{}, netip.MustParsePrefix("198.18.1.8/30"), []Protocol{TCP}, 27)
	if got, want := explained(ranges), []string{"tcp 27-27 [198.18.1.8-198.18.1.8 drop] [198.18.1.9-198.18.1.9 drop] [198.18.1.10-198.18.1.11 drop]"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if ranges[0].Ranges[1].Decision.Expired == nil || ranges[0].Ranges[0].Decision.Expired != nil {
		t.Errorf("ranges %+v: want only 198.18.1.9 expired", ranges[0].Ranges)
	}
}

func TestExplainRange(t *testing.T) {
	rs := compileText(t, explainPolicy, nil, explainNow)
	from := netip.MustParsePrefix("198.18.1.0/24")
	// The source asked about is ignored: a prefix has many.
	base := Packet{Source: netip.MustParseAddr("198.18.2.7"), Interface: "eth0"}
	xs := rs.ExplainRange(base, from, []Protocol{TCP, UDP}, 0)
	want := []string{
		"tcp 22-22 [198.18.1.0-198.18.1.8 accept] [198.18.1.9-198.18.1.9 drop] [198.18.1.10-198.18.1.255 accept]",
		// eth0: "admin" does not decide 8010, so the segments merge.
		"tcp 8000-8010 [198.18.1.0-198.18.1.8 accept] [198.18.1.9-198.18.1.9 drop] [198.18.1.10-198.18.1.255 accept]",
		"udp 53-53 [198.18.1.0-198.18.1.255 drop]",
	}
	if got := explained(xs); !slices.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	for _, x := range xs {
		if x.Packet.Source.IsValid() || x.Packet.Interface != "eth0" || x.Decision != nil {
			t.Errorf("%+v: want no source, base's interface, no single decision", x)
		}
	}

	// A given port, and one nobody manages.
	if got, want := explained(rs.ExplainRange(base, from, []Protocol{TCP, UDP}, 8005)), []string{
		"tcp 8005-8005 [198.18.1.0-198.18.1.8 accept] [198.18.1.9-198.18.1.9 drop] [198.18.1.10-198.18.1.255 accept]",
	}; !slices.Equal(got, want) {
		t.Errorf("port 8005: got %q, want %q", got, want)
	}
	if got, want := explained(rs.ExplainRange(base, from, []Protocol{UDP}, 9999)), []string{
		"udp 9999-9999 [198.18.1.0-198.18.1.255 pass]",
	}; !slices.Equal(got, want) {
		t.Errorf("port 9999: got %q, want %q", got, want)
	}
}

func TestParseSource(t *testing.T) {
	for _, tc := range []struct {
		in           string
		addr, prefix string // prefix "": none
		ok           bool
	}{
		{"198.18.10.7", "198.18.10.7", "", true},
		{"2001:db8::7", "2001:db8::7", "", true},
		{"198.18.10.7/24", "198.18.10.0", "198.18.10.0/24", true},
		{"198.18.10.7/32", "198.18.10.7", "", true},
		{"2001:db8::7/128", "2001:db8::7", "", true},
		// IPv4-mapped prefixes are the IPv4 ones they map.
		{"::ffff:198.18.10.7/120", "198.18.10.0", "198.18.10.0/24", true},
		{"::ffff:198.18.10.7/128", "198.18.10.7", "", true},
		{"198.18.10.0/33", "", "", false},
		{"lobby", "", "", false},
		{"", "", "", false},
	} {
		addr, prefix, ok := ParseSource(tc.in)
		if ok != tc.ok {
			t.Errorf("%q: ok %v, want %v", tc.in, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if addr.String() != tc.addr {
			t.Errorf("%q: address %s, want %s", tc.in, addr, tc.addr)
		}
		switch {
		case tc.prefix == "" && prefix.IsValid():
			t.Errorf("%q: prefix %s, want none", tc.in, prefix)
		case tc.prefix != "" && prefix.String() != tc.prefix:
			t.Errorf("%q: prefix %s, want %s", tc.in, prefix, tc.prefix)
		}
	}
}
