package safeapply

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/rules"
)

// kernelBackend holds one ruleset, as a kernel would: Apply installs the
// plan's, Destroy removes it, Current reads it back (or fails with
// readErr).
type kernelBackend struct {
	fakeBackend
	holds   *rules.Ruleset
	readErr error
}

func (k *kernelBackend) Apply(ctx context.Context, p *backends.Plan) error {
	k.fakeBackend.Apply(ctx, p)
	k.holds = p.Desired
	return nil
}

func (k *kernelBackend) Plan(ctx context.Context, rs *rules.Ruleset) (*backends.Plan, error) {
	return &backends.Plan{Backend: k.Name(), Current: &backends.State{Installed: k.holds != nil, Ruleset: k.holds}, Desired: rs}, nil
}

func (k *kernelBackend) Destroy(context.Context) error {
	k.holds = nil
	return nil
}

func (k *kernelBackend) Current(context.Context) (*backends.State, error) {
	if k.readErr != nil {
		return nil, k.readErr
	}
	rs := k.holds
	if rs == nil {
		rs = &rules.Ruleset{}
	}
	return &backends.State{Installed: k.holds != nil, Ruleset: rs}, nil
}

func exposure(name string, port uint16) *rules.Ruleset {
	return &rules.Ruleset{Exposures: []rules.Exposure{{Name: name, Protocol: rules.TCP, Ports: []rules.PortRange{{First: port, Last: port}}}}}
}

// A failed --verify restores the previous rules and leaves the journal as
// it was before the apply (the previous apply's record, or none), so that
// nothing claims the rejected rules were applied; no record of an apply in
// flight or temporary file stays, and the history says the change was
// rolled back. A verification that cannot read the rules back fails the
// same way. One that passes records the new rules.
func TestFailedVerifyKeepsThePreviousRecord(t *testing.T) {
	ctx := context.Background()
	failing := func(context.Context, *backends.State) (bool, string, error) { return false, "FAIL the test block", nil }
	passing := func(context.Context, *backends.State) (bool, string, error) { return true, "", nil }
	old, wrong := exposure("old", 22), exposure("wrong", 27)

	for _, c := range []struct {
		name      string
		installed bool // an apply of old came before
		readErr   error
	}{
		{name: "nothing before", installed: false},
		{name: "an apply before", installed: true},
		{name: "rules not read back", installed: true, readErr: errors.New("netlink: no buffer space")},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, b := testDir(t), &kernelBackend{}
			current := &backends.State{Ruleset: &rules.Ruleset{}}
			if c.installed {
				if err := Apply(ctx, d, b, &backends.Plan{Backend: "fake", Current: current, Desired: old}, Options{Policy: "/etc/portwarden/old.hcl"}); err != nil {
					t.Fatal(err)
				}
				current = &backends.State{Installed: true, Ruleset: old}
			}
			before, _ := os.ReadFile(filepath.Join(d.Path, "applied.json"))
			b.readErr = c.readErr
			err := Apply(ctx, d, b, &backends.Plan{Backend: "fake", Current: current, Desired: wrong}, Options{Verify: failing, Policy: "/etc/portwarden/wrong.hcl"})
			if !errors.Is(err, ErrVerifyFailed) {
				t.Fatalf("err %v, want ErrVerifyFailed", err)
			}
			if c.installed && b.holds.Fingerprint() != old.Fingerprint() || !c.installed && b.holds != nil {
				t.Errorf("the kernel holds %v after the restore", b.holds)
			}
			after, _ := os.ReadFile(filepath.Join(d.Path, "applied.json"))
			if !bytes.Equal(before, after) {
				t.Errorf("the journal changed:\nbefore %s\nafter  %s", before, after)
			}
			if l := leftovers(t, d.Path); len(l) > 0 {
				t.Errorf("left behind: %v", l)
			}
			if a, err := d.Unfinished(); a != nil || err != nil {
				t.Errorf("a failed verification reads as an unfinished apply: %+v %v", a, err)
			}
			ev, err := LastEvent(filepath.Dir(d.Path))
			if err != nil || ev == nil || ev.Action != "rollback" || ev.Policy != "/etc/portwarden/wrong.hcl" || !strings.Contains(ev.Reason, "verif") {
				t.Errorf("last event %+v, %v; want the rollback of the failed verification", ev, err)
			}
		})
	}

	t.Run("passing", func(t *testing.T) {
		d, b := testDir(t), &kernelBackend{}
		if err := Apply(ctx, d, b, &backends.Plan{Backend: "fake", Current: &backends.State{Ruleset: &rules.Ruleset{}}, Desired: wrong}, Options{Verify: passing}); err != nil {
			t.Fatal(err)
		}
		if a, _ := d.LastApplied(); a == nil || a.Fingerprint != wrong.Fingerprint() {
			t.Errorf("journal %+v, want the verified rules", a)
		}
		if l := leftovers(t, d.Path); len(l) > 0 {
			t.Errorf("left behind: %v", l)
		}
	})
}

