package safeapply

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/internal/nfgen"
)

// A state root reached through a link to "." or through a target ending
// in ".." is the directory the walk passed on the way; sticky and writable
// by everyone (as /tmp) is fine there, but not for the root itself, where
// anyone could plant the history or take the names of the files portwarden
// makes.
func TestStateRootThroughLinkJudgedAsRoot(t *testing.T) {
	base := t.TempDir()
	pub := filepath.Join(base, "pub")
	if err := os.Mkdir(pub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pub, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(pub, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"dot": ".", "up": "sub/..", "abs-up": filepath.Join(pub, "sub", "..")} {
		link := filepath.Join(pub, name)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		before := dirNames(t, pub)
		_, err := trustRoot(link)
		wantErr(t, err, ErrUntrustedState, pub+" (owner uid", "mode 1777), where the state directory "+link+" leads, is not safe: everyone can write it", "chmod go-w "+pub, "PORTWARDEN_STATE_DIR")
		_, _, err = checkRoot(link)
		wantErr(t, err, ErrUntrustedState, "everyone can write it")
		// The refusal is what keeps state out of pub: a writer given the
		// link (here the history's) must write nothing there. trustRoot
		// alone never writes in an existing root, so asking it proves
		// nothing; the writer is what could go wrong.
		wantErr(t, RecordEvent(link, Event{Namespace: 1, Action: "apply", By: "tester"}), ErrUntrustedState, "everyone can write it")
		if after := dirNames(t, pub); !slices.Equal(after, before) {
			t.Fatalf("%s -> %s: something was written in %s: %v, was %v", link, target, pub, after, before)
		}
	}

	// The same links in a private directory lead to a good root.
	own := filepath.Join(base, "own")
	if err := os.MkdirAll(filepath.Join(own, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{".", "sub/.."} {
		link := filepath.Join(own, "link")
		os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if _, err := trustRoot(link); err != nil {
			t.Errorf("%s -> %s, in a private directory: %v", link, target, err)
		}
	}
}

// trustRoot makes the directory it checked. Written with ".." after a
// link, the root as the kernel resolves it (beside the link's target) is
// not the root checked and opened (beside the link), so making the root
// as written made a directory nobody checked, and left the one checked
// missing.
func TestTrustRootMakesWhatItChecked(t *testing.T) {
	base := t.TempDir()
	deep := filepath.Join(base, "other", "deep")
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(deep, filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	root := base + "/link/../new/state"
	if _, err := trustRoot(root); err != nil {
		t.Fatalf("trustRoot(%s): %v", root, err)
	}
	checked := filepath.Join(base, "new", "state")
	fi, err := os.Stat(checked)
	if err != nil {
		t.Fatalf("the root checked was not made: %v", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("the new root %s is %v, not private", checked, fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(base, "other", "new")); err == nil {
		t.Errorf("a directory the check never saw was made: %s", filepath.Join(base, "other", "new"))
	}
	if _, missing, err := checkRoot(root); err != nil || missing {
		t.Errorf("checkRoot after trustRoot: missing %v, %v", missing, err)
	}
}

// Every state file is named below the root that was checked, absolute and
// clean, never below the root as written: after a link, the kernel takes
// ".." from the link's target, and a relative root from the working
// directory, which $PWD (and so the check) may name through a link. The
// plan-signing key was made in a temporary file below the root as
// written, and the namespace's directory and the history below a relative
// root as written: in a directory nobody checked.
func TestStateFilesBelowCheckedRoot(t *testing.T) {
	netnstest.RequireRoot(t)
	cookie, err := nfgen.Cookie("")
	if err != nil {
		t.Fatal(err)
	}
	for _, relative := range []bool{false, true} {
		base := t.TempDir()
		deep := filepath.Join(base, "other", "deep")
		if err := os.MkdirAll(deep, 0o700); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(base, "link")
		if err := os.Symlink(deep, link); err != nil {
			t.Fatal(err)
		}
		// Where the kernel takes the root as written: someone's directory
		// the check never saw. Its mtime moves if anything is made or
		// removed in it.
		unchecked := filepath.Join(base, "other", "state")
		if err := os.Mkdir(unchecked, 0o777); err != nil {
			t.Fatal(err)
		}
		past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := os.Chtimes(unchecked, past, past); err != nil {
			t.Fatal(err)
		}
		checked := filepath.Join(base, "state")
		if relative {
			t.Chdir(link) // and PWD=link, which os.Getwd (filepath.Abs) trusts
			t.Setenv("PORTWARDEN_STATE_DIR", "../state")
		} else {
			t.Setenv("PORTWARDEN_STATE_DIR", link+"/../state")
		}

		if got := RootDir(""); got != checked {
			t.Errorf("relative %v: RootDir = %s, want %s", relative, got, checked)
		}
		if got, want := NamespaceDir("", cookie), filepath.Join(checked, "netns-"+strconv.FormatUint(cookie, 10)); got != want {
			t.Errorf("relative %v: NamespaceDir = %s, want %s", relative, got, want)
		}
		if _, err := planKey(true); err != nil {
			t.Errorf("relative %v: making the plan-signing key: %v", relative, err)
		}
		if _, err := os.Stat(filepath.Join(checked, "plan.key")); err != nil {
			t.Errorf("relative %v: no key in the root checked: %v", relative, err)
		}
		d, err := Open("")
		if err != nil {
			t.Fatalf("relative %v: Open: %v", relative, err)
		}
		Settle()
		if want := NamespaceDir(checked, cookie); d.Path != want {
			t.Errorf("relative %v: the namespace's directory is %s, want %s", relative, d.Path, want)
		}
		if err := RecordEvent("", Event{Action: "apply", By: "tester"}); err != nil {
			t.Errorf("relative %v: RecordEvent: %v", relative, err)
		}
		if ev, err := LastEvent(""); err != nil || ev == nil || ev.By != "tester" {
			t.Errorf("relative %v: LastEvent = %+v, %v", relative, ev, err)
		}
		if _, err := os.Stat(filepath.Join(checked, "history.jsonl")); err != nil {
			t.Errorf("relative %v: no history in the root checked: %v", relative, err)
		}
		entries, _ := os.ReadDir(unchecked)
		fi, err := os.Stat(unchecked)
		if err != nil || len(entries) > 0 || !fi.ModTime().Equal(past) {
			t.Errorf("relative %v: files were made in %s, which was never checked: %v (modified %v)", relative, unchecked, entries, fi.ModTime())
		}
	}
}

// Making a missing state root follows no link. Between the check that
// found it missing and its making, anyone can create the missing name in
// a sticky directory on the way (/tmp): as a link, os.MkdirAll followed
// it and made directories at its target before the check after it
// refused the link; as someone else's directory, it made the root in it.
func TestMakeRootFollowsNoPlantedLink(t *testing.T) {
	netnstest.RequireRoot(t)
	const nobody = 65534
	base := t.TempDir()
	pub := filepath.Join(base, "pub")
	if err := os.Mkdir(pub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pub, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(base, "victim")
	if err := os.Mkdir(victim, 0o700); err != nil {
		t.Fatal(err)
	}
	plant := func(f func(path string) error) {
		t.Helper()
		beforeMakeRoot = func(string) {
			if err := f(filepath.Join(pub, "x")); err != nil {
				t.Error(err)
			}
		}
		t.Cleanup(func() { beforeMakeRoot = nil; os.RemoveAll(filepath.Join(pub, "x")) })
	}
	root := filepath.Join(pub, "x", "state")

	// A link, someone else's, to a directory root can write.
	plant(func(path string) error {
		if err := os.Symlink(victim, path); err != nil {
			return err
		}
		return os.Lchown(path, nobody, nobody)
	})
	_, err := trustRoot(root)
	x := filepath.Join(pub, "x")
	wantErr(t, err, ErrUntrustedState, "the symbolic link "+x+" (owner uid 65534) appeared on the way to the state directory "+root,
		"nothing was made through it", "rm "+x, "PORTWARDEN_STATE_DIR")
	if entries, _ := os.ReadDir(victim); len(entries) > 0 {
		t.Errorf("a directory was made through the planted link %s -> %s: %v", x, victim, entries)
	}
	os.Remove(x)

	// Someone else's directory: refused before the root is made in it.
	plant(func(path string) error {
		if err := os.Mkdir(path, 0o777); err != nil {
			return err
		}
		if err := os.Chmod(path, 0o777); err != nil {
			return err
		}
		return os.Chown(path, nobody, nobody)
	})
	_, err = trustRoot(root)
	wantErr(t, err, ErrUntrustedState, x+" (owner uid 65534, mode 0777), a directory on the way to the state directory "+root+", is not safe", "chown 0 "+x)
	if _, err := os.Lstat(root); err == nil {
		t.Errorf("the state root %s was made in someone else's directory", root)
	}
	os.RemoveAll(x)

	// A file: not a directory.
	plant(func(path string) error { return os.WriteFile(path, nil, 0o600) })
	_, err = trustRoot(root)
	wantErr(t, err, nil, "the state directory "+root+": "+x+" is not a directory")
	beforeMakeRoot = nil
	os.Remove(x)

	// Nothing planted: made, 0700.
	if _, err := trustRoot(root); err != nil {
		t.Fatalf("trustRoot(%s): %v", root, err)
	}
	if fi, err := os.Lstat(root); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("the new root %s: %v, %v", root, fi, err)
	}
}

// Links the check accepts on the way to the root are still taken when the
// root is made: the check resolved them, and the root is made where it
// led, including at the missing target of a link of root's.
func TestMakeRootThroughTrustedLinks(t *testing.T) {
	base := t.TempDir()
	dest := filepath.Join(base, "real")
	if err := os.Mkdir(dest, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"abs": dest, "rel": "real", "dangling": "later"} {
		link := filepath.Join(base, name)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	for root, made := range map[string]string{
		filepath.Join(base, "abs", "a", "state"):      filepath.Join(dest, "a", "state"),
		filepath.Join(base, "rel", "b", "state"):      filepath.Join(dest, "b", "state"),
		filepath.Join(base, "dangling", "c", "state"): filepath.Join(base, "later", "c", "state"),
	} {
		abs, err := trustRoot(root)
		if err != nil || abs != root {
			t.Errorf("trustRoot(%s) = %s, %v", root, abs, err)
			continue
		}
		if fi, err := os.Lstat(made); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %s not made 0700: %v, %v", root, made, fi, err)
		}
	}
}

// dirNames lists the names in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// makeRootAsEnv names the state root that this test binary, run again as
// another user by TestMakeRootAsAnotherUser, makes.
const makeRootAsEnv = "PORTWARDEN_TEST_MAKE_ROOT_AS"

// A user other than root (one given CAP_NET_ADMIN, not CAP_DAC_OVERRIDE)
// makes a state root below a root-owned 0711 directory, which it may pass
// through (search) but not list (read): as os.MkdirAll did, and as the
// kernel resolves the path. makeRoot opened each directory on the way to
// read it (O_RDONLY), and so failed there with EACCES.
func TestMakeRootAsAnotherUser(t *testing.T) {
	if root := os.Getenv(makeRootAsEnv); root != "" {
		// The run as the other user: make the root and say how it went.
		if _, err := trustRoot(root); err != nil {
			t.Fatalf("as uid %d: %v", os.Geteuid(), err)
		}
		return
	}
	netnstest.RequireRoot(t)
	const nobody = 65534
	// The other user must reach this binary and the root: t.TempDir is
	// 0700, so the test makes its own directory, which it removes.
	base, err := os.MkdirTemp("", "portwarden-makeroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "safeapply.test")
	if data, err := os.ReadFile(self); err != nil || os.WriteFile(bin, data, 0o755) != nil {
		t.Fatalf("copy the test binary %s to %s: %v", self, bin, err)
	}
	locked := filepath.Join(base, "locked") // root's: others pass, but cannot list it
	if err := os.Mkdir(locked, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(locked, 0o711); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(locked, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(home, "run", "state")

	cmd := exec.Command(bin, "-test.run=^TestMakeRootAsAnotherUser$", "-test.count=1")
	cmd.Dir = base
	cmd.Env = append(os.Environ(), makeRootAsEnv+"="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("making the state root %s as uid %d, through the root-owned 0711 %s: %v\n%s", root, nobody, locked, err, out)
	}
	for _, dir := range []string{filepath.Dir(root), root} {
		fi, err := os.Lstat(dir)
		if err != nil {
			t.Fatalf("%s was not made: %v", dir, err)
		}
		if uid, _ := ownerOf(fi); !fi.IsDir() || fi.Mode().Perm() != 0o700 || uid != nobody {
			t.Errorf("%s is %v, owner uid %d; want a directory, 0700, of uid %d", dir, fi.Mode(), uid, nobody)
		}
	}
}
