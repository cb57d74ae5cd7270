package safeapply

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portwarden/portwarden/internal/nfgen"
	"github.com/portwarden/portwarden/rules"
)

func testDir(t *testing.T) *Dir {
	t.Helper()
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLockContentionNamesTheHolder(t *testing.T) {
	d := testDir(t)
	held, err := d.Acquire(time.Second, "portwarden apply --policy prod.hcl")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = d.Acquire(300*time.Millisecond, "portwarden destroy")
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second acquire: %v, want ErrLocked", err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("gave up after %s, before the lock timeout", waited)
	}
	for _, want := range []string{"pid " + strconv.Itoa(os.Getpid()), "portwarden apply --policy prod.hcl", "--lock-timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// The second waits and gets the lock once the first lets go.
	go func() { time.Sleep(200 * time.Millisecond); held.Unlock() }()
	l, err := d.Acquire(5*time.Second, "portwarden destroy")
	if err != nil {
		t.Fatalf("waiting acquire: %v", err)
	}
	// The holder is recorded in the lock file, rewritten in place: a
	// shorter record over a longer one still names the new holder.
	if _, err := d.Acquire(0, "portwarden confirm"); err == nil || !strings.Contains(err.Error(), "(portwarden destroy) since") {
		t.Errorf("while destroy holds the lock: %v", err)
	}
	l.Unlock()
}

func TestPendingAndJournalRoundTrip(t *testing.T) {
	d := testDir(t)
	if p, err := d.GetPending(); p != nil || err != nil {
		t.Fatalf("fresh dir has pending %v %v", p, err)
	}
	prev := &rules.Ruleset{Exposures: []rules.Exposure{{Name: "nscp", Protocol: rules.TCP, Default: rules.Drop}}}
	deadline := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
	if err := d.SetPending(Pending{Backend: "nftables", Previous: prev, Deadline: deadline, By: "tester"}); err != nil {
		t.Fatal(err)
	}
	p, err := d.GetPending()
	if err != nil || p == nil || !p.Deadline.Equal(deadline) || p.Previous.Exposures[0].Name != "nscp" {
		t.Fatalf("pending = %+v, %v", p, err)
	}
	got, err := Confirm(d, time.Second)
	if err != nil || got == nil {
		t.Fatalf("confirm: %v %v", got, err)
	}
	if p, _ := d.GetPending(); p != nil {
		t.Error("confirm left the change pending")
	}
	if err := d.RecordApplied(Applied{Fingerprint: "abc", Backend: "nftables", By: "tester"}); err != nil {
		t.Fatal(err)
	}
	if a, err := d.LastApplied(); err != nil || a.Fingerprint != "abc" {
		t.Errorf("journal = %+v %v", a, err)
	}
}

// The history is appended to, and trimmed to its newest lines once it
// grows past its bound: it never grows without end, and the newest event
// is always the last line.
func TestHistoryBounded(t *testing.T) {
	root := t.TempDir()
	cookie, err := nfgen.Cookie("")
	if err != nil {
		t.Fatal(err)
	}
	most := 0
	for i := range 3 * historyKeep {
		if err := RecordEvent(root, Event{Namespace: cookie, Action: "apply", By: "tester", Policy: fmt.Sprintf("/etc/portwarden/%d", i)}); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(historyPath(root))
		if err != nil {
			t.Fatal(err)
		}
		most = max(most, len(data))
	}
	if most > historyTrimBytes+512 {
		t.Errorf("the history grew to %d bytes, past its bound of %d", most, historyTrimBytes)
	}
	last, err := LastEvent(root)
	if err != nil || last == nil || last.Policy != fmt.Sprintf("/etc/portwarden/%d", 3*historyKeep-1) {
		t.Fatalf("last event %+v, %v", last, err)
	}
}
