package safeapply

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
)

// State of a namespace that is gone is removed by the next run in any
// namespace; the state of live namespaces stays. The namespaces are made
// and deleted by `ip netns` so that no thread of this process ever enters
// them (a Go program's main thread, once in a namespace, keeps it alive).
func TestStaleNamespaceStateIsRemoved(t *testing.T) {
	netnstest.RequireRoot(t)
	setSweepAfter(t, 1)
	root := t.TempDir()
	stateOf := func(label string) (name, dir string) {
		name = fmt.Sprintf("%sstate-%s-%d", netns.Prefix(), label, os.Getpid())
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
		ino, err := namespaceInode("/run/netns/" + name)
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, dirPrefix+label)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "netns"), []byte(fmt.Sprintln(ino)), 0o600); err != nil {
			t.Fatal(err)
		}
		return name, dir
	}
	gone, goneDir := stateOf("gone")
	_, keptDir := stateOf("kept")
	if out, err := exec.Command("ip", "netns", "del", gone).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del: %v: %s", err, out)
	}
	self, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	Settle()
	if _, err := os.Stat(goneDir); !os.IsNotExist(err) {
		t.Errorf("state of the deleted namespace is still there: %v", err)
	}
	for _, d := range []string{keptDir, self.Path} {
		if _, err := os.Stat(filepath.Join(d, "netns")); err != nil {
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

// The walk over every process waits until sweepAfter other directories
// have gathered, then removes every stale one at once.
func TestSweepWaitsForSeveralStaleDirectories(t *testing.T) {
	setSweepAfter(t, 3)
	root := t.TempDir()
	stale := func(i int) string {
		dir := filepath.Join(root, fmt.Sprintf("%sstale%d", dirPrefix, i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		// Inode 1 is never a namespace's.
		if err := os.WriteFile(filepath.Join(dir, "netns"), []byte("1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	self := filepath.Join(root, dirPrefix+"self")
	if err := os.MkdirAll(self, 0o700); err != nil {
		t.Fatal(err)
	}
	dirs := []string{stale(1), stale(2)}
	sweepStale(root, self)
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("%s went with only %d stale directories: %v", d, len(dirs), err)
		}
	}
	dirs = append(dirs, stale(3))
	sweepStale(root, self)
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s is still there after the sweep: %v", d, err)
		}
	}
	if _, err := os.Stat(self); err != nil {
		t.Errorf("the sweep removed its own directory: %v", err)
	}
}

// setSweepAfter sets sweepAfter for one test, with no sweep of an earlier
// test still running in the background to read it meanwhile.
func setSweepAfter(t *testing.T, n int) {
	Settle()
	old := sweepAfter
	sweepAfter = n
	t.Cleanup(func() {
		Settle()
		sweepAfter = old
	})
}
