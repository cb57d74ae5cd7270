package safeapply

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/rules"
)

// fakeBackend records applies; only Apply and Name are used by Apply.
type fakeBackend struct {
	backends.Backend
	applied int
	during  func()
}

func (f *fakeBackend) Name() string { return "fake" }
func (f *fakeBackend) Apply(ctx context.Context, p *backends.Plan) error {
	f.applied++
	if f.during != nil {
		f.during()
	}
	return nil
}

func testPlan() *backends.Plan {
	return &backends.Plan{Backend: "fake", Current: &backends.State{Ruleset: &rules.Ruleset{}},
		Desired: &rules.Ruleset{Exposures: []rules.Exposure{{Name: "nscp", Protocol: rules.TCP, Ports: []rules.PortRange{{First: 27, Last: 27}}}}}}
}

func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if _, err := os.Stat(filepath.Join(dir, applyingFile)); err == nil {
		m = append(m, applyingFile)
	}
	return m
}

// Each path out of Apply leaves no temporary file and no record of an apply
// in flight; the error type says whether the kernel changed.
func TestApplyPathsLeaveNothingBehind(t *testing.T) {
	ctx := context.Background()
	t.Run("ok", func(t *testing.T) {
		d, b := testDir(t), &fakeBackend{}
		if err := Apply(ctx, d, b, testPlan(), Options{}); err != nil {
			t.Fatal(err)
		}
		if a, _ := d.LastApplied(); a == nil || a.Fingerprint != testPlan().Desired.Fingerprint() {
			t.Errorf("journal %+v", a)
		}
		if l := leftovers(t, d.Path); len(l) > 0 {
			t.Errorf("left behind: %v", l)
		}
	})
	t.Run("interrupted before the change", func(t *testing.T) {
		d, b := testDir(t), &fakeBackend{}
		sig := make(chan os.Signal, 1)
		sig <- syscall.SIGTERM
		err := Apply(ctx, d, b, testPlan(), Options{Interrupted: sig})
		var ie *InterruptedError
		if !errors.As(err, &ie) || b.applied != 0 {
			t.Fatalf("err %v, applied %d", err, b.applied)
		}
		if l := leftovers(t, d.Path); len(l) > 0 {
			t.Errorf("left behind: %v", l)
		}
	})
	t.Run("directory removed during the change", func(t *testing.T) {
		d := testDir(t)
		b := &fakeBackend{during: func() { os.RemoveAll(d.Path) }}
		err := Apply(ctx, d, b, testPlan(), Options{})
		var nr *NotRecordedError
		if !errors.As(err, &nr) || b.applied != 1 || !strings.Contains(err.Error(), "the firewall now matches the new policy") {
			t.Fatalf("err %v, applied %d", err, b.applied)
		}
	})
	t.Run("unfinished", func(t *testing.T) {
		d := testDir(t)
		b := &fakeBackend{during: func() {
			if a, _ := d.Unfinished(); a != nil {
				t.Error("an apply in flight (lock held) was reported as unfinished")
			}
		}}
		if err := Apply(ctx, d, b, testPlan(), Options{}); err != nil {
			t.Fatal(err)
		}
		if err := d.beginApplying(Applying{Backend: "fake", Desired: testPlan().Desired, PID: 1}); err != nil {
			t.Fatal(err)
		}
		if a, err := d.Unfinished(); a == nil || err != nil {
			t.Fatalf("a record with the lock free is an unfinished apply: %v %v", a, err)
		}
	})
}

// stateBackend is a fakeBackend whose kernel holds rs.
type stateBackend struct {
	fakeBackend
	rs *rules.Ruleset
}

func (s *stateBackend) Current(context.Context) (*backends.State, error) {
	return &backends.State{Installed: true, Ruleset: s.rs}, nil
}

// familyBackend also reports per family, so it needs the rulesets.
type familyBackend struct{ stateBackend }

func (f *familyBackend) Holdings(ctx context.Context, previous, desired *rules.Ruleset) ([]string, error) {
	if previous == nil || desired == nil {
		return []string{"no rulesets recorded"}, nil
	}
	return []string{"rulesets recorded"}, nil
}

