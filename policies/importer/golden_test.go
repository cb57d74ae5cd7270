package importer

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
)

var update = flag.Bool("update", false, "rewrite golden files")

// readDir reads every regular file of a testdata directory, by name.
func readDir(t *testing.T, dir string) []File {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []File
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, File{Name: e.Name(), Data: data})
	}
	return out
}

// TestImportGolden imports each fixture, compares the policy and the
// report with golden files (regenerate with -update), and checks the
// policy against the model: for every boundary address of every prefix
// the rules mention, on every port of every expose, rules.Decide on the
// compiled policy gives the verdict the rules give.
func TestImportGolden(t *testing.T) {
	cases := []struct {
		name  string
		parse func([]File) (*Import, error)
	}{
		{"iptables", ParseIPTables},
		{"nftables", ParseNftables},
		{"ufw", ParseUFW},
		{"firewalld", ParseFirewalld},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			im, err := c.parse(readDir(t, filepath.Join("testdata", c.name)))
			if err != nil {
				t.Fatal(err)
			}
			out, xs, err := im.Build()
			if err != nil {
				t.Fatal(err)
			}
			if formatted, diags := policies.Format(out, "import.hcl"); diags.HasErrors() || string(formatted) != string(out) {
				t.Errorf("the policy is not what portwarden fmt writes (%v)", diags)
			}
			golden(t, filepath.Join("testdata", "golden", c.name+".hcl"), out)
			golden(t, filepath.Join("testdata", "golden", c.name+".report"), []byte(ReportText(im)))
			checkAgainstModel(t, im, xs, out)
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./policies/importer -update)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs (run go test ./policies/importer -update and review the diff):\n%s", path, got)
	}
}

func checkAgainstModel(t *testing.T, im *Import, xs []Exposure, src []byte) {
	t.Helper()
	pol, diags := policies.LoadFS(fstest.MapFS{"import.hcl": {Data: src}}, "import.hcl", policies.Options{})
	if diags.HasErrors() {
		t.Fatalf("the generated policy does not load: %s", diags.Error())
	}
	rs, err := rules.Compile(pol)
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[netip.Addr]bool{netip.MustParseAddr("198.19.254.254"): true, netip.MustParseAddr("2001:2:fffe::fe"): true}
	for _, p := range im.Prefixes() {
		one := &rules.Ruleset{Exposures: []rules.Exposure{{Allow: rules.NewPrefixes(p)}}}
		for _, a := range rules.BoundarySources(one) {
			addrs[a] = true
		}
	}
	for _, a := range rules.BoundarySources(rs) {
		addrs[a] = true
	}
	checked := 0
	for _, x := range xs {
		for _, pr := range x.Ports {
			for _, port := range []uint16{pr.First, pr.Last} {
				for a := range addrs {
					want, origin := im.Evaluate(x.Protocol, port, a)
					got := rs.Decide(rules.Packet{Protocol: x.Protocol, Source: a, Port: port, Interface: "eth0"}).Verdict
					if string(got) != string(want) && !(want == Reject && got == rules.Drop || want == Drop && got == rules.Reject) {
						t.Errorf("%s/%d from %s: the rules give %s (%s), the policy %s", x.Protocol, port, a, want, origin, got)
					}
					checked++
				}
			}
		}
	}
	if checked == 0 && len(xs) > 0 {
		t.Fatal("nothing checked")
	}
}

// TestReportNamesOrigins: every left-out item says where it came from.
func TestReportNamesOrigins(t *testing.T) {
	im, err := ParseIPTables(readDir(t, "testdata/iptables"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := im.Build(); err != nil {
		t.Fatal(err)
	}
	if im.Complete() {
		t.Fatal("the fixture has rules a policy cannot express, but nothing was left out")
	}
	var origins []string
	for _, it := range im.LeftOut {
		if it.Origin == "" || it.Reason == "" {
			t.Errorf("item without origin or reason: %+v", it)
		}
		origins = append(origins, it.Origin)
	}
	sort.Strings(origins)
	if !strings.Contains(fmt.Sprint(origins), "rules.v4:") {
		t.Errorf("origins do not name file:line: %v", origins)
	}
}
