package safeapply

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// staged is a file written in full under a temporary name beside its
// final path, its space reserved, waiting to be renamed into place.
// Everything that can fail for lack of space, a read-only file system or
// permission fails while staging, before the kernel changes; commit only
// renames.
type staged struct {
	tmp, path string
	done      bool
}

// stageFile writes data to a temporary file next to path. Its blocks are
// reserved first (fallocate), so that a full disk is reported now even by
// a file system that would only find out when it writes back; where
// fallocate is not supported the file is synced instead. (A sync made an
// ext4 journal commit of 1-20 ms on every apply, and a record that
// outlived a crash of the machine would describe rules the crash removed.)
// On any failure the temporary file is gone and the error names the path
// and the cause.
func stageFile(path string, data []byte) (*staged, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fileError("create a temporary file beside "+path, err)
	}
	st := &staged{tmp: f.Name(), path: path}
	sync := false
	for range 100 { // a pending signal interrupts tmpfs's fallocate on older kernels
		if err = unix.Fallocate(int(f.Fd()), 0, 0, int64(len(data))); !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		sync, err = true, nil
	}
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(st.tmp)
		return nil, fileError("write "+path, err)
	}
	return st, nil
}

// replaceFile replaces path atomically (a reader sees the old or the new
// file, a symlink planted at path is replaced, never followed) without
// syncing: for caches, whose loss costs only speed.
func replaceFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fileError("create a temporary file beside "+path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fileError("write "+path, err)
	}
	return nil
}

// commit renames the staged file into place. The directory is not
// synced: the rename is seen by every later process even if this one is
// killed, and a crash of the machine takes the kernel's rules with it, so
// a record that outlived it would describe rules no longer there.
func (s *staged) commit() error {
	if s.done {
		return nil
	}
	s.done = true
	if err := os.Rename(s.tmp, s.path); err != nil {
		os.Remove(s.tmp)
		return fileError("rename "+s.tmp+" to "+s.path, err)
	}
	return nil
}

// discard removes the staged file unless it was committed.
func (s *staged) discard() {
	if s != nil && !s.done {
		s.done = true
		os.Remove(s.tmp)
	}
}

// fileError says what failed on which path and why, in words an operator
// acts on.
func fileError(what string, err error) error {
	var hint string
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		hint = "the file system is full: free space there or point PORTWARDEN_STATE_DIR elsewhere"
	case errors.Is(err, syscall.EROFS):
		hint = "the file system is read-only: remount it read-write or point PORTWARDEN_STATE_DIR elsewhere"
	case errors.Is(err, os.ErrPermission):
		hint = "permission denied: run as root, or fix the directory's owner and mode"
	case errors.Is(err, os.ErrNotExist):
		hint = "the directory is gone: was the state directory removed?"
	}
	if hint == "" {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w (%s)", what, err, hint)
}