// A backend that changes everything at once gets only fingerprints in the
// record of an apply in flight (a 100,000-source ruleset as JSON cost most
// of an apply), and an unfinished apply is still told apart: new rules
// whole, previous rules whole, or neither. A FamilyReporter still gets the
// rulesets it compares.
func TestUnfinishedFromFingerprints(t *testing.T) {
	ctx := context.Background()
	previous := &rules.Ruleset{Exposures: []rules.Exposure{{Name: "old", Protocol: rules.TCP, Ports: []rules.PortRange{{First: 22, Last: 22}}}}}
	desired := testPlan().Desired
	for _, c := range []struct {
		name  string
		holds *rules.Ruleset
		want  string
	}{
		{"new", desired, "the new rules whole"},
		{"previous", previous, "the previous rules whole"},
		{"neither", &rules.Ruleset{}, "neither"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, b := testDir(t), &stateBackend{rs: c.holds}
			a := newApplying(b, previous, desired, desired.Fingerprint())
			if a.Previous != nil || a.Desired != nil || a.PreviousFingerprint != previous.Fingerprint() || a.DesiredFingerprint != desired.Fingerprint() {
				t.Fatalf("record %+v", a)
			}
			if err := d.beginApplying(a); err != nil {
				t.Fatal(err)
			}
			in, err := CheckUnfinished(ctx, d, b)
			if err != nil || in == nil || len(in.Holds) != 1 || !strings.Contains(in.Holds[0], c.want) {
				t.Fatalf("CheckUnfinished = %+v, %v; want %q", in, err, c.want)
			}
		})
	}
	t.Run("nothing installed before", func(t *testing.T) {
		d, b := testDir(t), &stateBackend{rs: &rules.Ruleset{}}
		if err := d.beginApplying(newApplying(b, nil, desired, desired.Fingerprint())); err != nil {
			t.Fatal(err)
		}
		if in, err := CheckUnfinished(ctx, d, b); err != nil || in == nil || !strings.Contains(in.Holds[0], "the previous rules whole") {
			t.Fatalf("CheckUnfinished = %+v, %v", in, err)
		}
	})
	t.Run("family reporter", func(t *testing.T) {
		d, b := testDir(t), &familyBackend{stateBackend{rs: desired}}
		if err := d.beginApplying(newApplying(b, previous, desired, desired.Fingerprint())); err != nil {
			t.Fatal(err)
		}
		if in, err := CheckUnfinished(ctx, d, b); err != nil || in == nil || in.Holds[0] != "rulesets recorded" {
			t.Fatalf("CheckUnfinished = %+v, %v", in, err)
		}
	})
	// The record is not synced (a machine that stops takes the kernel's
	// rules with it), so after a crash it can come back empty: that is an
	// apply that did not finish, not an error that stops every command,
	// and the next apply completes it.
	t.Run("record damaged by a crash", func(t *testing.T) {
		d, b := testDir(t), &stateBackend{rs: &rules.Ruleset{}}
		if err := os.WriteFile(filepath.Join(d.Path, applyingFile), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		in, err := CheckUnfinished(ctx, d, b)
		if err != nil || in == nil || !in.Applying.Damaged || !strings.Contains(in.String(), "is damaged") {
			t.Fatalf("CheckUnfinished = %+v, %v", in, err)
		}
		if err := Apply(ctx, d, b, testPlan(), Options{}); err != nil || b.applied != 1 {
			t.Fatalf("apply after a damaged record: %v (applied %d)", err, b.applied)
		}
		if a, err := d.Unfinished(); a != nil || err != nil {
			t.Fatalf("after the apply: unfinished %+v, %v", a, err)
		}
	})
	t.Run("record of an older version", func(t *testing.T) {
		d, b := testDir(t), &stateBackend{rs: desired}
		if err := d.beginApplying(Applying{Backend: "fake", Previous: previous, Desired: desired, PID: 1}); err != nil {
			t.Fatal(err)
		}
		if in, err := CheckUnfinished(ctx, d, b); err != nil || in == nil || !strings.Contains(in.Holds[0], "the new rules whole") {
			t.Fatalf("CheckUnfinished = %+v, %v", in, err)
		}
	})
}

// A guard that refuses, asked with the lock held before anything is
// written, stops the apply: nothing applied, nothing recorded, the lock
// free again.
func TestGuardRefusesUnderTheLock(t *testing.T) {
	ctx := context.Background()
	d := testDir(t)
	b := &fakeBackend{}
	held := false
	refusal := errors.New("refused")
	err := Apply(ctx, d, b, testPlan(), Options{Guard: func() error {
		if l, err := d.tryAcquire("test", false); err == nil && l == nil {
			held = true // someone (the apply) holds the lock
		}
		return refusal
	}})
	if !errors.Is(err, refusal) || b.applied != 0 || !held {
		t.Fatalf("err %v, applied %d, lock held during the guard %v", err, b.applied, held)
	}
	if l := leftovers(t, d.Path); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
	if a, err := d.LastApplied(); err != nil || a != nil {
		t.Errorf("recorded an apply: %+v %v", a, err)
	}
}
