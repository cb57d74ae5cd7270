package policies

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestInputDigest: the digest moves with every input Load reads, and
// only then.
func TestInputDigest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("policy.hcl", listPolicy)
	if err := os.MkdirAll(filepath.Join(dir, "lists"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("lists/office.txt", "198.18.1.1\n")
	pol, diags := Load(dir, Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(pol.ListFiles) != 1 {
		t.Fatalf("ListFiles = %v", pol.ListFiles)
	}
	digest := func(opts Options) string {
		t.Helper()
		d, _, err := InputDigest(dir, opts, pol.ListFiles)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	base := digest(Options{})
	if again := digest(Options{Environ: []string{"HOME=/root"}}); again != base {
		t.Error("an unrelated environment variable moved the digest")
	}
	seen := map[string]string{"": base}
	for _, c := range []struct {
		name   string
		change func() Options
	}{
		{"list file", func() Options { write("lists/office.txt", "198.18.1.2\n"); return Options{} }},
		{"new policy file", func() Options { write("more.hcl", "# nothing\n"); return Options{} }},
		{"--var", func() Options { return Options{Vars: map[string]string{"x": "1"}} }},
		{"environment", func() Options { return Options{Environ: []string{EnvPrefix + "x=1"}} }},
	} {
		d := digest(c.change())
		for name, other := range seen {
			if d == other {
				t.Errorf("after the %s change the digest equals the one after %q", c.name, name)
			}
		}
		seen[c.name] = d
	}
	if _, _, err := InputDigest(dir, Options{}, []string{filepath.Join(dir, "gone.txt")}); err == nil {
		t.Error("a missing list file gave a digest")
	}
}

// InputDigest says when an input last changed, so that a digest taken
// after a load is not taken for what the load read: a list file rewritten
// (even with its old modification time put back) moves it.
func TestInputDigestChanged(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "lists", "office.txt")
	if err := os.MkdirAll(filepath.Dir(list), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"policy.hcl": listPolicy, "lists/office.txt": "198.18.1.1\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	for _, p := range []string{dir, filepath.Dir(list), list, filepath.Join(dir, "policy.hcl")} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	_, before, err := InputDigest(dir, Options{}, []string{list})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	if err := os.WriteFile(list, []byte("198.18.1.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(list, old, old); err != nil {
		t.Fatal(err)
	}
	_, after, err := InputDigest(dir, Options{}, []string{list})
	if err != nil {
		t.Fatal(err)
	}
	if !after.After(before) || after.Before(start.Add(-10*time.Millisecond)) {
		t.Errorf("changed %v before the write, %v after it (written at %v)", before, after, start)
	}
}
