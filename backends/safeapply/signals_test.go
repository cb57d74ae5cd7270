package safeapply

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
)

// A signal that comes while the kernel changes waits until the change is
// in: the first one (SIGPIPE aside) is noted, and the first SIGINT or
// SIGTERM among them declines the change. One that came before the kernel
// changed stops the apply with nothing applied.
func TestApplyThroughSignals(t *testing.T) {
	ctx := context.Background()
	t.Run("during", func(t *testing.T) {
		d := testDir(t)
		sigs := make(chan os.Signal, 8)
		b := &fakeBackend{during: func() {
			for _, sig := range []os.Signal{syscall.SIGPIPE, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT} {
				sigs <- sig
			}
		}}
		noted, declined, err := ApplyThroughSignals(ctx, d, b, testPlan(), Options{}, sigs)
		if err != nil || b.applied != 1 {
			t.Fatalf("applied %d times, err %v", b.applied, err)
		}
		if noted != syscall.SIGHUP || declined != syscall.SIGTERM {
			t.Errorf("noted %v, declined %v; want SIGHUP, SIGTERM", noted, declined)
		}
		if len(sigs) != 0 {
			t.Errorf("%d signals left unseen", len(sigs))
		}
	})
	t.Run("before", func(t *testing.T) {
		d := testDir(t)
		sigs := make(chan os.Signal, 1)
		sigs <- syscall.SIGINT
		b := &fakeBackend{}
		_, _, err := ApplyThroughSignals(ctx, d, b, testPlan(), Options{}, sigs)
		var ie *InterruptedError
		if !errors.As(err, &ie) || ie.Signal != syscall.SIGINT || b.applied != 0 {
			t.Fatalf("err %v, applied %d times; want interrupted by SIGINT, nothing applied", err, b.applied)
		}
	})
}

// PollDecline takes one waiting signal at most, and only a SIGINT or
// SIGTERM is a no.
func TestPollDecline(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	if sig := PollDecline(sigs); sig != nil {
		t.Errorf("nothing waiting: %v", sig)
	}
	sigs <- syscall.SIGHUP
	sigs <- syscall.SIGTERM
	if sig := PollDecline(sigs); sig != nil {
		t.Errorf("SIGHUP taken as %v", sig)
	}
	if sig := PollDecline(sigs); sig != syscall.SIGTERM {
		t.Errorf("got %v, want SIGTERM", sig)
	}
}
