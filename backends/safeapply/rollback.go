package safeapply

import (
	"context"
	"fmt"
	"time"

	"github.com/portwarden/portwarden/backends"
)

// RollbackNow restores, at once, the state from before the change that
// awaits confirmation, as the watchdog would at the deadline: for a person
// or a rollout that already knows the change failed its checks and should
// not wait out the deadline. It returns the change it undid, nil when none
// was pending.
func RollbackNow(ctx context.Context, d *Dir, lockTimeout time.Duration, open func(name string) (backends.Backend, error)) (*Pending, error) {
	lock, err := d.Acquire(lockTimeout, "portwarden rollback")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	p, err := d.GetPending()
	if err != nil || p == nil {
		return nil, err
	}
	if err := d.rollBack(ctx, p, open, Who()+" rolled back the change "+p.By+" applied"); err != nil {
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
	return nil
}
