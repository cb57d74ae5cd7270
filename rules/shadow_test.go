package rules

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/portwarden/portwarden/policies"
	"go4.org/netipx"
)

func compileText(t *testing.T, policy string, files map[string]string, now time.Time) *Ruleset {
	t.Helper()
	fsys := fstest.MapFS{"p.hcl": {Data: []byte(policy)}}
	for name, text := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(text)}
	}
	pol, diags := policies.LoadFS(fsys, "p.hcl", policies.Options{Now: now})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	rs, err := Compile(pol)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func exposeText(name, protocol, ports, extra string) string {
	return `expose "` + name + `" {
  protocol = "` + protocol + `"
  ports    = ` + ports + `
` + extra + `
  allow {
    from = ["198.18.1.0/24"]
  }
}
`
}

func TestShadows(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy string
		want   []string // "b by a: tcp/27"
	}{
		{"same port, nothing tells them apart",
			exposeText("a", "tcp", "[27]", "") + exposeText("b", "tcp", "[27]", ""),
			[]string{"b by a: tcp/27"}},
		{"only the ports both manage",
			exposeText("a", "tcp", `["8000-8010", 27]`, "") + exposeText("b", "tcp", `[22, 27, "8005-8020"]`, ""),
			[]string{"b by a: tcp/27, tcp/8005-8010"}},
		{"the first exposure that takes it in is named once per port",
			exposeText("a", "tcp", "[27]", "") + exposeText("b", "tcp", "[27, 28]", "") + exposeText("c", "tcp", "[27, 28]", ""),
			[]string{"b by a: tcp/27", "c by a: tcp/27", "c by b: tcp/28"}},
		{"other protocol", exposeText("a", "udp", "[27]", "") + exposeText("b", "tcp", "[27]", ""), nil},
		{"the first takes fewer interfaces",
			exposeText("a", "tcp", "[27]", `interfaces = ["eth0"]`) + exposeText("b", "tcp", "[27]", ""), nil},
		{"other interfaces",
			exposeText("a", "tcp", "[27]", `interfaces = ["eth0"]`) + exposeText("b", "tcp", "[27]", `interfaces = ["eth1"]`), nil},
		{"the first takes every interface of the second",
			exposeText("a", "tcp", "[27]", `interfaces = ["eth0", "eth1"]`) + exposeText("b", "tcp", "[27]", `interfaces = ["eth1"]`),
			[]string{"b by a: tcp/27"}},
		{"the second has interfaces, the first any",
			exposeText("a", "tcp", "[27]", "") + exposeText("b", "tcp", "[27]", `interfaces = ["eth1"]`),
			[]string{"b by a: tcp/27"}},
		{"the first takes fewer destinations",
			exposeText("a", "tcp", "[27]", `destinations = ["198.18.0.1"]`) + exposeText("b", "tcp", "[27]", `destinations = ["198.18.0.0/24"]`), nil},
		{"the first takes every destination of the second",
			exposeText("a", "tcp", "[27]", `destinations = ["198.18.0.0/24"]`) + exposeText("b", "tcp", "[27]", `destinations = ["198.18.0.1", "198.18.0.7"]`),
			[]string{"b by a: tcp/27"}},
		{"the second has destinations of another family",
			exposeText("a", "tcp", "[27]", `destinations = ["198.18.0.0/24"]`) + exposeText("b", "tcp", "[27]", `destinations = ["198.18.0.1", "2001:2::1"]`), nil},
		{"the first has destinations, the second any",
			exposeText("a", "tcp", "[27]", `destinations = ["198.18.0.0/24"]`) + exposeText("b", "tcp", "[27]", ""), nil},
		{"two take in one interface each",
			exposeText("a", "tcp", "[27]", `interfaces = ["eth0"]`) + exposeText("b", "tcp", "[27]", `interfaces = ["eth1"]`) +
				exposeText("c", "tcp", "[27]", `interfaces = ["eth0", "eth1"]`),
			[]string{"c by a+b: tcp/27"}},
		{"named interfaces never take in any interface",
			exposeText("a", "tcp", "[27]", `interfaces = ["eth0"]`) + exposeText("b", "tcp", "[27]", `interfaces = ["eth1"]`) +
				exposeText("c", "tcp", "[27]", ""), nil},
		{"two take in half the destinations each",
			exposeText("a", "tcp", "[27]", `destinations = ["198.18.0.0/25"]`) + exposeText("b", "tcp", "[27]", `destinations = ["198.18.0.128/25"]`) +
				exposeText("c", "tcp", "[27]", `destinations = ["198.18.0.0/24"]`),
			[]string{"c by a+b: tcp/27"}},
		{"a gap between the destinations",
			exposeText("a", "tcp", "[27]", `destinations = ["198.18.0.0/25"]`) + exposeText("b", "tcp", "[27]", `destinations = ["198.18.0.192/26"]`) +
				exposeText("c", "tcp", "[27]", `destinations = ["198.18.0.0/24"]`), nil},
		{"every address of both families between them",
			exposeText("a", "tcp", "[27]", `destinations = ["0.0.0.0/0"]`) + exposeText("b", "tcp", "[27]", `destinations = ["::/0"]`) +
				exposeText("c", "tcp", "[27]", ""),
			[]string{"c by a+b: tcp/27"}},
		{"only on the ports both manage, and only the exposures needed",
			exposeText("a", "tcp", `["20-30"]`, `interfaces = ["eth0"]`) + exposeText("b", "tcp", `["25-40"]`, `interfaces = ["eth1"]`) +
				exposeText("c", "tcp", `["25-26", 28]`, `interfaces = ["eth0"]`) +
				exposeText("d", "tcp", `["10-50"]`, `interfaces = ["eth0", "eth1"]`),
			[]string{"c by a: tcp/25-26, tcp/28", "d by a+b: tcp/25-30"}},
		{"every exposure that decides a packet is named, one on an interface too",
			exposeText("a", "tcp", `["1-4"]`, `destinations = ["::/0"]`) + exposeText("b", "tcp", `["4-6"]`, `interfaces = ["eth1"]`) +
				exposeText("c", "tcp", `["4-6"]`, `destinations = ["0.0.0.0/0", "2001:db8::/32"]`) + exposeText("d", "tcp", `["4-6"]`, ""),
			[]string{"d by a+b+c: tcp/4"}},
		{"an earlier exposure that decides part is named with the one that takes it in",
			exposeText("a", "tcp", "[27]", `interfaces = ["eth0"]`) + exposeText("b", "tcp", "[27]", "") +
				exposeText("c", "tcp", "[27]", `interfaces = ["eth0", "eth1"]`),
			[]string{"c by a+b: tcp/27"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := compileText(t, tc.policy, nil, time.Time{})
			var got []string
			for _, s := range rs.Shadows() {
				got = append(got, s.Exposure+" by "+strings.Join(s.By, "+")+": "+PortsString(s.Protocol, s.Ports))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("shadows = %q, want %q", got, tc.want)
			}
			// What Shadows says agrees with Decide: on a shadowed port,
			// every interface and destination of the shadowed exposure is
			// decided by one of the shadowing ones.
			for _, s := range rs.Shadows() {
				e := rs.Exposure(s.Exposure)
				ifaces := e.Interfaces
				if len(ifaces) == 0 {
					// Any interface: one nobody names, and each named.
					ifaces = []string{""}
					for _, x := range rs.Exposures {
						ifaces = append(ifaces, x.Interfaces...)
					}
				}
				dests := []netip.Addr{{}}
				for _, p := range e.Destinations.All() {
					dests = append(dests[:0:0], append(dests, p.Addr(), netipx.PrefixLastIP(p))...)
				}
				if !e.Destinations.Empty() {
					dests = dests[1:]
				}
				for _, r := range s.Ports {
					for _, port := range []uint16{r.First, r.Last} {
						for _, iface := range ifaces {
							for _, dst := range dests {
								pkt := Packet{Protocol: s.Protocol, Source: netip.MustParseAddr("198.18.1.7"), Port: port, Interface: iface, Destination: dst}
								if d := rs.Decide(pkt); !slices.Contains(s.By, d.Exposure) {
									t.Errorf("%+v is decided by %q, not one of %q", pkt, d.Exposure, s.By)
								}
							}
						}
					}
				}
			}
		})
	}
}

