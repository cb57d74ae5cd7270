package safeapply

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portwarden/portwarden/internal/nfgen"
	"github.com/portwarden/portwarden/rules"
)

// DefaultRoot is where state lives unless PORTWARDEN_STATE_DIR says
// otherwise.
const DefaultRoot = "/run/portwarden"

// Dir is the state directory of one network namespace.
type Dir struct{ Path string }

// dirPrefix starts the name of every namespace's state directory.
const dirPrefix = "netns-"

// Open returns the state directory of the caller's network namespace
// below root ("" for the default), creating it. When it makes the
// directory (a namespace new to portwarden), it also removes the
// directories of namespaces that no longer exist once there are a few
// (sweepAfter): that walk stats every process, so it runs when namespaces
// come and go, not on every command. The root, and the directory when it
// exists, are used only when nobody but root or the effective user could
// have written them (checkRoot): commands trust the caches and journal
// there.
func Open(root string) (*Dir, error) {
	abs, err := trustRoot(root)
	if err != nil {
		return nil, err
	}
	d, err := ownDir(abs)
	if err != nil {
		return nil, err
	}
	if err := checkStateDir(d.Path); err != nil {
		return nil, err
	}
	made, err := d.create()
	if err != nil {
		return nil, err
	}
	if made {
		Later(func() { sweepStale(abs, d.Path) })
	}
	return d, nil
}

// later is the state work that runs beside a command because only later
// commands need it: the removal of stale directories Open starts (a stat
// of every process, and the files of each directory removed), the
// compile record. Settle waits for it.
var (
	later    sync.WaitGroup
	laterMu  sync.Mutex
	settling bool // Settle is waiting: new work runs in line
)

// Later runs f beside the rest of the command; Settle waits for it.
func Later(f func()) {
	laterMu.Lock()
	if settling {
		laterMu.Unlock()
		f()
		return
	}
	later.Add(1)
	laterMu.Unlock()
	go func() {
		defer later.Done()
		f()
	}()
}

// Settle waits until the work Later started has finished; a command calls
// it before it exits, so that nothing is left half written or half
// removed. Work handed to Later while it waits runs in line (a WaitGroup
// may not grow from zero during a Wait).
func Settle() {
	laterMu.Lock()
	settling = true
	laterMu.Unlock()
	later.Wait()
	laterMu.Lock()
	settling = false
	laterMu.Unlock()
}

// OpenExisting returns the caller's namespace's state directory if it
// exists, nil otherwise: for commands that only read (status, plan), which
// must not leave a directory behind. It is checked as Open checks it.
func OpenExisting(root string) (*Dir, error) {
	abs, missing, err := checkRoot(root)
	if err != nil || missing {
		return nil, err
	}
	d, err := ownDir(abs)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(d.Path); err != nil {
		return nil, nil
	}
	if err := checkStateDir(d.Path); err != nil {
		return nil, err
	}
	return d, nil
}

// ownDir names the caller's namespace's directory below root, the root
// checked (checkRoot, trustRoot).
func ownDir(root string) (*Dir, error) {
	cookie, err := nfgen.Cookie("")
	if err != nil {
		return nil, err
	}
	return &Dir{Path: NamespaceDir(root, cookie)}, nil
}

// create makes the directory (0700: plans of who may get in are nobody
// else's business) and records which namespace it belongs to. made says
// the record was written: the directory is new, or was another
// namespace's once (cookies and inodes start over after a reboot).
func (d *Dir) create() (made bool, err error) {
	if err := os.MkdirAll(d.Path, 0o700); err != nil {
		return false, fmt.Errorf("state directory: %w", err)
	}
	ino, err := namespaceInode("/proc/thread-self/ns/net")
	if err != nil {
		return false, fmt.Errorf("state directory: %w", err)
	}
	rec := d.file("netns")
	if old, err := os.ReadFile(rec); err == nil && strings.TrimSpace(string(old)) == strconv.FormatUint(ino, 10) {
		return false, nil
	}
	// Not synced: a record lost in a crash leaves only a directory the
	// sweep keeps (namespaces do not outlive the crash), and the two syncs
	// were a tenth of a first apply.
	if err := replaceFile(rec, []byte(strconv.FormatUint(ino, 10)+"\n")); err != nil {
		return false, fmt.Errorf("state directory: %w", err)
	}
	return true, nil
}

