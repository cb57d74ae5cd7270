package policies

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A policy file, directory or variables file others can write is refused
// by name and mode (or only warned about), as sshd's StrictModes.
func TestUntrustedFilesRefused(t *testing.T) {
	const text = "expose \"nscp\" {\n  protocol = \"tcp\"\n  ports = [27]\n  allow { from = [\"198.18.0.1\"] }\n}\n"
	for _, tc := range []struct {
		name    string
		setup   func(dir string) (policy string, opts Options)
		summary string
	}{
		{"world-writable file", func(dir string) (string, Options) {
			p := filepath.Join(dir, "p.hcl")
			os.WriteFile(p, []byte(text), 0o644)
			os.Chmod(p, 0o666)
			return p, Options{}
		}, "Untrusted policy file"},
		{"group-writable directory", func(dir string) (string, Options) {
			sub := filepath.Join(dir, "pol")
			os.Mkdir(sub, 0o755)
			os.WriteFile(filepath.Join(sub, "p.hcl"), []byte(text), 0o644)
			os.Chmod(sub, 0o775)
			os.Chown(sub, -1, 4242)
			return sub, Options{}
		}, "Untrusted policy directory"},
		{"world-writable variables file", func(dir string) (string, Options) {
			p := filepath.Join(dir, "p.hcl")
			os.WriteFile(p, []byte(text), 0o644)
			vf := filepath.Join(dir, "vars.hcl")
			os.WriteFile(vf, nil, 0o644)
			os.Chmod(vf, 0o646)
			return p, Options{VarFiles: []string{vf}}
		}, "Untrusted variables file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.Chmod(dir, 0o755)
			p, opts := tc.setup(dir)
			opts.Trust = TrustRefuse
			_, diags := Load(p, opts)
			if !diags.HasErrors() || diags[0].Summary != tc.summary || !strings.Contains(diags[0].Detail, "mode 0") {
				t.Fatalf("refuse: %v", diags)
			}
			opts.Trust = TrustWarn
			pol, diags := Load(p, opts)
			if diags.HasErrors() || len(diags) == 0 || diags[0].Summary != tc.summary || len(pol.Exposes) != 1 {
				t.Fatalf("warn: %v", diags)
			}
		})
	}
}

// A file only its owner can write, in a directory only its owner can
// write (or /tmp-like sticky ones), is trusted.
func TestTrustedFilesLoad(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	p := filepath.Join(dir, "p.hcl")
	os.WriteFile(p, []byte("expose \"nscp\" {\n  protocol = \"tcp\"\n  ports = [27]\n}\n"), 0o644)
	if _, diags := Load(p, Options{Trust: TrustRefuse}); diags.HasErrors() {
		t.Fatal(diags)
	}
	os.Chmod(dir, os.ModeSticky|0o777)
	if _, diags := Load(p, Options{Trust: TrustRefuse}); diags.HasErrors() {
		t.Fatalf("sticky directory of a single file: %v", diags)
	}
	if _, diags := Load(dir, Options{Trust: TrustRefuse}); !diags.HasErrors() {
		t.Fatal("a world-writable directory policy was trusted: anyone could add a file")
	}
}