// While a verification runs, the journal still holds the previous apply
// and the record of the apply in flight stays: a verification cut short
// (the process killed) is an unfinished apply, not an applied one.
func TestVerificationInFlightIsNotRecorded(t *testing.T) {
	ctx := context.Background()
	d, b := testDir(t), &kernelBackend{}
	var journal *Applied
	var applying bool
	verify := func(context.Context, *backends.State) (bool, string, error) {
		journal, _ = d.LastApplied()
		_, err := os.Stat(filepath.Join(d.Path, applyingFile))
		applying = err == nil
		return true, "", nil
	}
	if err := Apply(ctx, d, b, testPlan(), Options{Verify: verify}); err != nil {
		t.Fatal(err)
	}
	if journal != nil || !applying {
		t.Errorf("during the verification: journal %+v, apply in flight recorded %v", journal, applying)
	}
}

// RollbackOwn undoes only the change it was given (by its deadline): once
// that one was confirmed or rolled back, another change awaiting
// confirmation is not its to undo. What it undoes is in the journal and
// the history.
func TestRollbackOwnOnlyItsChange(t *testing.T) {
	ctx := context.Background()
	d, b := testDir(t), &kernelBackend{holds: exposure("new", 27)}
	open := func(string) (backends.Backend, error) { return b, nil }
	deadline := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	if err := d.SetPending(Pending{Backend: "fake", Previous: exposure("old", 22), Deadline: deadline, By: "someone else"}); err != nil {
		t.Fatal(err)
	}
	p, err := RollbackOwn(ctx, d, time.Second, open, deadline.Add(-time.Minute), "tester")
	if p != nil || err != nil {
		t.Fatalf("rolled back another change: %v %v", p, err)
	}
	if still, _ := d.GetPending(); still == nil || b.holds.Fingerprint() != exposure("new", 27).Fingerprint() {
		t.Fatalf("the other change was touched: pending %v, kernel %v", still, b.holds)
	}
	p, err = RollbackOwn(ctx, d, time.Second, open, deadline, "tester (SIGTERM)")
	if p == nil || err != nil {
		t.Fatalf("its own change: %v %v", p, err)
	}
	if b.holds.Fingerprint() != exposure("old", 22).Fingerprint() {
		t.Errorf("the kernel holds %v, want the previous rules", b.holds)
	}
	if still, _ := d.GetPending(); still != nil {
		t.Error("still pending after the rollback")
	}
	if a, _ := d.LastApplied(); a == nil || !a.RolledBack || a.By != "tester (SIGTERM)" {
		t.Errorf("journal %+v", a)
	}
	if ev, _ := LastEvent(filepath.Dir(d.Path)); ev == nil || ev.Action != "rollback" || ev.By != "tester (SIGTERM)" {
		t.Errorf("last event %+v", ev)
	}
}
