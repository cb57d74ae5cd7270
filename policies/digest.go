package policies

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

// InputDigest is a sha256 of everything Load reads for the policy at path
// with opts: the policy files (listed again as Load lists them, so a file
// added to the directory counts and an editor's file does not), the
// variables files, the variable values given, and
// the list files an earlier Load of the same policy read (its ListFiles).
// Load is a pure function of these, so an unchanged digest means an
// unchanged policy, and what it compiled to can be reused without loading
// it again. Any error (a file gone) means: load it.
//
// changed is the last time any of those inputs (or the policy directory)
// changed: the latest status change time, which a write sets and no
// program can set back. A digest taken after a Load describes what that
// Load read only if nothing changed since it began.
func InputDigest(path string, opts Options, lists []string) (digest string, changed time.Time, err error) {
	h := sha256.New()
	info, err := os.Stat(path)
	if err != nil {
		return "", time.Time{}, err
	}
	changed = ctime(info)
	files := []string{path}
	if info.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return "", time.Time{}, err
		}
		files = files[:0]
		for _, e := range entries {
			if !e.IsDir() && IsPolicyFile(e.Name()) {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
		sort.Strings(files)
	}
	hashFile := func(kind, name string) error {
		// Only regular files, looked at before they are opened: a device
		// such as /dev/zero would be read forever, and the open of a named
		// pipe would wait for a writer. The loader then says what is wrong
		// with it.
		limit := MaxFileBytes()
		if kind == "list" {
			limit = MaxListBytes
		}
		f, err := openRegular(name, limit, nil)
		if r, ok := err.(*fileRefusal); ok {
			return fmt.Errorf("%s: %w", name, r)
		}
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if c := ctime(fi); c.After(changed) {
			changed = c
		}
		fmt.Fprintf(h, "%s %q\n", kind, name)
		n, err := io.Copy(h, f)
		fmt.Fprintf(h, "\n%d\n", n)
		return err
	}
	fmt.Fprintf(h, "policy %q\n", path)
	for _, f := range files {
		if err := hashFile("file", f); err != nil {
			return "", time.Time{}, err
		}
	}
	for _, f := range opts.VarFiles {
		if err := hashFile("var-file", f); err != nil {
			return "", time.Time{}, err
		}
	}
	for _, f := range lists {
		if err := hashFile("list", f); err != nil {
			return "", time.Time{}, err
		}
	}
	names := make([]string, 0, len(opts.Vars))
	for k := range opts.Vars {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(h, "var %q %q\n", k, opts.Vars[k])
	}
	var env []string
	for _, kv := range opts.Environ {
		if strings.HasPrefix(kv, EnvPrefix) {
			env = append(env, kv)
		}
	}
	slices.Sort(env)
	for _, kv := range env {
		fmt.Fprintf(h, "env %q\n", kv)
	}
	return hex.EncodeToString(h.Sum(nil)), changed, nil
}

// ctime is a file's status change time (its modification time where the
// platform gives none).
func ctime(fi os.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix())
	}
	return fi.ModTime()
}
