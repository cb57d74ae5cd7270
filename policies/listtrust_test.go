package policies

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// listTree writes a policy dir/t/policy.hcl whose group reads
// lists/customers.txt, and that list, each only its owner can write.
func listTree(t *testing.T) (root, policy, lists string) {
	t.Helper()
	root = t.TempDir()
	policy = filepath.Join(root, "t")
	lists = filepath.Join(policy, "lists")
	if err := os.MkdirAll(lists, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{root, policy, lists} {
		os.Chmod(p, 0o755)
	}
	src := "address_group \"customers\" {\n  members_file = \"lists/customers.txt\"\n}\n" +
		"expose \"web\" {\n  protocol = \"tcp\"\n  ports = [443]\n  allow { from = [address_group.customers] }\n}\n"
	if err := os.WriteFile(filepath.Join(policy, "policy.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lists, "customers.txt"), []byte("198.51.100.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, policy, lists
}

// otherUID is a user neither root nor the one running the test (nor
// SUDO_UID): only root can give a file to it.
const otherUID = 65534

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	if os.Getenv("SUDO_UID") == "65534" {
		t.Skip("SUDO_UID is the other user")
	}
}

// A list file is trusted only as far as the path to it: every directory
// from / (none writable by others, except /tmp-like sticky ones passed
// through), the directory holding it (not even sticky), and every link
// followed (owned by root or the running user). Each refusal names the
// path, its mode and owner, and what to do; --strict-modes=false only
// warns.
func TestListFileTrustPath(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, root, policy, lists string)
		summary string
		detail  []string
	}{
		{"world-writable list directory", func(t *testing.T, root, policy, lists string) {
			os.Chmod(lists, 0o777)
		}, "Untrusted directory of the list file", []string{"t/lists (mode 0777, owner uid ", "everyone can write it", "t/lists; chmod go-w /"}},
		{"sticky list directory", func(t *testing.T, root, policy, lists string) {
			os.Chmod(lists, os.ModeSticky|0o777)
		}, "Untrusted directory of the list file", []string{"t/lists (mode 1777, owner uid ", "everyone can create files in it", "not from creating one under a name the policy reads"}},
		{"group-writable directory above", func(t *testing.T, root, policy, lists string) {
			// A list outside the policy's own tree: only its walk
			// passes through shared.
			shared := filepath.Join(root, "shared")
			os.MkdirAll(filepath.Join(shared, "sub"), 0o755)
			os.WriteFile(filepath.Join(shared, "sub", "c.txt"), []byte("198.51.100.0/24\n"), 0o644)
			os.Chown(shared, -1, 4242)
			os.Chmod(shared, 0o775)
			rewrite(t, filepath.Join(policy, "policy.hcl"), "lists/customers.txt", "../shared/sub/c.txt")
		}, "Untrusted directory above the list file", []string{"shared (mode 0775, owner uid ", "group 4242 can write it"}},
		{"list file of another user", func(t *testing.T, root, policy, lists string) {
			requireRoot(t)
			os.Chown(filepath.Join(lists, "customers.txt"), otherUID, -1)
		}, "Untrusted list file", []string{"t/lists/customers.txt (mode 0644, owner uid 65534)", "belongs to uid 65534"}},
		{"link of another user", func(t *testing.T, root, policy, lists string) {
			requireRoot(t)
			target := filepath.Join(root, "any.txt")
			os.WriteFile(target, []byte("0.0.0.0/0\n"), 0o644)
			l := filepath.Join(lists, "customers.txt")
			os.Remove(l)
			if err := os.Symlink(target, l); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(l, otherUID, otherUID); err != nil {
				t.Fatal(err)
			}
		}, "Untrusted symbolic link to the list file", []string{"t/lists/customers.txt (a symbolic link, owner uid 65534)", "can point it at any file", "chown -h root "}},
		{"link into a writable directory", func(t *testing.T, root, policy, lists string) {
			open := filepath.Join(root, "open")
			os.Mkdir(open, 0o755)
			os.Chmod(open, 0o777)
			os.WriteFile(filepath.Join(open, "c.txt"), []byte("198.51.100.0/24\n"), 0o644)
			l := filepath.Join(lists, "customers.txt")
			os.Remove(l)
			if err := os.Symlink("../../open/c.txt", l); err != nil {
				t.Fatal(err)
			}
		}, "Untrusted directory of the list file", []string{"open (on the way to ", "through a symbolic link) (mode 0777", "everyone can write it"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, policy, lists := listTree(t)
			tc.setup(t, root, policy, lists)
			_, diags := Load(policy, Options{Trust: TrustRefuse})
			if !diags.HasErrors() || diags[0].Summary != tc.summary {
				t.Fatalf("refuse: %v", diags)
			}
			for _, want := range tc.detail {
				if !strings.Contains(diags[0].Detail, want) {
					t.Errorf("%q is not in %s", want, diags[0].Detail)
				}
			}
			pol, diags := Load(policy, Options{Trust: TrustWarn})
			if diags.HasErrors() || len(diags) == 0 || diags[0].Summary != tc.summary || len(pol.Exposes) != 1 {
				t.Fatalf("warn: %v", diags)
			}
		})
	}
}

