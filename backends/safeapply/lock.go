package safeapply

import (
	"encoding/json"
	"errors"
	"fmt"
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
	f, err := os.OpenFile(d.file("lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock: %w", err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w after waiting %s: %s; wait for it to finish or raise --lock-timeout", ErrLocked, timeout, d.holderText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	h := Holder{PID: os.Getpid(), Command: command, Since: time.Now().UTC()}
	if data, err := json.Marshal(h); err == nil {
		os.WriteFile(d.file("lock.holder"), data, 0o600)
	}
	return &Lock{f: f, dir: d}, nil
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
