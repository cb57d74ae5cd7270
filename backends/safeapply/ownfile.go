package safeapply

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// ownFile names a state file in openOwnFile's refusals: what it is, what
// someone else could forge by writing it, and what removing it costs.
// secret: reading it is enough to forge (the plan-signing key), so group
// and others may not read it either.
type ownFile struct {
	what, forge, redo string
	secret            bool
}

// openOwnFile opens the state file at path (with flag: to read, or to
// write, creating it 0600) only as a file nobody but root or the
// effective user could have written: not through a link at its name
// (O_NOFOLLOW: O_APPEND would write through a planted link into any
// file, a read would trust any file), without waiting for a writer
// (O_NONBLOCK: a FIFO planted there must not hang the command), and only
// when what was opened is a regular file owned by root or the effective
// user that group and others cannot write (nor read, when secret). The
// checks are of the file
// opened, so nothing can be swapped in after them; fi is what they saw.
// The caller checks the directories above it.
func openOwnFile(path string, flag int, name ownFile) (f *os.File, fi fs.FileInfo, err error) {
	f, err = os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, nil, &untrustedError{path: path, msg: fmt.Sprintf("%s %s is a symbolic link, which portwarden never makes: it was not used. Remove it (rm %s); %s", name.what, path, path, name.redo)}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", name.what, err)
	}
	fi, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("open %s: %w", name.what, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s %s is not a regular file (%s): remove it (rm %s); %s", name.what, path, fileKind(fi.Mode()), path, name.redo)
	}
	uid, _ := ownerOf(fi)
	var why string
	switch {
	case !trustedUID(uid):
		why = fmt.Sprintf("it belongs to uid %d, neither root nor uid %d that runs portwarden", uid, os.Geteuid())
	case name.secret && fi.Mode().Perm()&0o077 != 0:
		why = "its group or everyone can read or write it"
	case fi.Mode().Perm()&0o022 != 0:
		why = writers(fi) + " can write it"
	}
	if why != "" {
		f.Close()
		return nil, nil, &untrustedError{path: path, msg: fmt.Sprintf(
			"%s %s (owner uid %d, mode %04o) is not safe: %s, so someone else could forge %s; it was not used. "+
				"Either remove it (rm %s; %s), or point PORTWARDEN_STATE_DIR at a directory only you can write (the default is %s)",
			name.what, path, uid, fileMode(fi), why, name.forge, path, name.redo, DefaultRoot)}
	}
	return f, fi, nil
}
