package safeapply

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
)

// State of a namespace that is gone is removed by the next run in any
// namespace; the state of live namespaces stays.
func TestStaleNamespaceStateIsRemoved(t *testing.T) {
	root := t.TempDir()
	gone, err := netns.New("state")
	if err != nil {
		netnstest.RequireRoot(t)
		t.Fatal(err)
	}
	defer gone.Close()
	kept := netnstest.New(t, "state")
	var goneDir, keptDir *Dir
	if err := netns.DoPath(gone.Path(), func() (err error) { goneDir, err = Open(root); return err }); err != nil {
		t.Fatal(err)
	}
	if err := netns.DoPath(kept.Path(), func() (err error) { keptDir, err = Open(root); return err }); err != nil {
		t.Fatal(err)
	}
	if err := goneDir.RecordApplied(Applied{Fingerprint: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	self, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(goneDir.Path); !os.IsNotExist(err) {
		t.Errorf("state of the deleted namespace is still there: %v", err)
	}
	for _, d := range []*Dir{keptDir, self} {
		if _, err := os.Stat(filepath.Join(d.Path, "netns")); err != nil {
			t.Errorf("state of a live namespace was removed: %v", err)
		}
	}
}

// Destroy's Remove releases the lock; a waiter then locks a new directory,
// not the unlinked file, so two holders never exist.
func TestRemoveUnderLockKeepsExclusion(t *testing.T) {
	d := testDir(t)
	l, err := d.Acquire(0, "destroy")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(l); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.Path); !os.IsNotExist(err) {
		t.Fatalf("directory still there: %v", err)
	}
	a, err := d.Acquire(0, "apply")
	if err != nil || a == nil {
		t.Fatalf("acquire after remove: %v", err)
	}
	defer a.Unlock()
	if b, err := d.tryAcquire("other", true); err != nil || b != nil {
		t.Fatalf("a second holder got the lock: %v %v", b, err)
	}
}

// A symlink planted where a state file goes is replaced, never followed.
func TestStateFileSymlinkIsNotFollowed(t *testing.T) {
	d := testDir(t)
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, d.file("applied.json")); err != nil {
		t.Fatal(err)
	}
	if err := d.RecordApplied(Applied{Fingerprint: "abc"}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(victim); string(data) != "precious\n" {
		t.Errorf("the symlink's target was written: %q", data)
	}
	if fi, err := os.Lstat(d.file("applied.json")); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("applied.json is still a symlink: %v", err)
	}
	if fi, err := os.Stat(d.Path); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v, want 0700 (%v)", fi.Mode().Perm(), err)
	}
}
