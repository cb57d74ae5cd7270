package safeapply

import (
	"os"
	"path/filepath"
	"strconv"
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
		_, err := trustRoot(link)
		wantErr(t, err, ErrUntrustedState, pub+" (owner uid", "mode 1777), where the state directory "+link+" leads, is not safe: everyone can write it", "chmod go-w "+pub, "PORTWARDEN_STATE_DIR")
		wantErr(t, CheckRoot(link), ErrUntrustedState, "everyone can write it")
		if _, err := os.Stat(filepath.Join(pub, "history.jsonl")); err == nil {
			t.Fatalf("%s -> %s: something was written in %s", link, target, pub)
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
