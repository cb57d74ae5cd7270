package policies

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// FuzzLoad feeds arbitrary bytes to the loader and decoder as native and
// JSON policy files: any input must give diagnostics or a policy, never a
// panic.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/errors/*.hcl*")
	seeds = append(seeds, "../examples/port27/policy.hcl")
	for _, s := range seeds {
		if src, err := os.ReadFile(s); err == nil {
			f.Add(src, filepath.Ext(s) == ".json")
		}
	}
	f.Add([]byte(nativeSrc), false)
	f.Add([]byte(jsonSrc), true)
	f.Add([]byte(`expose "x" {
  protocol = "tcp"
  ports    = [27]
  allow {
    from    = ["198.18.1.1"]
    expires = "2026-12-01T00:00:00Z"
  }
}`), false)
	f.Fuzz(func(t *testing.T, src []byte, isJSON bool) {
		name := "p.hcl"
		if isJSON {
			name = "p.hcl.json"
		}
		pol, _ := LoadFS(fstest.MapFS{name: {Data: src}}, name, Options{Environ: []string{"PORTWARDEN_VAR_x=1"}})
		if pol == nil {
			t.Fatal("nil policy")
		}
		Format(src, name)
	})
}

// FuzzListFile feeds arbitrary bytes to the list file parser: any input
// gives addresses or diagnostics, never a panic, and every address it
// returns is a valid, masked prefix with its line.
func FuzzListFile(f *testing.F) {
	f.Add([]byte("198.18.1.1\n198.18.2.0/24 # c\n198.18.3.1-198.18.3.4\n2001:2::/64 expires=2026-12-01T00:00:00Z\n"))
	f.Add([]byte("198.18.1.1 expires=\n expires=2026-12-01T00:00:00Z\n198.18.1.1\texpires=2026-12-01T00:00:00+01:00\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		addrs, _ := parseList(data, "l.txt")
		for _, a := range addrs {
			if !a.Prefix.IsValid() || a.Prefix != a.Prefix.Masked() || !a.Listed || a.Range.Start.Line < 1 {
				t.Fatalf("bad address %+v from %q", a, data)
			}
		}
	})
}
