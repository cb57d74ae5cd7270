package importer_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/policies/importer"
	"github.com/portwarden/portwarden/rules"
	"github.com/portwarden/portwarden/verify"
)

// TestCheckInKernel loads each fixture with the real tools into one
// sandbox and its import into another, probes both, and requires every
// difference to be one the import report announced (a rule left out), and
// the ports without left-out rules to be equal everywhere.
func TestCheckInKernel(t *testing.T) {
	netnstest.RequireRoot(t)
	in := func(p string) netip.Prefix { return netip.MustParsePrefix(p) }
	cases := []struct {
		from      string
		explained func(d verify.Difference) bool
	}{
		{"iptables", func(d verify.Difference) bool {
			switch {
			case d.Protocol == rules.UDP && d.Port == 161:
				// rules.v4:18 rejects where the expose drops (one default).
				return d.Source.Is4() && d.Imported == verify.Filtered
			case d.Protocol == rules.TCP && d.Port == 5432:
				// rules.v4:19, a rate-limited accept, is left out.
				return in("198.18.40.0/24").Contains(d.Source) && d.Original == verify.Open
			}
			return false
		}},
		{"nftables", func(d verify.Difference) bool {
			switch {
			case d.Protocol == rules.UDP && d.Port == 53:
				// handle 12 drops the blocked set where the expose rejects.
				return in("198.18.99.99/32").Contains(d.Source) || in("198.18.99.100/32").Contains(d.Source)
			case d.Protocol == rules.TCP && d.Port == 5432:
				// handle 28, a rate-limited accept, is left out.
				return in("198.18.40.0/24").Contains(d.Source) && d.Original == verify.Open
			}
			return false
		}},
		{"ufw", func(d verify.Difference) bool {
			// user.rules:21 drops 198.18.99.99 on every port, where the
			// expose of tcp/23 rejects.
			return d.Protocol == rules.TCP && d.Port == 23 && d.Source == netip.MustParseAddr("198.18.99.99")
		}},
		{"firewalld", func(d verify.Difference) bool {
			switch {
			case in("198.18.99.99/32").Contains(d.Source) || in("198.18.99.100/32").Contains(d.Source):
				// blocked.xml: the zone drops where the exposes reject.
				return d.Original == verify.Filtered
			case d.Protocol == rules.TCP && d.Port == 5432:
				// public.xml:45, a rate-limited accept, is left out.
				return in("198.18.40.0/24").Contains(d.Source) && d.Original == verify.Open
			}
			return false
		}},
	}
	for _, c := range cases {
		t.Run(c.from, func(t *testing.T) {
			im, src := importFixture(t, c.from)
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
			if rep.Probes < 100 {
				t.Errorf("only %d probes", rep.Probes)
			}
			for _, d := range rep.Differences {
				if !c.explained(d) {
					t.Errorf("unexplained difference: %s", d)
				}
			}
			t.Logf("%d probes from %d sources, %d differences (all announced), %s", rep.Probes, rep.Sources, len(rep.Differences), rep.Duration)
		})
	}
}

func importFixture(t *testing.T, from string) (*importer.Import, []byte) {
	t.Helper()
	dir := filepath.Join("testdata", from)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []importer.File
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, importer.File{Name: e.Name(), Data: data})
	}
	im, err := importer.Parse(from, files)
	if err != nil {
		t.Fatal(err)
	}
	src, _, err := im.Build()
	if err != nil {
		t.Fatal(err)
	}
	return im, src
}
