package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/auto"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/spf13/cobra"
)

func newConfirmCmd(g *globals) *cobra.Command {
	var lockTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "confirm",
		Short: "Keep a change applied with --confirm-timeout (otherwise it rolls back)",
		Example: `  portwarden --policy /etc/portwarden apply --confirm-timeout 2m
  portwarden confirm      # from a second session that still gets in`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := safeapply.Open("")
			if err != nil {
				return withCode(exitError1, err)
			}
			p, err := safeapply.Confirm(dir, lockTimeout)
			if err != nil {
				return withCode(exitError1, err)
			}
			w := cmd.OutOrStdout()
			if g.json {
				return printJSON(w, map[string]any{"confirmed": p != nil})
			}
			if p == nil {
				fmt.Fprintln(w, "Nothing awaits confirmation.")
				return nil
			}
			fmt.Fprintf(w, "Confirmed the change applied by %s: it stays.\n", p.By)
			return nil
		},
	}
	cmd.Flags().DurationVar(&lockTimeout, "lock-timeout", 30*time.Second, "how long to wait for another portwarden command to finish")
	return cmd
}

func newRollbackCmd(g *globals) *cobra.Command {
	var lockTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Undo a change applied with --confirm-timeout now, instead of at its deadline",
		Example: `  portwarden --policy /etc/portwarden apply --confirm-timeout 5m
  portwarden rollback     # the checks failed: restore the previous rules now`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := safeapply.Open("")
			if err != nil {
				return withCode(exitError1, err)
			}
			p, err := safeapply.RollbackNow(context.Background(), dir, lockTimeout, func(name string) (backends.Backend, error) {
				b, _, err := auto.Open(name, backends.Config{})
				return b, err
			})
			if err != nil {
				return withCode(exitError1, explainKernelError(err))
			}
			w := cmd.OutOrStdout()
			if g.json {
				return printJSON(w, map[string]any{"rolled_back": p != nil})
			}
			if p == nil {
				fmt.Fprintln(w, "Nothing awaits confirmation: nothing to roll back.")
				return nil
			}
			fmt.Fprintf(w, "Rolled back the change applied by %s: the previous rules are back.\n", p.By)
			return nil
		},
	}
	cmd.Flags().DurationVar(&lockTimeout, "lock-timeout", 30*time.Second, "how long to wait for another portwarden command to finish")
	return cmd
}

// startWatchdog starts the rollback watchdog of a change made with dir:
// this binary, running newWatchdogCmd.
func startWatchdog(dir *safeapply.Dir) (int, error) {
	return safeapply.StartWatchdog(dir, "__watchdog", "--state-dir", filepath.Dir(dir.Path))
}

// newWatchdogCmd is the hidden rollback watchdog that apply
// --confirm-timeout starts (see backends/safeapply).
func newWatchdogCmd() *cobra.Command {
	var stateDir string
	cmd := &cobra.Command{
		Use:    "__watchdog",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := safeapply.Open(stateDir)
			if err != nil {
				return err
			}
			// SIGTERM comes from confirm: stop quietly.
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			err = safeapply.Watch(ctx, dir, func(name string) (backends.Backend, error) {
				b, _, err := auto.Open(name, backends.Config{})
				return b, err
			})
			if err != nil && ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "%s watchdog: %v\n", time.Now().Format(time.RFC3339), err)
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "state directory root")
	return cmd
}