func TestShadowDiagnostics(t *testing.T) {
	rs := compileText(t, exposeText("a", "tcp", "[27]", "")+exposeText("b", "tcp", "[27]", ""), nil, time.Time{})
	diags := rs.ShadowDiagnostics()
	if len(diags) != 1 {
		t.Fatalf("diagnostics = %v", diags)
	}
	d := diags[0]
	want := `expose "b" never decides a packet on tcp/27: expose "a" (p.hcl:1) decides them first (exposures are evaluated in name order); give them different ports, interfaces or destinations`
	if !strings.HasPrefix(d.Detail, want) || d.Subject == nil || d.Subject.Start.Line != 9 || d.Severity != hcl.DiagWarning {
		t.Errorf("diagnostic = %s at %v (severity %d), want %s at p.hcl:9", d.Detail, d.Subject, d.Severity, want)
	}
}

func TestPortSegments(t *testing.T) {
	rs := compileText(t, exposeText("a", "tcp", `["8000-8010", 22]`, "")+exposeText("b", "tcp", `[8005, "8010-8012"]`, "")+
		exposeText("c", "udp", "[53]", ""), nil, time.Time{})
	var got []string
	for _, r := range rs.PortSegments(TCP) {
		got = append(got, PortsString(TCP, []PortRange{r}))
	}
	want := []string{"tcp/22", "tcp/8000-8004", "tcp/8005", "tcp/8006-8009", "tcp/8010", "tcp/8011-8012"}
	if !slices.Equal(got, want) {
		t.Errorf("segments = %q, want %q", got, want)
	}
	if got := rs.PortSegments(UDP); len(got) != 1 || got[0] != (PortRange{53, 53}) {
		t.Errorf("udp segments = %v", got)
	}
	if !rs.ManagesPort(TCP, 8012) || rs.ManagesPort(TCP, 8013) || rs.ManagesPort(UDP, 22) {
		t.Error("ManagesPort is wrong")
	}
}

func TestSharedShadowDiagnostics(t *testing.T) {
	rs := compileText(t, exposeText("a", "tcp", "[27]", `interfaces = ["eth0"]`)+exposeText("b", "tcp", "[27]", `interfaces = ["eth1"]`)+
		exposeText("c", "tcp", "[27]", `interfaces = ["eth0", "eth1"]`), nil, time.Time{})
	diags := rs.ShadowDiagnostics()
	if len(diags) != 1 {
		t.Fatalf("diagnostics = %v", diags)
	}
	want := `expose "c" never decides a packet on tcp/27: expose "a" (p.hcl:1) and expose "b" (p.hcl:9) decide them first between them (exposures are evaluated in name order)`
	if d := diags[0]; !strings.HasPrefix(d.Detail, want) || d.Subject == nil || d.Subject.Start.Line != 17 {
		t.Errorf("diagnostic = %s at %v, want %s at p.hcl:17", d.Detail, d.Subject, want)
	}
}
