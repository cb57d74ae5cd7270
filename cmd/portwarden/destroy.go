package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/portwarden/portwarden/backends/safeapply"

	"github.com/spf13/cobra"
)

func newDestroyCmd(g *globals) *cobra.Command {
	var autoApprove bool
	var lockTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "destroy [--auto-approve]",
		Short: "Remove everything portwarden owns in the kernel, and nothing else",
		Example: `  portwarden destroy
  portwarden destroy --auto-approve --backend iptables`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// A closed output pipe (destroy | head) must not kill destroy
			// once the kernel may change: the exit code would say "killed"
			// of a change that is in. Caught, a write fails instead.
			signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
			b, _, err := g.openBackend()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			st, err := b.Current(context.Background())
			if err != nil {
				return withCode(exitError1, explainKernelError(err))
			}
			if !st.Installed {
				forgetState(lockTimeout)
				if g.json {
					return printJSON(w, map[string]any{"destroyed": false, "backend": b.Name()})
				}
				fmt.Fprintf(w, "Nothing to destroy: portwarden owns no %s objects here.\n", b.Name())
				return nil
			}
			if !autoApprove {
				fmt.Fprintf(w, "portwarden will remove its %s objects (%d exposure(s)); every other rule stays.\n", b.Name(), len(st.Ruleset.Exposures))
				if err := confirm(cmd.InOrStdin(), w, "destroy"); err != nil {
					return withCode(exitError1, err)
				}
			}
			dir, err := safeapply.Open("")
			if err != nil {
				return withCode(exitError1, err)
			}
			lock, err := dir.Acquire(lockTimeout, "portwarden destroy")
			if err != nil {
				return withCode(exitError1, err)
			}
			defer lock.Unlock()
			if p, err := dir.GetPending(); err != nil || p != nil {
				if err == nil {
					err = fmt.Errorf("%w (applied by %s): run `portwarden confirm` or wait for the rollback at %s first", safeapply.ErrPending, p.By, p.Deadline.Format(time.RFC3339))
				}
				return withCode(exitError1, err)
			}
			if err := b.Destroy(context.Background()); err != nil {
				return withCode(exitError1, explainKernelError(err))
			}
			if err := safeapply.RecordEvent("", safeapply.Event{Action: "destroy", Backend: b.Name()}); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: the history did not record the destroy: %v\n", err)
			}
			// Nothing is installed and nothing pending: no state is left
			// behind for this namespace. What the command started beside
			// itself (the cache of a read) finishes first, or it would
			// make the directory again.
			safeapply.Settle()
			if err := dir.Remove(lock); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
			}
			var werr error
			if g.json {
				werr = printJSON(w, map[string]any{"destroyed": true, "backend": b.Name()})
			} else {
				_, werr = fmt.Fprintf(w, "Destroy complete: removed portwarden's %s objects.\n", b.Name())
			}
			if werr != nil { // the objects are gone: the exit code says so
				fmt.Fprintf(cmd.ErrOrStderr(), "Warning: the report on standard output was cut short (%v); the exit code says how destroy ended.\n", werr)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&autoApprove, "auto-approve", false, "destroy without asking")
	cmd.Flags().DurationVar(&lockTimeout, "lock-timeout", 30*time.Second, "how long to wait for another portwarden command to finish")
	return cmd
}

// forgetState removes this namespace's state directory when no change
// awaits confirmation; with nothing installed it only holds history.
func forgetState(lockTimeout time.Duration) {
	dir, err := safeapply.Open("")
	if err != nil {
		return
	}
	lock, err := dir.Acquire(lockTimeout, "portwarden destroy")
	if err != nil {
		return
	}
	if p, err := dir.GetPending(); err != nil || p != nil {
		lock.Unlock()
		return
	}
	safeapply.Settle() // as in destroy
	dir.Remove(lock)
}
