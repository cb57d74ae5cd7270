package importer

import (
	"fmt"
	"strings"
	"testing"
)

// largeRuleset is iptables-save text with rules over ports sharing an
// ipset of setSize entries: a big hand-grown firewall.
func largeRuleset(rules, ports, setSize int) []File {
	var sets, v4 strings.Builder
	fmt.Fprintf(&sets, "create peers hash:net family inet hashsize 1024 maxelem 1048576\n")
	for i := 0; i < setSize; i++ {
		fmt.Fprintf(&sets, "add peers 198.18.%d.%d\n", (i/256)%256, i%256)
	}
	v4.WriteString("*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	for i := 0; i < rules; i++ {
		port := 1000 + i%ports
		switch i % 4 {
		case 0:
			fmt.Fprintf(&v4, "-A INPUT -s 198.19.%d.%d/32 -p tcp -m tcp --dport %d -j DROP\n", (i/256)%256, i%256, port)
		case 1:
			fmt.Fprintf(&v4, "-A INPUT -p tcp -m tcp --dport %d -m set --match-set peers src -j ACCEPT\n", port)
		default:
			fmt.Fprintf(&v4, "-A INPUT -s 198.19.%d.0/24 -p tcp -m tcp --dport %d -j ACCEPT\n", i%256, port)
		}
	}
	v4.WriteString("COMMIT\n")
	return []File{{Name: "ipsets", Data: []byte(sets.String())}, {Name: "rules.v4", Data: []byte(v4.String())}}
}

// BenchmarkImport: parse and build 1,000 rules over 100 ports sharing an
// ipset of 10,000 addresses.
func BenchmarkImport(b *testing.B) {
	files := largeRuleset(1000, 100, 10000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		im, err := ParseIPTables(files)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := im.Build(); err != nil {
			b.Fatal(err)
		}
	}
}
