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
	deadline := time.Now().Add(timeout)
	for {
		l, err := d.tryAcquire(command, true)
		if err != nil || l != nil {
			return l, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w after waiting %s: %s; wait for it to finish or raise --lock-timeout", ErrLocked, timeout, d.holderText())
		}
		time.Sleep(50 * time.Millisecond)
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
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, nil
			}
			return nil, fmt.Errorf("lock: %w", err)
		}
		var held, onDisk unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) != nil || unix.Stat(d.file("lock"), &onDisk) != nil || held.Ino != onDisk.Ino {
			f.Close() // removed under us: lock the file that is there now
			continue
		}
		h := Holder{PID: os.Getpid(), Command: command, Since: time.Now().UTC()}
		if data, err := json.Marshal(h); err == nil {
			os.WriteFile(d.file("lock.holder"), data, 0o600)
		}
		return &Lock{f: f, dir: d}, nil
	}
	return nil, fmt.Errorf("lock %s: the state directory keeps being removed; is another portwarden destroying it?", d.file("lock"))
}

func (d *Dir) holderText() string {
	var h Holder
	ok, err := readJSON(d.file("lock.holder"), &h)
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
	os.Remove(l.dir.file("lock.holder"))
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
}
