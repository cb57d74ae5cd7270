package importer

import (
	"os"
	"testing"
)

// FuzzParse feeds every parser arbitrary bytes: errors are fine, panics
// and policies that do not build are not.
func FuzzParse(f *testing.F) {
	for _, path := range []string{"testdata/iptables/rules.v4", "testdata/iptables/rules.v6", "testdata/ufw/user.rules", "testdata/nftables/ruleset.json", "testdata/firewalld/public.xml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, from := range Sources {
			im, err := Parse(from, []File{{Name: "fuzz", Data: data}})
			if err != nil {
				continue
			}
			if _, _, err := im.Build(); err != nil {
				t.Fatalf("%s: %v", from, err)
			}
		}
	})
}
