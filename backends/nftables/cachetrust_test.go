package nftables

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/internal/nfgen"
	"github.com/portwarden/portwarden/rules"
)

// cacheRoot is a new state root holding the directory of the namespace at
// nsPath, as safeapply.Open makes it for the CLI's own namespace: the
// backend keeps its cache only where that directory exists.
func cacheRoot(t testing.TB, nsPath string) string {
	t.Helper()
	root := t.TempDir()
	makeNamespaceDir(t, root, nsPath)
	return root
}

// makeNamespaceDir makes the directory of the namespace at nsPath below
// root, 0700, unless it exists, and returns it.
func makeNamespaceDir(t testing.TB, root, nsPath string) string {
	t.Helper()
	cookie, err := nfgen.Cookie(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := safeapply.NamespaceDir(root, cookie)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		t.Fatal(err)
	}
	return dir
}

// cacheFile is where the cache of the namespace cookie lives below root.
func cacheFile(root string, cookie uint64) string {
	return filepath.Join(safeapply.NamespaceDir(root, cookie), cacheFileName)
}

// cacheLab is a namespace holding a small policy (written by a backend
// with no state directory, so that nothing is cached yet), and a fresh
// backend ("process") with state root root, whose reads of the kernel
// save the cache in line (no Config.Later).
func cacheLab(t *testing.T) (nsPath string, rs *rules.Ruleset, fresh func(root string) *Backend) {
	t.Helper()
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, "ctrust")
	rs = benchRuleset(20)
	kernel, _ := New(backends.Config{NetNS: ns.Path()})
	if err := kernel.Apply(context.Background(), mustPlan(t, kernel.(*Backend), rs)); err != nil {
		t.Fatal(err)
	}
	return ns.Path(), rs, func(root string) *Backend {
		b, err := New(backends.Config{NetNS: ns.Path(), StateDir: root})
		if err != nil {
			t.Fatal(err)
		}
		return b.(*Backend)
	}
}

// A backend never makes the state root or a namespace's directory: its
// save runs after commands that only read (status, check, metrics, plan),
// which leave no state behind (safeapply.OpenExisting), and it made them
// with os.MkdirAll.
func TestCacheMakesNoStateDirectory(t *testing.T) {
	_, rs, fresh := cacheLab(t)
	root := filepath.Join(t.TempDir(), "state")
	b := fresh(root)
	mustPlan(t, b, rs) // reads the kernel: a save, were there a directory
	if _, err := os.Lstat(root); err == nil {
		t.Fatalf("reading the kernel made the state root %s", root)
	}
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	b = fresh(root)
	mustPlan(t, b, rs)
	if names := dirEntries(t, root); len(names) > 0 {
		t.Fatalf("reading the kernel made %v in the state root", names)
	}
}

