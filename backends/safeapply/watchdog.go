package safeapply

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// StartWatchdog re-executes this binary with args (which must make it call
// Watch on d) as the rollback watchdog, in a new session so it outlives
// the caller, its output appended to watchdog.log in d, and returns its
// pid: Options.StartWatchdog for a change made with d.
func StartWatchdog(d *Dir, args ...string) (int, error) {
	exe := os.Args[0]
	if !strings.Contains(exe, "/") {
		if p, err := exec.LookPath(exe); err == nil {
			exe = p
		}
	}
	if exe == "" || !filepath.IsAbs(exe) && !strings.Contains(exe, "/") {
		var err error
		if exe, err = os.Executable(); err != nil {
			return 0, err
		}
	}
	logf, err := os.OpenFile(filepath.Join(d.Path, "watchdog.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	c := exec.Command(exe, args...)
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return 0, err
	}
	pid := c.Process.Pid
	c.Process.Release()
	return pid, nil
}
