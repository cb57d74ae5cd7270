package safeapply

import (
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/internal/nfgen"
)

// The history is trusted as the rest of the state: not in a root others
// can write, and not as a link, another user's file or one others can
// write. A planted destroy would otherwise have status and check take rules
// missing from the kernel for rules removed on purpose, and an append
// through a planted link would write into any file.
func TestHistoryTrustedAsTheState(t *testing.T) {
	cookie, err := nfgen.Cookie("")
	if err != nil {
		t.Fatal(err)
	}
	forged, err := json.Marshal(Event{Namespace: cookie, Action: "destroy", When: time.Now().UTC(), By: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	forged = append(forged, '\n')
	plant := func(path string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, forged, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	unchanged := func(path string) {
		t.Helper()
		if data, err := os.ReadFile(path); err != nil || string(data) != string(forged) {
			t.Errorf("%s was written to: %q, %v", path, data, err)
		}
	}

	// A root everyone can write: the file in it is not read, nor appended to.
	root := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o777); err != nil {
		t.Fatal(err)
	}
	path := historyPath(root)
	plant(path, 0o600)
	ev, err := LastEvent(root)
	if ev != nil {
		t.Errorf("read %+v from a history in a state root everyone can write", ev)
	}
	wantErr(t, err, ErrUntrustedState, "the state directory "+root, "everyone can write it", "chmod go-w "+root, "PORTWARDEN_STATE_DIR")
	err = RecordEvent(root, Event{Action: "apply", By: "tester"})
	wantErr(t, err, ErrUntrustedState, "the state directory "+root, "everyone can write it")
	unchanged(path)

	// The root made private again: the file left in it is judged itself.
	if err := os.Chmod(root, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o666)
	_, err = LastEvent(root)
	wantErr(t, err, ErrUntrustedState, "the history "+path+" (owner uid", "mode 0666) is not safe: everyone can write it", "rm "+path)
	err = RecordEvent(root, Event{Action: "apply", By: "tester"})
	wantErr(t, err, ErrUntrustedState, "the history "+path)
	unchanged(path)

	// A link: never followed, to read or to append.
	target := filepath.Join(t.TempDir(), "target")
	plant(target, 0o600)
	os.Remove(path)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	_, err = LastEvent(root)
	wantErr(t, err, ErrUntrustedState, "the history "+path+" is a symbolic link", "rm "+path)
	err = RecordEvent(root, Event{Action: "apply", By: "tester"})
	wantErr(t, err, ErrUntrustedState, "symbolic link")
	unchanged(target)

	// Not a regular file.
	os.Remove(path)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LastEvent(root)
	wantErr(t, err, nil, "the history "+path+" is not a regular file (a FIFO)", "rm "+path)

	// Removed as told: recorded and read again.
	os.Remove(path)
	if err := RecordEvent(root, Event{Action: "apply", By: "tester"}); err != nil {
		t.Fatal(err)
	}
	if ev, err := LastEvent(root); err != nil || ev == nil || ev.By != "tester" {
		t.Fatalf("after removing it: %+v, %v", ev, err)
	}

	// Another user's file in a private root (left from when the root was
	// open, or put there by root for them).
	netnstest.RequireRoot(t)
	const nobody = 65534
	if err := os.Chown(path, nobody, -1); err != nil {
		t.Fatal(err)
	}
	_, err = LastEvent(root)
	wantErr(t, err, ErrUntrustedState, "(owner uid 65534, mode 0600) is not safe: it belongs to uid 65534")
	err = RecordEvent(root, Event{Action: "apply", By: "tester"})
	wantErr(t, err, ErrUntrustedState, "it belongs to uid 65534")
}
