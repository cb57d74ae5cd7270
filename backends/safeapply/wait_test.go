package safeapply

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
)

// pendingChange records a change awaiting confirmation that restores
// exposure old:22, as apply --confirm-timeout would (without a watchdog).
func pendingChange(t *testing.T, d *Dir) *Pending {
	t.Helper()
	p := Pending{Backend: "fake", Previous: exposure("old", 22), Deadline: time.Now().Add(time.Hour).UTC().Truncate(time.Second), By: "tester"}
	if err := d.SetPending(p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// WaitOrDecline ends on the answer "yes" (kept), on a rollback by someone
// else (not kept), or on a SIGINT or SIGTERM (declined, the change still
// pending), never on SIGHUP; RollbackDeclined then undoes the change and
// says why.
func TestWaitOrDecline(t *testing.T) {
	ctx := context.Background()
	t.Run("yes", func(t *testing.T) {
		d := testDir(t)
		p := pendingChange(t, d)
		kept, declined, err := WaitOrDecline(ctx, d, p, time.Second, nil, strings.NewReader("yes\n"))
		if !kept || declined != nil || err != nil {
			t.Fatalf("kept %v, declined %v, err %v", kept, declined, err)
		}
		if still, _ := d.GetPending(); still != nil {
			t.Error("still pending after yes")
		}
	})
	t.Run("rolled back", func(t *testing.T) {
		d, b := testDir(t), &kernelBackend{holds: exposure("new", 27)}
		p := pendingChange(t, d)
		go RollbackNow(ctx, d, time.Second, func(string) (backends.Backend, error) { return b, nil })
		kept, declined, err := WaitOrDecline(ctx, d, p, time.Second, nil, strings.NewReader("no\n"))
		if kept || declined != nil || err != nil {
			t.Fatalf("kept %v, declined %v, err %v", kept, declined, err)
		}
		if d.Kept() {
			t.Error("Kept after a rollback")
		}
	})
	t.Run("caller gives up", func(t *testing.T) {
		d := testDir(t)
		p := pendingChange(t, d)
		gone, cancel := context.WithCancel(ctx)
		cancel()
		done := make(chan error, 1)
		go func() {
			_, _, err := WaitOrDecline(gone, d, p, time.Second, make(chan os.Signal), nil)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Error("a cancelled wait returned no error")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a cancelled wait never returned")
		}
	})
	t.Run("declined", func(t *testing.T) {
		d, b := testDir(t), &kernelBackend{holds: exposure("new", 27)}
		p := pendingChange(t, d)
		sigs := make(chan os.Signal, 2)
		sigs <- syscall.SIGHUP
		sigs <- syscall.SIGTERM
		kept, declined, err := WaitOrDecline(ctx, d, p, time.Second, sigs, nil)
		if kept || declined != syscall.SIGTERM || err != nil {
			t.Fatalf("kept %v, declined %v, err %v", kept, declined, err)
		}
		if still, _ := d.GetPending(); still == nil {
			t.Fatal("a decline alone decided the change")
		}
		if undone, err := RollbackDeclined(ctx, d, b, p, time.Second, declined); undone == nil || err != nil {
			t.Fatalf("rollback: %v %v", undone, err)
		}
		if b.holds.Fingerprint() != exposure("old", 22).Fingerprint() {
			t.Errorf("the kernel holds %v, want the previous rules", b.holds)
		}
		// Decided already: a second decline undoes nothing.
		if undone, err := RollbackDeclined(ctx, d, b, p, time.Second, declined); undone != nil || err != nil {
			t.Errorf("second rollback: %v %v", undone, err)
		}
		if a, _ := d.LastApplied(); a == nil || !a.RolledBack || !strings.Contains(a.By, "portwarden apply got SIGTERM before the change was confirmed") {
			t.Errorf("journal %+v", a)
		}
		if d.Kept() {
			t.Error("Kept after a declined change was rolled back")
		}
	})
}

// RollbackDeclined rolls back only with the backend the change was
// applied with.
func TestRollbackDeclinedSameBackend(t *testing.T) {
	d := testDir(t)
	p := pendingChange(t, d)
	p.Backend = "iptables"
	if err := d.SetPending(*p); err != nil {
		t.Fatal(err)
	}
	_, err := RollbackDeclined(context.Background(), d, &kernelBackend{}, p, time.Second, syscall.SIGINT)
	if err == nil || !strings.Contains(err.Error(), "applied with the iptables backend, not fake") {
		t.Fatalf("err %v", err)
	}
	if still, _ := d.GetPending(); still == nil {
		t.Error("the change is no longer pending after a failed rollback")
	}
}
