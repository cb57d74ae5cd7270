package safeapply

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Holder says who holds the lock.
type Holder struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
}

// Lock is a held lock; Unlock releases it.
type Lock struct {
	f   *os.File
	dir *Dir
}

// ErrLocked: the lock stayed taken for the whole wait.
var ErrLocked = errors.New("another portwarden command holds the lock")

// Acquire takes the namespace's lock, waiting up to timeout. On time-out
// the error names the holder.
func (d *Dir) Acquire(timeout time.Duration, command string) (*Lock, error) {
	l, _, err := d.acquireUnless(timeout, command, nil)
	return l, err
}

// acquireUnless is Acquire that gives up the wait when a signal comes on
// stop (nil: never), returning it: Ctrl-C while another command holds the
// lock ends apply then, not when the lock is free or the wait times out.
func (d *Dir) acquireUnless(timeout time.Duration, command string, stop <-chan os.Signal) (*Lock, os.Signal, error) {
	deadline := time.Now().Add(timeout)
	for {
		l, err := d.tryAcquire(command, true)
		if err != nil || l != nil {
			return l, nil, err
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("%w after waiting %s: %s; wait for it to finish or raise --lock-timeout", ErrLocked, timeout, d.holderText())
		}
		select {
		case sig := <-stop:
			return nil, sig, nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tryAcquire takes the lock if it is free, and returns nil, nil if it is
// held. The lock file of a directory removed by its holder (destroy, the
// stale sweep) is unlinked: locking it would exclude nobody, so the
// directory is made anew (when recreate) and its new lock file taken.
func (d *Dir) tryAcquire(command string, recreate bool) (*Lock, error) {
	for range 3 {
		f, err := os.OpenFile(d.file("lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if errors.Is(err, fs.ErrNotExist) && recreate {
			if _, err := d.create(); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fileError("lock "+d.file("lock"), err)
		}
		_, current, err := flockCurrent(f, d.file("lock"), unix.LOCK_EX|unix.LOCK_NB)
		if err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, nil
			}
			return nil, fmt.Errorf("lock: %w", err)
		}
		if !current {
			f.Close() // removed under us: lock the file that is there now
			continue
		}
		writeHolder(f, Holder{PID: os.Getpid(), Command: command, Since: time.Now().UTC()})
		return &Lock{f: f, dir: d}, nil
	}
	return nil, fmt.Errorf("lock %s: the state directory keeps being removed; is another portwarden destroying it?", d.file("lock"))
}

// flockCurrent takes an flock on f, opened from path, and reports whether
// f is still the file at path: a file removed or replaced meanwhile
// excludes nobody, so the caller opens path again. held is f's status.
func flockCurrent(f *os.File, path string, how int) (held unix.Stat_t, current bool, err error) {
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		return held, false, err
	}
	var onDisk unix.Stat_t
	current = unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(path, &onDisk) == nil && held.Ino == onDisk.Ino
	return held, current, nil
}

// holderBytes is the size a holder record is padded to: a shorter record
// then overwrites a longer one whole, with no truncate.
const holderBytes = 256

// writeHolder records who holds the lock in the lock file itself, which
// the holder has open: rewriting it in place costs no file created and
// removed on every command. JSON ignores the padding.
func writeHolder(f *os.File, h Holder) {
	data, err := json.Marshal(h)
	if err != nil {
		return
	}
	data = append(data, '\n')
	if len(data) < holderBytes {
		data = append(data, strings.Repeat(" ", holderBytes-len(data))...)
	}
	if _, err := f.WriteAt(data, 0); err == nil {
		if info, err := f.Stat(); err == nil && info.Size() > int64(len(data)) {
			f.Truncate(int64(len(data))) // after a longer record
		}
	}
}

func (d *Dir) holderText() string {
	var h Holder
	ok, err := readJSON(d.file("lock"), &h)
	if !ok || err != nil {
		return "the holder is unknown"
	}
	return fmt.Sprintf("held by pid %d (%s) since %s", h.PID, strings.TrimSpace(h.Command), h.Since.Format(time.RFC3339))
}

// Unlock releases the lock.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
}
