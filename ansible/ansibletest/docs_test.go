package ansibletest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestModuleDocs checks that ansible-doc reads both modules' documentation
// (a YAML mistake there breaks `ansible-doc` and Galaxy, not the modules).
// It needs ansible-core but no privileges.
func TestModuleDocs(t *testing.T) {
	if _, err := exec.LookPath("ansible-doc"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ansible-doc is missing and CI=true forbids skipping: .ci/run installs ansible-core")
		}
		t.Skip("ansible-doc is missing (apt-get install ansible-core)")
	}
	dir := t.TempDir()
	colls := filepath.Join(dir, "ansible_collections", "portwarden")
	must(t, os.MkdirAll(colls, 0o755))
	src, err := filepath.Abs("..")
	must(t, err)
	must(t, os.Symlink(src, filepath.Join(colls, "firewall")))
	for _, m := range []string{"portwarden.firewall.policy", "portwarden.firewall.verify"} {
		cmd := exec.Command("ansible-doc", "--json", m)
		cmd.Env = append(os.Environ(), "HOME="+dir, "ANSIBLE_COLLECTIONS_PATH="+dir, "ANSIBLE_CONFIG="+filepath.Join(dir, "none.cfg"))
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"short_description"`) {
			t.Errorf("ansible-doc %s: %v\n%s", m, err, out)
		}
	}
}
