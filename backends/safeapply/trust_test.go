package safeapply

import (
	"os"
	"path/filepath"
	"testing"
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
		err := trustRoot(link)
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
		if err := trustRoot(link); err != nil {
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
	if err := trustRoot(root); err != nil {
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
	if missing, err := checkRoot(root); err != nil || missing {
		t.Errorf("checkRoot after trustRoot: missing %v, %v", missing, err)
	}
}
