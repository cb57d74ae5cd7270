package policies

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// fileRefusal says why a file was not read: it is not a regular file (a
// device such as /dev/zero would be read forever), or it is over the limit.
type fileRefusal struct {
	Kind  string // "a directory", "a device", "a named pipe", "a socket", "a special file"; empty: too large
	Size  int64  // with too large: the size seen (-1: it grew while being read)
	Limit int64
}

func (r *fileRefusal) Error() string {
	switch {
	case r.Kind != "":
		return "not a regular file (" + r.Kind + ")"
	case r.Size < 0:
		return fmt.Sprintf("grew over the limit of %d bytes while being read", r.Limit)
	}
	return fmt.Sprintf("%d bytes, over the limit of %d bytes", r.Size, r.Limit)
}

// admit refuses what is not a regular file and files over limit, before a
// byte of them is read.
func admit(info fs.FileInfo, limit int64) *fileRefusal {
	if !info.Mode().IsRegular() {
		kind := "a special file"
		switch t := info.Mode().Type(); {
		case t&fs.ModeDir != 0:
			kind = "a directory"
		case t&fs.ModeDevice != 0:
			kind = "a device"
		case t&fs.ModeNamedPipe != 0:
			kind = "a named pipe"
		case t&fs.ModeSocket != 0:
			kind = "a socket"
		}
		return &fileRefusal{Kind: kind}
	}
	if info.Size() > limit {
		return &fileRefusal{Size: info.Size(), Limit: limit}
	}
	return nil
}

// readAdmitted reads an open file that admit accepts, refusing one that
// grew past limit since (the check and the read are not atomic). A refusal
// comes back as a *fileRefusal.
func readAdmitted(f fs.File, limit int64) ([]byte, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if r := admit(info, limit); r != nil {
		return nil, r
	}
	// Sized from the file's size: io.ReadAll's doubling copied and faulted
	// in a 16 MB list several times over.
	buf := bytes.NewBuffer(make([]byte, 0, min(info.Size(), limit)+bytes.MinRead))
	_, err = buf.ReadFrom(io.LimitReader(f, limit+1))
	data := buf.Bytes()
	if err == nil && int64(len(data)) > limit {
		return nil, &fileRefusal{Size: -1, Limit: limit}
	}
	return data, err
}

// openRegular opens a file of the operating system only if it is a
// regular file of at most limit bytes, without ever blocking: it looks
// before it opens, so a device or a pipe is never opened, and it opens
// without waiting (O_NONBLOCK) and looks again at what it opened, so a
// file replaced by a named pipe in between cannot hang the open of a
// pipe nobody writes to. A refusal comes back as a *fileRefusal. want,
// if not nil, is the file a trust check judged: the one opened must be
// that file.
func openRegular(name string, limit int64, want fs.FileInfo) (*os.File, error) {
	info, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if r := admit(info, limit); r != nil {
		return nil, r
	}
	if want != nil && !os.SameFile(info, want) {
		return nil, errReplaced
	}
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	opened, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if r := admit(opened, limit); r != nil {
		f.Close()
		return nil, r
	}
	if !os.SameFile(info, opened) {
		f.Close()
		return nil, errReplaced
	}
	// A regular file: reads of it must wait for the disk (a network file
	// system may otherwise answer EAGAIN).
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// openJudged opens name as openRegular does, when a trust check ran
// (trust.go): only if it is want, the regular file the check judged. If
// the check judged none (want is nil: the name did not exist, or led to
// something else than a regular file), nothing is opened: what is there
// now has not been judged, whoever made it. The error then says what is
// wrong with name as it is now: that it does not exist, or is not a
// regular file, or that it appeared after the check.
func openJudged(name string, limit int64, want fs.FileInfo) (*os.File, error) {
	if want != nil {
		return openRegular(name, limit, want)
	}
	info, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if r := admit(info, limit); r != nil {
		return nil, r
	}
	return nil, errUnjudged
}

// errUnjudged: a file that was not there (or could not be followed) when
// its trust was checked.
var errUnjudged = errors.New("it was not there when portwarden checked who can write it and the directories on its way, so it was not read; run the command again")

// errReplaced: a file changed into another between two looks at it.
var errReplaced = errors.New("it was replaced while being opened; run the command again")
