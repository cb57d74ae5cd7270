package iptables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/portwarden/portwarden/internal/netns"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/portwarden/portwarden/backends"
)

// runner is the narrow seam over the iptables binaries: read a family's
// filter table, load a restore file into it. Tests wrap it to count writes.
type runner interface {
	// save returns `iptables-save -t filter -c` output.
	save(ctx context.Context, fam family) (string, error)
	// restore loads text with `iptables-restore --noflush`: one atomic
	// commit of the filter table.
	restore(ctx context.Context, fam family, text string) error
}

// xtablesWait is how long legacy binaries wait for the xtables lock.
const xtablesWait = "10"

// execRunner runs one variant's binaries, inside a network namespace when
// nsPath is set.
type execRunner struct {
	variant Variant
	nsPath  string
}

func (x execRunner) binary(fam family, tool string) string {
	base := "iptables"
	if fam == ipv6 {
		base = "ip6tables"
	}
	return base + "-" + string(x.variant) + tool
}

func (x execRunner) save(ctx context.Context, fam family) (string, error) {
	out, err := x.exec(ctx, x.binary(fam, "-save"), nil, "-t", "filter", "-c")
	if err != nil {
		return "", fmt.Errorf("read the %s filter table: %w", fam, err)
	}
	return out, nil
}

func (x execRunner) restore(ctx context.Context, fam family, text string) error {
	args := []string{"--noflush"}
	if x.variant == Legacy {
		args = append(args, "--wait="+xtablesWait)
	}
	if _, err := x.exec(ctx, x.binary(fam, "-restore"), strings.NewReader(text), args...); err != nil {
		return fmt.Errorf("load the owned %s chains: %w", fam, err)
	}
	return nil
}

// exec runs a binary in the namespace and returns its standard output.
func (x execRunner) exec(ctx context.Context, name string, stdin *strings.Reader, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	err := netns.DoPath(x.nsPath, func() error {
		cmd := exec.CommandContext(ctx, name, args...)
		if stdin != nil {
			cmd.Stdin = stdin
		}
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		// Its own process group keeps a Ctrl-C meant for portwarden from
		// killing a restore mid-way (portwarden decides when to stop, see
		// cmd/portwarden apply), and Pdeathsig ends it with a killed
		// portwarden, so no commit lands after portwarden is gone.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		return cmd.Run()
	})
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "Permission denied") || strings.Contains(msg, "Operation not permitted") || errors.Is(err, os.ErrPermission) {
			return "", fmt.Errorf("%s: %s: %w", name, msg, backends.ErrPermission)
		}
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("%s is not installed (install the iptables package): %w", name, backends.ErrUnsupported)
		}
		if msg != "" {
			return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
		}
		return "", fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}
