package safeapply

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/portwarden/portwarden/backends"
)

// RollbackNow restores, at once, the state from before the change that
// awaits confirmation, as the watchdog would at the deadline: for a person
// or a rollout that already knows the change failed its checks and should
// not wait out the deadline. It returns the change it undid, nil when none
// was pending.
func RollbackNow(ctx context.Context, d *Dir, lockTimeout time.Duration, open func(name string) (backends.Backend, error)) (*Pending, error) {
	return rollbackPending(ctx, d, lockTimeout, open, nil, func(p *Pending) string { return Who() + " rolled back the change " + p.By + " applied" })
}

// RollbackOwn is RollbackNow for the change whose deadline is deadline
// only: apply --confirm-timeout undoing its own change when it is told to
// stop before the change was confirmed. by says who undid it, for the
// journal and the history. It returns nil, and changes nothing, when that
// change was confirmed or rolled back already (another change may await
// confirmation by then: it is not this one's to undo).
func RollbackOwn(ctx context.Context, d *Dir, lockTimeout time.Duration, open func(name string) (backends.Backend, error), deadline time.Time, by string) (*Pending, error) {
	return rollbackPending(ctx, d, lockTimeout, open, func(p *Pending) bool { return p.Deadline.Equal(deadline) }, func(*Pending) string { return by })
}

func rollbackPending(ctx context.Context, d *Dir, lockTimeout time.Duration, open func(name string) (backends.Backend, error), mine func(*Pending) bool, by func(*Pending) string) (*Pending, error) {
	lock, err := d.Acquire(lockTimeout, "portwarden rollback")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	p, err := d.GetPending()
	if err != nil || p == nil || mine != nil && !mine(p) {
		return nil, err
	}
	if err := d.rollBack(ctx, p, open, by(p)); err != nil {
		return nil, fmt.Errorf("rollback (the change stays pending; the watchdog still rolls it back at %s): %w", p.Deadline.Format(time.RFC3339), err)
	}
	d.disarm()
	return p, nil
}

// rollBack restores the state from before the pending change p with the
// backend it was applied with, and records that in the journal. The caller
// holds the lock and forgets p afterwards.
func (d *Dir) rollBack(ctx context.Context, p *Pending, open func(name string) (backends.Backend, error), by string) error {
	b, err := open(p.Backend)
	if err != nil {
		return err
	}
	if err := Restore(ctx, b, p.Previous); err != nil {
		return err
	}
	fp := ""
	if p.Previous != nil {
		fp = p.Previous.Fingerprint()
	}
	d.RecordApplied(Applied{Fingerprint: fp, Backend: p.Backend, When: time.Now().UTC(), RolledBack: true, By: by})
	// The history says so too: its last line is no longer the apply undone.
	RecordEvent(filepath.Dir(d.Path), Event{Action: "rollback", Backend: p.Backend, By: by})
	return nil
}
