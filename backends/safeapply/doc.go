// Package safeapply keeps changes to a live firewall safe for people who
// change it over SSH and for automation: a lock so applies never
// interleave, a journal of what was applied when and by whom, and a
// rollback that restores the previous owned state unless the change is
// confirmed in time — even if the applying process is killed.
//
// # State
//
// Everything lives in one directory per network namespace, under
// /run/portwarden (PORTWARDEN_STATE_DIR overrides it), named by the
// namespace's cookie, a number the kernel never reuses:
//
//	lock          flock(2) target, held by apply, destroy, confirm and the watchdog;
//	              it says who holds it (pid, command, since) for the waiting side
//	applied.json  the last applied fingerprint, backend, time and user
//	pending.json  a change awaiting confirmation: the previous owned Ruleset
//	              (or none), the deadline and the watchdog's pid
//
// /run is a tmpfs: after a reboot there is nothing to roll back, and the
// boot-time apply (examples/systemd) starts from the policy.
//
// # The watchdog
//
// apply --confirm-timeout D first records pending.json and starts a
// watchdog (StartWatchdog) — the same binary, re-executed with a hidden
// subcommand in a new session (setsid), so it survives the applying
// process being killed with SIGKILL and the SSH session dropping — and
// only then applies. The watchdog sleeps until the deadline, takes the
// lock and, if pending.json still exists, restores the previous owned
// state with the same backend (one atomic transition, like any apply) and
// removes pending.json.
// `portwarden confirm` (or "yes" typed at apply's prompt) removes
// pending.json under the lock and stops the watchdog. Because the watchdog
// exists before the change does, no moment exists in which the change is
// in the kernel and nothing will undo it.
//
// Be aware:
//   - The watchdog is a child of the apply process's namespace: it inherits
//     `ip netns exec`'s namespace, so the rollback lands where the apply did.
//   - While a change awaits confirmation, another apply or destroy refuses
//     and says so; confirm it or let it roll back first.
//
// # Signals
//
// A signal never leaves the kernel half-way through a change (Signals):
// one before the kernel changes stops the apply with nothing applied, one
// while it changes waits until the whole transition is in
// (ApplyThroughSignals). SIGINT or SIGTERM while the change awaits
// confirmation is a no: apply rolls it back at once (WaitOrDecline,
// RollbackDeclined). SIGHUP, the SSH session dropping, leaves it pending
// for `portwarden confirm` from another session or the watchdog.
package safeapply