// What sshd accepts on the way is accepted: a sticky directory such as
// /tmp passed through (the next name on the way is trusted, and nobody
// else can remove or rename it), and links the running user owns.
func TestListFileTrustedPath(t *testing.T) {
	root, policy, lists := listTree(t)
	os.Chmod(root, os.ModeSticky|0o777)
	real := filepath.Join(policy, "real")
	os.Mkdir(real, 0o755)
	os.Rename(filepath.Join(lists, "customers.txt"), filepath.Join(real, "c.txt"))
	if err := os.Symlink("../real/c.txt", filepath.Join(lists, "customers.txt")); err != nil {
		t.Fatal(err)
	}
	pol, diags := Load(policy, Options{Trust: TrustRefuse})
	if diags.HasErrors() || len(diags) != 0 {
		t.Fatal(diags)
	}
	if len(pol.ListFiles) != 1 || pol.ListFiles[0] != filepath.Join(policy, "lists", "customers.txt") {
		t.Errorf("ListFiles = %v", pol.ListFiles)
	}
	// A relative policy path is judged from / through the working
	// directory, and named as given.
	t.Chdir(root)
	os.Chmod(lists, 0o777)
	_, diags = Load("t", Options{Trust: TrustRefuse})
	if !diags.HasErrors() || !strings.HasPrefix(diags[0].Detail, "t/lists (mode 0777") {
		t.Fatalf("relative: %v", diags)
	}
}

// Policy and variables files are judged along their whole path as well:
// a policy file reached through a link into a directory anyone can write
// is refused, even though the link's own directory is trusted.
func TestPolicyFileTrustPath(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o755)
	open := filepath.Join(root, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o777)
	os.WriteFile(filepath.Join(open, "p.hcl"), []byte("expose \"nscp\" {\n  protocol = \"tcp\"\n  ports = [27]\n}\n"), 0o644)
	link := filepath.Join(root, "p.hcl")
	if err := os.Symlink("open/p.hcl", link); err != nil {
		t.Fatal(err)
	}
	_, diags := Load(link, Options{Trust: TrustRefuse})
	if !diags.HasErrors() || diags[0].Summary != "Untrusted directory of the policy file" || !strings.Contains(diags[0].Detail, "mode 0777") {
		t.Fatalf("%v", diags)
	}
	// A single policy file may still sit in a sticky directory, as
	// documented: it is named on the command line each time.
	os.Chmod(open, os.ModeSticky|0o777)
	if _, diags := Load(link, Options{Trust: TrustRefuse}); diags.HasErrors() {
		t.Fatal(diags)
	}
}

// The file the trust check judged is the file read: one swapped for
// another in between is refused.
func TestOpenRegularSameFile(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
	os.WriteFile(a, []byte("198.18.0.1\n"), 0o644)
	os.WriteFile(b, []byte("0.0.0.0/0\n"), 0o644)
	judged, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	f, err := openRegular(a, MaxListBytes, judged)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := openRegular(b, MaxListBytes, judged); err != errReplaced {
		t.Errorf("another file than the one judged: %v", err)
	}
}

func rewrite(t *testing.T, file, old, new string) {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(src), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A directory first passed through (where the sticky bit suffices) and
// then reached through a link as the policy directory is judged as one:
// a sticky policy directory is refused however the path gets there.
func TestStickyDirectoryReachedAgain(t *testing.T) {
	root := t.TempDir()
	os.Chmod(root, 0o755)
	x := filepath.Join(root, "x")
	os.MkdirAll(filepath.Join(x, "sub"), 0o755)
	os.Chmod(x, os.ModeSticky|0o777)
	os.WriteFile(filepath.Join(x, "p.hcl"), []byte("expose \"nscp\" {\n  protocol = \"tcp\"\n  ports = [27]\n}\n"), 0o644)
	if err := os.Symlink("../../x", filepath.Join(x, "sub", "back")); err != nil {
		t.Fatal(err)
	}
	_, diags := Load(filepath.Join(x, "sub", "back"), Options{Trust: TrustRefuse})
	if !diags.HasErrors() || diags[0].Summary != "Untrusted policy directory" || !strings.Contains(diags[0].Detail, "mode 1777") {
		t.Fatalf("%v", diags)
	}
}
