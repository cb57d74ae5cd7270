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
