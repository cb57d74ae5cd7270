package policies

import (
	"os"
	"path/filepath"
	"testing"
)

// Editors' files in a policy directory are not part of the policy, as
// Terraform ignores them: names starting with "." or "#" or ending
// with "~".
func TestIsPolicyFile(t *testing.T) {
	for name, want := range map[string]bool{
		"policy.hcl":       true,
		"policy.hcl.json":  true,
		"a.b.hcl":          true,
		".#policy.hcl":     false, // Emacs lock file
		".policy.swp.hcl":  false,
		".hcl":             false,
		"#policy.hcl":      false,
		"#policy.hcl.json": false,
		"policy.hcl~":      false,
		"policy.hcl.swp":   false,
		"policy.json":      false,
	} {
		if got := IsPolicyFile(name); got != want {
			t.Errorf("IsPolicyFile(%q) = %v", name, got)
		}
	}
}

// Every place that lists a policy directory skips them: Load (validate,
// plan, apply...), its trust check, and InputDigest.
func TestEditorFilesIgnored(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	src := "variable \"port\" {\n  default = 27\n}\nexpose \"nscp\" {\n  protocol = \"tcp\"\n  ports = [var.port]\n  allow { from = [\"198.18.0.1\"] }\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "policy.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _, err := InputDigest(dir, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Emacs's lock file: a dangling symbolic link.
	if err := os.Symlink("root@host.1234:1700000000", filepath.Join(dir, ".#policy.hcl")); err != nil {
		t.Fatal(err)
	}
	// A copy that would define everything twice, and that anyone can
	// write (an untrusted policy file, were it part of the policy).
	for _, n := range []string{".policy.swp.hcl", "#policy.hcl", ".policy.hcl.json"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, n), 0o666)
	}
	pol, diags := Load(dir, Options{Trust: TrustRefuse})
	if len(diags) != 0 {
		t.Fatal(diags)
	}
	if len(pol.Files) != 1 || pol.Files[filepath.Join(dir, "policy.hcl")] == nil {
		t.Errorf("files loaded: %v", pol.Files)
	}
	after, _, err := InputDigest(dir, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Error("an editor's file moved the digest")
	}
	// A file named on its own is loaded, whatever its name.
	if _, diags := Load(filepath.Join(dir, ".policy.swp.hcl"), Options{Trust: TrustOff}); diags.HasErrors() {
		t.Fatal(diags)
	}
}
