package safeapply

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A backend's cache is kept only where the state root and the namespace's
// directory stand already, and read only from a file nobody else could
// have written; the refusals say which path and what to do.
func TestCacheOnlyWhereStateStands(t *testing.T) {
	const cookie = 7
	root := filepath.Join(t.TempDir(), "state")
	data := []byte("cached\n")

	wantErr(t, ReplaceCache(root, cookie, "x.cache", data), fs.ErrNotExist, "state directory "+root, "only a command that writes state makes it")
	if _, err := os.Lstat(root); err == nil {
		t.Fatalf("saving a cache made the state root %s", root)
	}
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := NamespaceDir(root, cookie)
	wantErr(t, ReplaceCache(root, cookie, "x.cache", data), fs.ErrNotExist, "state directory "+dir)
	_, _, err := OpenCache(root, cookie, "x.cache")
	wantErr(t, err, fs.ErrNotExist, dir)
	if _, err := os.Lstat(dir); err == nil {
		t.Fatalf("saving a cache made the namespace's directory %s", dir)
	}

	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceCache(root, cookie, "x.cache", data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "x.cache")
	f, fi, err := OpenCache(root, cookie, "x.cache")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi.Size() != int64(len(data)) || fi.Mode().Perm() != 0o600 {
		t.Errorf("the cache written is %v, %d bytes; want 0600, %d", fi.Mode(), fi.Size(), len(data))
	}

	elsewhere := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(elsewhere, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		plant  func() error
		target error
		words  []string
	}{
		{"link", func() error { return os.Symlink(elsewhere, path) }, ErrUntrustedState,
			[]string{"the cache " + path + " is a symbolic link", "rm " + path}},
		{"FIFO", func() error { return syscall.Mkfifo(path, 0o600) }, nil,
			[]string{"the cache " + path + " is not a regular file (a FIFO)", "rm " + path}},
		{"writable by everyone", func() error {
			if err := os.WriteFile(path, data, 0o600); err != nil {
				return err
			}
			return os.Chmod(path, 0o606)
		}, ErrUntrustedState, []string{"the cache " + path + " (owner uid", "mode 0606) is not safe: everyone can write it", "rm " + path, "PORTWARDEN_STATE_DIR"}},
	} {
		os.Remove(path)
		if err := c.plant(); err != nil {
			t.Fatal(err)
		}
		_, _, err := OpenCache(root, cookie, "x.cache")
		wantErr(t, err, c.target, c.words...)
	}

	// A save replaces a link, never writes through it.
	os.Remove(path)
	if err := os.Symlink(elsewhere, path); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceCache(root, cookie, "x.cache", []byte("new\n")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(elsewhere); string(got) != string(data) {
		t.Errorf("the save wrote through the link at %s: %q", path, got)
	}

	// A root others can write: nothing below it is used.
	if err := os.Chmod(root, 0o777); err != nil {
		t.Fatal(err)
	}
	_, _, err = OpenCache(root, cookie, "x.cache")
	wantErr(t, err, ErrUntrustedState, "the state directory "+root, "everyone can write it")
	wantErr(t, ReplaceCache(root, cookie, "x.cache", data), ErrUntrustedState, "everyone can write it")
}
