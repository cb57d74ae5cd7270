package safeapply

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/portwarden/portwarden/backends"
)

// WaitOrDecline waits, after apply --confirm-timeout changed the kernel,
// until its change p is confirmed (kept) or rolled back by the watchdog
// (not kept), or until a SIGINT or SIGTERM comes on sigs first (declined,
// for RollbackDeclined). SIGHUP (the SSH session dropped) is no answer:
// the change stays pending, the watchdog rolls it back at the deadline
// unless `portwarden confirm` comes from another session first, and the
// wait goes on. answer, when set, is a terminal on which "yes" confirms
// the change.
func WaitOrDecline(ctx context.Context, d *Dir, p *Pending, lockTimeout time.Duration, sigs <-chan os.Signal, answer io.Reader) (kept bool, declined os.Signal, err error) {
	if answer != nil {
		go func() {
			line, _ := bufio.NewReader(answer).ReadString('\n')
			if strings.TrimSpace(line) == "yes" {
				Confirm(d, lockTimeout)
			}
		}()
	}
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	no := make(chan os.Signal, 1)
	go func() {
		for {
			select {
			case sig := <-sigs:
				if declines(sig) {
					no <- sig
					cancel()
					return
				}
			case <-waitCtx.Done():
				return
			}
		}
	}()
	kept, err = WaitConfirmed(waitCtx, d, p.Deadline, 30*time.Second)
	if errors.Is(err, context.Canceled) && ctx.Err() == nil {
		// Only a decline cancels waitCtx while ctx lives, and it sent
		// its signal first; a cancelled ctx is the caller's error.
		return false, <-no, nil
	}
	return kept, nil, err
}

// RollbackDeclined undoes apply's own change p at once because sig (a
// SIGINT or SIGTERM: Ctrl-C at the prompt, systemd stopping the unit, a
// hook's timeout) came before it was confirmed, instead of leaving the
// kernel holding a change that the watchdog may or may not undo later. b
// is the backend the apply used; the journal and the history say who
// undid the change and why. Like RollbackOwn, it returns nil and changes
// nothing when the change was confirmed or rolled back meanwhile (Kept
// then says which).
func RollbackDeclined(ctx context.Context, d *Dir, b backends.Backend, p *Pending, lockTimeout time.Duration, sig os.Signal) (*Pending, error) {
	by := fmt.Sprintf("%s (portwarden apply got %s before the change was confirmed)", Who(), SignalName(sig))
	return RollbackOwn(context.WithoutCancel(ctx), d, lockTimeout, sameBackend(b), p.Deadline, by)
}

// sameBackend opens the backend a pending change was applied with: b, the
// one this apply used.
func sameBackend(b backends.Backend) func(string) (backends.Backend, error) {
	return func(name string) (backends.Backend, error) {
		if name == b.Name() {
			return b, nil
		}
		return nil, fmt.Errorf("the change to roll back was applied with the %s backend, not %s", name, b.Name())
	}
}

// Kept reports, of a change that awaited confirmation here and no longer
// does, whether it stayed (confirmed) rather than being rolled back: the
// journal's last entry is then no rollback.
func (d *Dir) Kept() bool {
	a, _ := d.LastApplied()
	return a == nil || !a.RolledBack
}