// Remove deletes the directory; the caller holds its lock, which Remove
// releases. A process waiting for the lock notices that the file it locked
// is gone and takes the lock of the new directory instead (see Acquire).
func (d *Dir) Remove(l *Lock) error {
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		return fmt.Errorf("remove the state directory: %w", err)
	}
	for _, e := range entries {
		if e.Name() != "lock" {
			os.Remove(d.file(e.Name()))
		}
	}
	err = os.Remove(d.file("lock"))
	l.Unlock()
	if err == nil {
		err = os.Remove(d.Path)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the state directory: %w", err)
	}
	return nil
}

// Applied is the journal entry of the last apply.
type Applied struct {
	Fingerprint string    `json:"fingerprint"` // of the desired Ruleset
	Backend     string    `json:"backend"`
	When        time.Time `json:"when"`
	By          string    `json:"by"` // user, and SSH client when there is one
	Policy      string    `json:"policy,omitempty"`
	// RolledBack: the watchdog restored the previous state because the
	// change was not confirmed in time.
	RolledBack bool `json:"rolled_back,omitempty"`
}

// Pending is a change awaiting confirmation.
type Pending struct {
	Backend string `json:"backend"`
	// Previous is the owned state before the change; nil when nothing was
	// installed (rolling back then means destroying).
	Previous    *rules.Ruleset `json:"previous"`
	Deadline    time.Time      `json:"deadline"`
	WatchdogPID int            `json:"watchdog_pid,omitempty"`
	By          string         `json:"by"`
}

func (d *Dir) file(name string) string { return filepath.Join(d.Path, name) }

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(path, append(data, '\n'))
}

// writeFile replaces path atomically: a reader sees the old or the new
// file, and a symlink planted at path is replaced, never followed. The
// temporary file is removed on every failure.
func writeFile(path string, data []byte) error {
	st, err := stageFile(path, data)
	if err != nil {
		return err
	}
	return st.commit()
}

func readJSON(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, &damagedError{path: path, err: err}
	}
	return true, nil
}

// errDamaged: a state file exists but does not parse (errors.Is).
var errDamaged = errors.New("damaged state file")

type damagedError struct {
	path string
	err  error
}

func (e *damagedError) Error() string {
	return fmt.Sprintf("%s is damaged (%v): remove it", e.path, e.err)
}

func (e *damagedError) Is(target error) bool { return target == errDamaged }

// RecordApplied writes the journal entry of an apply.
func (d *Dir) RecordApplied(a Applied) error { return writeJSON(d.file("applied.json"), a) }

// LastApplied reads the journal entry, nil when there is none.
func (d *Dir) LastApplied() (*Applied, error) {
	var a Applied
	ok, err := readJSON(d.file("applied.json"), &a)
	if !ok {
		return nil, err
	}
	return &a, nil
}

// SetPending records a change awaiting confirmation.
func (d *Dir) SetPending(p Pending) error { return writeJSON(d.file("pending.json"), p) }

// GetPending reads the change awaiting confirmation, nil when none.
func (d *Dir) GetPending() (*Pending, error) {
	var p Pending
	ok, err := readJSON(d.file("pending.json"), &p)
	if !ok {
		return nil, err
	}
	return &p, nil
}

// ClearPending forgets the change awaiting confirmation.
func (d *Dir) ClearPending() error {
	err := os.Remove(d.file("pending.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Who describes the person or automation running this process.
func Who() string {
	who := os.Getenv("SUDO_USER")
	if who == "" {
		who = os.Getenv("USER")
	}
	if who == "" {
		who = "uid " + strconv.Itoa(os.Getuid())
	}
	if ssh := os.Getenv("SSH_CONNECTION"); ssh != "" {
		if f := strings.Fields(ssh); len(f) > 0 {
			who += " (ssh from " + f[0] + ")"
		}
	}
	return who
}
