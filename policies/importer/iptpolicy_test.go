package importer

import (
	"fmt"
	"strings"
	"testing"
)

// iptInput4 is the filter table every case below shares: tcp/27 for
// 198.18.1.0/24 (2001:2:1::/64 in the IPv6 copy), refused to everyone
// else; FORWARD's and OUTPUT's policies and OUTPUT's rules vary.
const iptInput4 = `*filter
:INPUT ACCEPT [0:0]
:FORWARD %s [0:0]
:OUTPUT %s [0:0]
%s-A INPUT -s 198.18.1.0/24 -p tcp -m tcp --dport 27 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 27 -j DROP
COMMIT
`

// saveTable writes one table's built-in chains with their policies ("A" for
// ACCEPT, "D" for DROP) and rules.
func saveTable(name, chains, policies string, rules ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%s\n", name)
	for i, c := range strings.Fields(chains) {
		p := "ACCEPT"
		if policies[i] == 'D' {
			p = "DROP"
		}
		fmt.Fprintf(&b, ":%s %s [0:0]\n", c, p)
	}
	for _, r := range rules {
		b.WriteString(r + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

const (
	rawChains      = "PREROUTING OUTPUT"
	mangleChains   = "PREROUTING INPUT FORWARD OUTPUT POSTROUTING"
	securityChains = "INPUT FORWARD OUTPUT"
	natChains      = "PREROUTING INPUT OUTPUT POSTROUTING"
)

// TestIPTablesDropPolicies: a built-in chain the importer does not
// translate whose DROP policy drops packets of inbound connections to
// this host (the packets to it in PREROUTING and INPUT, the replies it
// sends in OUTPUT and POSTROUTING; nat's PREROUTING and INPUT for a
// connection's first packet) is left out with its file:line, so the
// import is not complete; what iptables-nft leaves everywhere (ACCEPT, no
// rules), a DROP policy on FORWARD (routed packets only) and on nat's
// OUTPUT and POSTROUTING (no reply to an inbound connection passes them)
// say nothing. Each family the same.
func TestIPTablesDropPolicies(t *testing.T) {
	filter := func(forward, output string, outputRules ...string) string {
		rules := ""
		for _, r := range outputRules {
			rules += r + "\n"
		}
		return fmt.Sprintf(iptInput4, forward, output, rules)
	}
	allAccept := saveTable("raw", rawChains, "AA") + saveTable("mangle", mangleChains, "AAAAA") + saveTable("security", securityChains, "AAA") + saveTable("nat", natChains, "AAAA")
	cases := []struct {
		name  string
		input string
		// leftOut are the items wanted, in order; none: complete.
		leftOut []string
	}{
		{"everything ACCEPT, no rules", allAccept + filter("ACCEPT", "ACCEPT"), nil},
		{"FORWARD DROP in every table that has it", saveTable("mangle", mangleChains, "AADAA") + saveTable("security", securityChains, "ADA") + filter("DROP", "ACCEPT"), nil},
		{"nat OUTPUT and POSTROUTING DROP", saveTable("nat", natChains, "AADD") + filter("ACCEPT", "ACCEPT"), nil},
		{"mangle INPUT DROP", saveTable("mangle", mangleChains, "ADAAA") + filter("ACCEPT", "ACCEPT"), []string{
			"f:3 (*mangle :INPUT DROP): chain INPUT of table mangle (no rules, policy DROP) not imported: it drops every packet to this host, whatever the filter table's INPUT decides; the imported policy does not, so it opens connections the original refused",
		}},
		{"filter OUTPUT DROP", filter("ACCEPT", "DROP"), []string{
			"f:4 (:OUTPUT DROP): chain OUTPUT (no rules, policy DROP) not imported: it drops every packet this host sends, the replies to inbound connections too, so no connection to this host completes; the imported policy does not, so it opens connections the original refused",
		}},
		{"filter OUTPUT DROP with rules: one item", filter("ACCEPT", "DROP", "-A OUTPUT -p tcp -m tcp --sport 22 -j ACCEPT"), []string{
			"f:4 (:OUTPUT DROP): chain OUTPUT (1 rule(s), policy DROP) not imported: it drops every packet this host sends that its 1 rule(s) do not accept, the replies to inbound connections too;",
		}},
		{"filter OUTPUT rules, ACCEPT policy: as before", filter("ACCEPT", "ACCEPT", "-A OUTPUT -p tcp -m tcp --sport 27 -j DROP"), []string{
			"f:4: chain OUTPUT (1 rule(s)) not imported: a policy decides only traffic to this host",
		}},
		{"raw", saveTable("raw", rawChains, "DD") + filter("ACCEPT", "ACCEPT"), []string{
			"f:2 (*raw :PREROUTING DROP): chain PREROUTING of table raw (no rules, policy DROP) not imported: it drops every packet to this host,",
			"f:3 (*raw :OUTPUT DROP): chain OUTPUT of table raw (no rules, policy DROP) not imported: it drops every packet this host sends, the replies to inbound connections too,",
		}},
		{"mangle, every hook but FORWARD", saveTable("mangle", mangleChains, "DDDDD") + filter("ACCEPT", "ACCEPT"), []string{
			"f:2 (*mangle :PREROUTING DROP)", "f:3 (*mangle :INPUT DROP)", "f:5 (*mangle :OUTPUT DROP)", "f:6 (*mangle :POSTROUTING DROP)",
		}},
		{"security", saveTable("security", securityChains, "DDD") + filter("ACCEPT", "ACCEPT"), []string{
			"f:2 (*security :INPUT DROP)", "f:4 (*security :OUTPUT DROP)",
		}},
		{"nat PREROUTING and INPUT", saveTable("nat", natChains, "DDDD") + filter("ACCEPT", "ACCEPT"), []string{
			"f:2 (*nat :PREROUTING DROP): chain PREROUTING of table nat (no rules, policy DROP) not imported: it drops the first packet of every connection to this host",
			"f:3 (*nat :INPUT DROP): chain INPUT of table nat (no rules, policy DROP) not imported: it drops the first packet of every connection to this host",
		}},
		{"mangle INPUT DROP with rules (iptables-save -c)", saveTable("mangle", mangleChains, "ADAAA", "[5:300] -A INPUT -p tcp -m tcp --dport 27 -j ACCEPT", "[0:0] -A PREROUTING -j MARK --set-mark 1") + filter("ACCEPT", "ACCEPT"), []string{
			"f:7: table mangle (2 rule(s)): ",
			"f:3 (*mangle :INPUT DROP): chain INPUT of table mangle (1 rule(s), policy DROP) not imported: it drops every packet to this host that its 1 rule(s) do not accept,",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check := func(t *testing.T, input string, leftOut []string) {
				t.Helper()
				im, err := ParseIPTables([]File{{Name: "f", Data: []byte(input)}})
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := im.Build(); err != nil {
					t.Fatal(err)
				}
				report := ReportText(im)
				if len(im.LeftOut) != len(leftOut) {
					t.Fatalf("%d item(s) left out, want %d:\n%s\ninput:\n%s", len(im.LeftOut), len(leftOut), report, input)
				}
				for i, want := range leftOut {
					if got := im.LeftOut[i].String(); !strings.HasPrefix(got, want) {
						t.Errorf("left out item %d:\n got %s\nwant %s...", i, got, want)
					}
				}
				if len(leftOut) == 0 && !strings.HasPrefix(report, "import: complete") {
					t.Errorf("not complete:\n%s", report)
				}
			}
			check(t, c.input, c.leftOut)
			// ip6tables-save: the same tables and chains, the same report.
			v6 := "# Generated by ip6tables-save v1.8.9 (nf_tables)\n" + strings.Replace(c.input, "198.18.1.0/24", "2001:2:1::/64", 1)
			var want6 []string
			for _, w := range c.leftOut {
				// One line more before each: the header.
				var n int
				if _, err := fmt.Sscanf(w, "f:%d", &n); err != nil {
					t.Fatal(err)
				}
				want6 = append(want6, fmt.Sprintf("f:%d%s", n+1, w[len(fmt.Sprintf("f:%d", n)):]))
			}
			t.Run("IPv6", func(t *testing.T) { check(t, v6, want6) })
		})
	}
}
