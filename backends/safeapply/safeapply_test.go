package safeapply

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

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
