package monitor

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/rules"
)

// fakeBackend answers Current and Counters as told.
type fakeBackend struct {
	backends.Backend
	name      string
	st        *backends.State
	counters  []backends.Counter
	err, cerr error
}

func (f *fakeBackend) Name() string { return f.name }

func (f *fakeBackend) Current(context.Context) (*backends.State, error) {
	return f.st, f.err
}

func (f *fakeBackend) Counters(context.Context) ([]backends.Counter, error) {
	return f.counters, f.cerr
}

func installed() *backends.State {
	return &backends.State{Installed: true, Drift: []string{"chain changed by hand"},
		Ruleset: &rules.Ruleset{Exposures: []rules.Exposure{{Name: "ssh", Default: rules.Drop, Allow: pfx("198.18.1.7/32")}}}}
}

// TestTakeKernel: the kernel's state and counters, with no state
// directory to read.
func TestTakeKernel(t *testing.T) {
	st := installed()
	b := &fakeBackend{name: "nftables", st: st, counters: []backends.Counter{{Exposure: "ssh", Rule: "allow4", Packets: 3}}}
	before := time.Now()
	s, err := Take(context.Background(), b, filepath.Join(t.TempDir(), "none"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Backend != "nftables" || !s.Installed || s.Ruleset != st.Ruleset || len(s.Drift) != 1 || len(s.Counters) != 1 ||
		s.Fingerprint != st.Ruleset.Fingerprint() || s.Taken.Before(before) {
		t.Errorf("%+v", s)
	}
	if s.Applied != nil || s.Pending != nil || s.LastEvent != nil || !s.LastApply.IsZero() || s.Missing || !s.PendingUntil.IsZero() {
		t.Errorf("nothing recorded: %+v", s)
	}

	b.err = errors.New("no privileges")
	if _, err := Take(context.Background(), b, ""); err != b.err {
		t.Errorf("Current fails: %v", err)
	}
	b.err, b.cerr = nil, errors.New("no counters")
	if _, err := Take(context.Background(), b, ""); err != b.cerr {
		t.Errorf("Counters fails: %v", err)
	}
}

// TestTakeRecords: the records of the state directory, as status prints
// them, and what check and metrics judge from them.
func TestTakeRecords(t *testing.T) {
	when := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	a := safeapply.Applied{Fingerprint: "fp", Backend: "nftables", When: when, By: "alice", Policy: "/etc/portwarden"}
	root := stateRoot(t, a, nil)
	deadline := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
	if err := stateDir(t, root).SetPending(safeapply.Pending{Backend: "nftables", Deadline: deadline, By: "alice"}); err != nil {
		t.Fatal(err)
	}
	gone := &fakeBackend{name: "nftables", st: &backends.State{Ruleset: &rules.Ruleset{}}}
	s, err := Take(context.Background(), gone, root)
	if err != nil {
		t.Fatal(err)
	}
	if s.Applied == nil || *s.Applied != a || s.Pending == nil || s.Pending.By != "alice" || !s.PendingUntil.Equal(deadline) {
		t.Errorf("records: %+v %+v", s.Applied, s.Pending)
	}
	if !s.LastApply.Equal(when) || s.AppliedFingerprint != "fp" || !s.Missing || s.LastEvent != nil {
		t.Errorf("the applied rules are gone from the kernel: %+v", s)
	}

	// Applied with another backend: the record, but nothing of this one.
	s, err = Take(context.Background(), &fakeBackend{name: "iptables", st: gone.st}, root)
	if err != nil {
		t.Fatal(err)
	}
	if s.Applied == nil || !s.LastApply.IsZero() || s.AppliedFingerprint != "" || s.Missing {
		t.Errorf("another backend: %+v", s)
	}

	// A destroy since: nothing is missing, and the event is read.
	if err := safeapply.RecordEvent(root, safeapply.Event{Action: "destroy", When: when.Add(time.Minute), By: "bob"}); err != nil {
		t.Fatal(err)
	}
	s, err = Take(context.Background(), gone, root)
	if err != nil {
		t.Fatal(err)
	}
	if s.LastEvent == nil || s.LastEvent.Action != "destroy" || s.LastEvent.By != "bob" || s.Missing {
		t.Errorf("destroyed: %+v %+v", s.LastEvent, s)
	}
}

// TestTakeHistoryWithoutDirectory: destroy removes the namespace's
// directory, and the history still says who destroyed the rules.
func TestTakeHistoryWithoutDirectory(t *testing.T) {
	root := t.TempDir()
	if err := safeapply.RecordEvent(root, safeapply.Event{Action: "destroy", By: "bob"}); err != nil {
		t.Fatal(err)
	}
	s, err := Take(context.Background(), &fakeBackend{name: "nftables", st: &backends.State{Ruleset: &rules.Ruleset{}}}, root)
	if err != nil {
		t.Fatal(err)
	}
	if s.Applied != nil || s.LastEvent == nil || s.LastEvent.By != "bob" || s.Missing {
		t.Errorf("%+v %+v", s, s.LastEvent)
	}
}