// The state root is checked when the cache is saved, not only when the
// backend is opened: a root missing then passes the check, and a link
// planted in its place afterwards (in /tmp, by anyone) was followed by
// os.MkdirAll, and the cache written wherever it led.
func TestCacheSaveFollowsNoLinkPlantedAfterNew(t *testing.T) {
	_, rs, fresh := cacheLab(t)
	const nobody = 65534
	base := t.TempDir()
	pub := filepath.Join(base, "pub") // as /tmp: anyone may add names
	if err := os.Mkdir(pub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pub, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(base, "victim") // root's: root may write there
	if err := os.Mkdir(victim, 0o700); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(pub, "x", "state")
	for _, owner := range []int{nobody, 0} {
		b := fresh(root) // the root is missing: nothing to refuse yet
		link := filepath.Join(pub, "x")
		if err := os.Symlink(victim, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(link, owner, owner); err != nil {
			t.Fatal(err)
		}
		mustPlan(t, b, rs) // reads the kernel, and saves
		if names := dirEntries(t, victim); len(names) > 0 {
			t.Fatalf("a link of uid %d planted after New was followed: %s holds %v", owner, victim, names)
		}
		os.Remove(link)
	}
}

// The cache is opened only as a regular file nobody else could have
// written, and not through a link: os.Open followed a link to any file,
// read whatever it was, and hung on a FIFO.
func TestCacheReadRefusesPlantedFiles(t *testing.T) {
	nsPath, rs, fresh := cacheLab(t)
	root := cacheRoot(t, nsPath)
	mustPlan(t, fresh(root), rs) // saves the cache
	b := fresh(root)
	cookie, gen := cookieAndGen(t, b)
	path := cacheFile(root, cookie)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the cache was not saved: %v", err)
	}
	elsewhere := filepath.Join(t.TempDir(), "cache")
	if err := os.WriteFile(elsewhere, good, 0o600); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	for _, c := range []struct {
		name  string
		plant func() error
	}{
		{"a link to a good cache", func() error { return os.Symlink(elsewhere, path) }},
		{"a FIFO", func() error { return syscall.Mkfifo(path, 0o600) }},
		{"a file of uid 65534", func() error {
			if err := os.WriteFile(path, good, 0o600); err != nil {
				return err
			}
			return os.Chown(path, nobody, nobody)
		}},
		{"a file its group can write", func() error {
			if err := os.WriteFile(path, good, 0o600); err != nil {
				return err
			}
			return os.Chmod(path, 0o620)
		}},
		{"a file everyone can write", func() error {
			if err := os.WriteFile(path, good, 0o600); err != nil {
				return err
			}
			return os.Chmod(path, 0o602)
		}},
	} {
		os.Remove(path)
		if err := c.plant(); err != nil {
			t.Fatal(err)
		}
		loaded, holds := make(chan bool, 1), make(chan bool, 1)
		go func() {
			loaded <- fresh(root).loadCache(cookie, gen) != nil
			holds <- fresh(root).Holds(rs.Fingerprint())
		}()
		select {
		case l := <-loaded:
			if l {
				t.Errorf("%s at %s was loaded as the cache", c.name, path)
			}
			if <-holds {
				t.Errorf("Holds trusted %s at %s", c.name, path)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("reading %s at %s as the cache hangs", c.name, path)
			// Writers, opened and closed, let each open of the reader
			// return and its read end, and the checks go on.
			done := make(chan struct{})
			go func() {
				for {
					select {
					case <-done:
						return
					case <-time.After(10 * time.Millisecond):
						if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
							w.Close()
						}
					}
				}
			}()
			<-loaded
			<-holds
			close(done)
		}
	}

	// A link is replaced by the next save, not written through.
	os.Remove(path)
	if err := os.Symlink(elsewhere, path); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(elsewhere, []byte("someone's file\n"), 0o600)
	mustPlan(t, fresh(root), rs)
	if data, _ := os.ReadFile(elsewhere); string(data) != "someone's file\n" {
		t.Errorf("the save wrote through the link at %s", path)
	}
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the save did not replace the link at %s: %v, %v", path, fi, err)
	}
	// And the good cache, in place, is used: the refusals above are of
	// the files, not of the cache.
	if fresh(root).loadCache(cookie, gen) == nil {
		t.Fatal("a good cache does not load")
	}
}

// A root or namespace directory someone else could write by the time the
// cache is read or saved is not used, whatever it was when the backend
// was opened.
func TestCacheRootCheckedAtUse(t *testing.T) {
	nsPath, rs, fresh := cacheLab(t)
	const nobody = 65534
	for _, c := range []struct {
		name  string
		spoil func(dir string) error // dir is the namespace's, below the root
	}{
		{"root of uid 65534", func(dir string) error { return os.Chown(filepath.Dir(dir), nobody, nobody) }},
		{"root everyone can write", func(dir string) error { return os.Chmod(filepath.Dir(dir), 0o777) }},
		{"namespace directory of uid 65534", func(dir string) error { return os.Chown(dir, nobody, nobody) }},
		{"namespace directory everyone can write", func(dir string) error { return os.Chmod(dir, 0o777) }},
		{"namespace directory a link", func(dir string) error {
			if err := os.Rename(dir, dir+".real"); err != nil {
				return err
			}
			return os.Symlink(dir+".real", dir)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := cacheRoot(t, nsPath)
			dir := makeNamespaceDir(t, root, nsPath)
			mustPlan(t, fresh(root), rs) // saves the cache
			b := fresh(root)
			cookie, gen := cookieAndGen(t, b)
			if b.loadCache(cookie, gen) == nil {
				t.Fatal("the cache does not load from a good root")
			}
			if err := c.spoil(dir); err != nil {
				t.Fatal(err)
			}
			if b.loadCache(cookie, gen) != nil {
				t.Errorf("with a %s, the cache was read", c.name)
			}
			if b.Holds(rs.Fingerprint()) {
				t.Errorf("with a %s, Holds trusted the cache", c.name)
			}
			// A save: the backend's memory is dropped so that it reads the
			// kernel, whose generation is unchanged: the save must leave
			// the file alone.
			path := filepath.Join(dir, cacheFileName)
			os.Remove(path)
			b.forget()
			mustPlan(t, b, rs)
			if _, err := os.Lstat(path); err == nil {
				t.Errorf("with a %s, the cache was saved", c.name)
			}
		})
	}
}

func dirEntries(t *testing.T, dir string) []string {
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
