package importer

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
	"github.com/portwarden/portwarden/verify"
)

// TestRandomRulesetsMatchTheModel imports random first-match rulesets
// (overlapping prefixes, negations, ipsets, shared comments, port ranges,
// rules without ports, both families) and holds each generated policy to
// the rules at every boundary address on every managed port, offline.
func TestRandomRulesetsMatchTheModel(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	for n := 0; n < 60; n++ {
		files := randomIPTables(r)
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

// randomIPTables is a random first-match ruleset in iptables-save form,
// with an ipset file, from a small pool of overlapping prefixes and ports.
func randomIPTables(r *rand.Rand) []File {
	v4 := []string{"198.18.0.0/16", "198.18.1.0/24", "198.18.1.0/25", "198.18.1.128/25", "198.18.1.7/32", "198.18.2.0/23", "198.18.3.3/32", "198.19.0.0/16"}
	v6 := []string{"2001:2::/48", "2001:2:1::/64", "2001:2:1::7/128", "2001:2:2::/63", "2001:2:1:0:8000::/65"}
	ports := []string{"22", "27", "80", "1000:1005", "1003:1010", "27,80", "22,1000:1002"}
	verdicts := []string{"ACCEPT", "ACCEPT", "DROP", "REJECT"}
	comments := []string{"", "", "ops", "peers"}
	var sets strings.Builder
	sets.WriteString("create grp4 hash:net family inet\ncreate grp6 hash:net family inet6\n")
	i4, i6 := r.Perm(len(v4)), r.Perm(len(v6))
	for i := 0; i < 2; i++ {
		fmt.Fprintf(&sets, "add grp4 %s\nadd grp6 %s\n", v4[i4[i]], v6[i6[i]])
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
		if fam == 6 {
			// Neighbour discovery, so a sandbox can reach the host at all.
			b.WriteString("-A INPUT -p ipv6-icmp -j ACCEPT\n")
		}
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
	return files
}

// TestRandomRulesetsInKernel loads random rulesets with iptables-restore
// and their imports with portwarden into sandboxes: no source may be let
// through by one and refused by the other. (Drop against reject may
// differ where a port's rules refuse both ways: the report says so.)
func TestRandomRulesetsInKernel(t *testing.T) {
	netnstest.RequireRoot(t)
	r := rand.New(rand.NewSource(11))
	for n := 0; n < 2; n++ {
		files := randomIPTables(r)
		im, err := ParseIPTables(files)
		if err != nil {
			t.Fatal(err)
		}
		src, _, err := im.Build()
		if err != nil {
			t.Fatal(err)
		}
		pol, diags := policies.LoadFS(fstest.MapFS{"import.hcl": {Data: src}}, "import.hcl", policies.Options{})
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		rs, err := rules.Compile(pol)
		if err != nil {
			t.Fatal(err)
		}
		cfg := verify.EquivalenceConfig{Ruleset: rs, Backend: "nftables", Prefixes: im.Prefixes()}
		for _, l := range im.Load {
			cfg.Original = append(cfg.Original, verify.Command{Name: l.Name, Args: l.Args, Stdin: l.Stdin})
		}
		rep, err := verify.Equivalence(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range rep.Differences {
			if d.Original == verify.Open || d.Imported == verify.Open {
				t.Errorf("case %d: %s", n, d)
			}
		}
		if t.Failed() {
			for _, f := range files {
				t.Logf("%s:\n%s", f.Name, f.Data)
			}
			t.Logf("policy:\n%s\nreport:\n%s", src, ReportText(im))
			return
		}
		t.Logf("case %d: %d probes from %d sources, %d drop/reject differences", n, rep.Probes, rep.Sources, len(rep.Differences))
	}
}
