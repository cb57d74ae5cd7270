package safeapply

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
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
	t.Run("while another command holds the lock", func(t *testing.T) {
		d := testDir(t)
		held, err := d.Acquire(time.Second, "another apply")
		if err != nil {
			t.Fatal(err)
		}
		defer held.Unlock()
		sigs := make(chan os.Signal, 1)
		time.AfterFunc(200*time.Millisecond, func() { sigs <- syscall.SIGINT })
		b := &fakeBackend{}
		done := make(chan error, 1)
		go func() {
			_, _, err := ApplyThroughSignals(ctx, d, b, testPlan(), Options{LockTimeout: time.Minute}, sigs)
			done <- err
		}()
		select {
		case err := <-done:
			var ie *InterruptedError
			if !errors.As(err, &ie) || ie.Signal != syscall.SIGINT || b.applied != 0 {
				t.Fatalf("err %v, applied %d times; want interrupted by SIGINT, nothing applied", err, b.applied)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a SIGINT during the wait for the lock did not end it")
		}
	})
}

// PollDecline looks at every signal already waiting: a SIGINT or SIGTERM
// queued behind signals that are no answer (SIGHUP, SIGPIPE) still
// declines, the first no among them is the one returned, and nothing is
// left waiting. SIGHUP and SIGPIPE alone are no answer.
func TestPollDecline(t *testing.T) {
	for _, tc := range []struct {
		name    string
		waiting []os.Signal
		want    os.Signal
	}{
		{"nothing", nil, nil},
		{"hup then term", []os.Signal{syscall.SIGHUP, syscall.SIGTERM}, syscall.SIGTERM},
		{"pipe, hup then int", []os.Signal{syscall.SIGPIPE, syscall.SIGHUP, syscall.SIGINT}, syscall.SIGINT},
		{"term then int", []os.Signal{syscall.SIGTERM, syscall.SIGINT}, syscall.SIGTERM},
		{"term then hup", []os.Signal{syscall.SIGTERM, syscall.SIGHUP}, syscall.SIGTERM},
		{"hup and pipe", []os.Signal{syscall.SIGHUP, syscall.SIGPIPE}, nil},
	} {
		sigs := make(chan os.Signal, 8)
		for _, sig := range tc.waiting {
			sigs <- sig
		}
		if got := PollDecline(sigs); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
		if len(sigs) != 0 {
			t.Errorf("%s: %d signal(s) left waiting", tc.name, len(sigs))
		}
	}
}
