package safeapply

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portwarden/portwarden/internal/nfgen"
)

// Event is one line of the history: what changed the firewall of a
// namespace, when and by whom. Unlike a namespace's directory, which
// destroy removes, the history outlives destroy, so status can say that
// the rules were destroyed and by whom.
type Event struct {
	Namespace uint64    `json:"netns_cookie"`
	Action    string    `json:"action"` // "apply", "destroy", "rollback"
	When      time.Time `json:"when"`
	By        string    `json:"by"`
	Backend   string    `json:"backend,omitempty"`
	Policy    string    `json:"policy,omitempty"`
	// Reason says why a rollback happened when By does not: a failed
	// apply --verify.
	Reason string `json:"reason,omitempty"`
}

// historyKeep bounds the history: once it grows past historyTrimBytes
// (about twice this many lines) it is trimmed to its newest historyKeep
// lines and at most half that size, so it never grows without end.
const (
	historyKeep      = 200
	historyTrimBytes = 2 * historyKeep * 256
)

func historyPath(root string) string { return filepath.Join(RootDir(root), "history.jsonl") }

// RecordEvent appends an event of the caller's namespace to the history
// under root ("" for the default), in a state root and a file nobody else
// could have written (trustRoot, openHistory): O_APPEND would follow a
// link planted there into any file. Failures are returned for the caller
// to report; the history is a convenience, never a reason to fail a change.
func RecordEvent(root string, e Event) error {
	if e.Namespace == 0 {
		c, err := nfgen.Cookie("")
		if err != nil {
			return err
		}
		e.Namespace = c
	}
	if e.When.IsZero() {
		e.When = time.Now().UTC()
	}
	if e.By == "" {
		e.By = Who()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	abs, err := trustRoot(root)
	if err != nil {
		return err
	}
	path := historyPath(abs)
	// Appended under an flock of the file (commands in other namespaces
	// may append, or trim, at the same moment) and not synced, like the
	// other conveniences.
	for range 3 {
		f, err := openHistory(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE)
		if err != nil {
			return err
		}
		held, current, err := flockCurrent(f, path, unix.LOCK_EX)
		if err != nil {
			f.Close()
			return err
		}
		if !current {
			f.Close() // trimmed (replaced) meanwhile: append to the file there now
			continue
		}
		_, err = f.Write(append(line, '\n'))
		if err == nil && held.Size+int64(len(line)+1) > historyTrimBytes {
			err = trimHistory(path)
		}
		if cerr := f.Close(); err == nil { // releases the lock
			err = cerr
		}
		return err
	}
	return fmt.Errorf("append to %s: the file keeps being replaced", path)
}

// trimHistory keeps the newest lines, at most historyKeep and at most half
// of historyTrimBytes, replacing the file atomically; the caller holds
// the file's lock.
func trimHistory(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > historyKeep {
		lines = lines[len(lines)-historyKeep:]
	}
	kept := bytes.Join(lines, nil)
	for len(kept) > historyTrimBytes/2 && len(lines) > 1 {
		kept, lines = kept[len(lines[0]):], lines[1:]
	}
	return replaceFile(path, kept)
}

// LastEvent returns the newest event of the caller's namespace, nil when
// there is none. The history is read only from a state root and a file
// nobody else could have written (checkRoot, openHistory), as the rest of
// the state: a forged destroy there would have check take rules missing
// from the kernel for rules removed on purpose.
func LastEvent(root string) (*Event, error) {
	c, err := nfgen.Cookie("")
	if err != nil {
		return nil, err
	}
	abs, missing, err := checkRoot(root)
	if err != nil || missing {
		return nil, err
	}
	f, err := openHistory(historyPath(abs), os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var last *Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e Event
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Namespace == c {
			last = &e
		}
	}
	return last, sc.Err()
}

// historyFile names the history in the refusals of openOwnFile.
var historyFile = ownFile{
	what:  "the history",
	forge: "who applied or destroyed the rules (a forged destroy hides rules missing from the kernel from status and check)",
	redo:  "the next apply or destroy starts a new history",
}

// openHistory opens the history at path (with flag: to read, or to append,
// creating it 0600), trusting it only as the plan-signing key is trusted
// (openOwnFile). The caller checks the state root above it.
func openHistory(path string, flag int) (*os.File, error) {
	f, _, err := openOwnFile(path, flag, historyFile)
	return f, err
}
