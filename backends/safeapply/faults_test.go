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
