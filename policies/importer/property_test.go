package importer

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// TestRandomRulesetsMatchTheModel imports random first-match rulesets
// (overlapping prefixes, negations, ipsets, shared comments, port ranges,
// rules without ports, both families) and holds each generated policy to
// the rules at every boundary address on every managed port, offline.
func TestRandomRulesetsMatchTheModel(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	v4 := []string{"198.18.0.0/16", "198.18.1.0/24", "198.18.1.0/25", "198.18.1.128/25", "198.18.1.7/32", "198.18.2.0/23", "198.18.3.3/32", "198.19.0.0/16"}
	v6 := []string{"2001:2::/48", "2001:2:1::/64", "2001:2:1::7/128", "2001:2:2::/63", "2001:2:1:0:8000::/65"}
	ports := []string{"22", "27", "80", "1000:1005", "1003:1010", "27,80", "22,1000:1002"}
	verdicts := []string{"ACCEPT", "ACCEPT", "DROP", "REJECT"}
	comments := []string{"", "", "ops", "peers"}
	for n := 0; n < 60; n++ {
		var sets strings.Builder
		sets.WriteString("create grp4 hash:net family inet\ncreate grp6 hash:net family inet6\n")
		for i := 0; i < 2; i++ {
			fmt.Fprintf(&sets, "add grp4 %s\nadd grp6 %s\n", v4[r.Intn(len(v4))], v6[r.Intn(len(v6))])
		}
		files := []File{{Name: "ipsets", Data: []byte(sets.String())}}
		policy := []string{"ACCEPT", "DROP"}[r.Intn(2)]
		for _, fam := range []int{4, 6} {
			pool, name, grp := v4, "rules.v4", "grp4"
			if fam == 6 {
				pool, name, grp = v6, "rules.v6", "grp6"
			}
			var b strings.Builder
			fmt.Fprintf(&b, "*filter\n:INPUT %s [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n", policy)
			for i := 0; i < 3+r.Intn(12); i++ {
				rule := "-A INPUT"
				switch k := r.Intn(10); {
				case k < 5:
					rule += " -s " + pool[r.Intn(len(pool))]
				case k < 6:
					rule += " ! -s " + pool[r.Intn(len(pool))]
				case k < 8:
					rule += " -m set --match-set " + grp + " src"
				}
				if r.Intn(10) > 0 {
					rule += " -p " + []string{"tcp", "udp"}[r.Intn(2)]
					if p := ports[r.Intn(len(ports))]; strings.ContainsAny(p, ",") {
						rule += " -m multiport --dports " + p
					} else {
						rule += " --dport " + p
					}
				}
				if c := comments[r.Intn(len(comments))]; c != "" {
					rule += ` -m comment --comment "` + c + `"`
				}
				rule += " -j " + verdicts[r.Intn(len(verdicts))]
				b.WriteString(rule + "\n")
			}
			b.WriteString("COMMIT\n")
			files = append(files, File{Name: name, Data: []byte(b.String())})
		}
		im, err := ParseIPTables(files)
		if err != nil {
			t.Fatalf("case %d: %v", n, err)
		}
		out, xs, err := im.Build()
		if err != nil {
			t.Fatalf("case %d: %v", n, err)
		}
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			checkAgainstModel(t, im, xs, out)
			if t.Failed() {
				for _, f := range files {
					t.Logf("%s:\n%s", f.Name, f.Data)
				}
				t.Logf("policy:\n%s", out)
			}
		})
	}
}
