package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/auto"
	"github.com/portwarden/portwarden/backends/iptables"
	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

// rangePolicy writes a policy allowing n single addresses (every other
// address, so none merge) from the first'th on, half IPv4 and half IPv6,
// all in the test ranges. Two such policies with overlapping ranges differ
// by additions and revocations at once.
func rangePolicy(t *testing.T, path string, first, n int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("address_group \"many\" {\n  members = [\n")
	for i := first; i < first+n/2; i++ {
		v := 2 * i
		fmt.Fprintf(&b, "    \"198.%d.%d.%d\",\n", 18+v>>16, v>>8&255, v&255)
		fmt.Fprintf(&b, "    \"2001:2::%x:%x\",\n", v>>16, v&0xffff)
	}
	b.WriteString("  ]\n}\n\nexpose \"nscp\" {\n  protocol = \"tcp\"\n  ports    = [27]\n  allow {\n    from = [address_group.many]\n  }\n}\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// faultLab is a namespace, the test binary as portwarden, and a state
// directory.
type faultLab struct {
	t     *testing.T
	ns    string
	exe   string
	state string
	extra []string
}

func newFaultLab(t *testing.T, label string, extra ...string) *faultLab {
	ns := netnstest.New(t, label)
	exe, err := exec.LookPath("portwarden")
	if err != nil {
		t.Fatal(err)
	}
	return &faultLab{t: t, ns: ns.Name, exe: exe, state: filepath.Join(t.TempDir(), "state"), extra: extra}
}

func (l *faultLab) cmd(args ...string) *exec.Cmd {
	c := exec.Command("ip", append([]string{"netns", "exec", l.ns, l.exe}, append(l.extra, args...)...)...)
	c.Env = append(os.Environ(), "PORTWARDEN_STATE_DIR="+l.state)
	return c
}

// startAfterPlan starts an apply and returns a channel closed when it has
// printed its plan (the kernel is written after that).
func (l *faultLab) startAfterPlan(policy string) (*exec.Cmd, <-chan struct{}) {
	l.t.Helper()
	c := l.apply(policy)
	out, err := c.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		l.t.Fatal(err)
	}
	planned := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		done := false
		for sc.Scan() {
			if !done && strings.HasPrefix(sc.Text(), "Plan:") {
				close(planned)
				done = true
			}
		}
		if !done {
			close(planned)
		}
	}()
	return c, planned
}

func (l *faultLab) apply(policy string) *exec.Cmd {
	return l.cmd("--policy", policy, "apply", "--auto-approve", "--force")
}

// run runs c and returns its exit code and output.
func run1(t *testing.T, c *exec.Cmd) (int, string) {
	t.Helper()
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("%v: %v", c.Args, err)
	}
	return 0, string(out)
}

// tempFiles lists temporary files left anywhere under dir.
func tempFiles(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func mountTmpfs(t *testing.T, dir, opts string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "pwt-state", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// The exit code never lies about the kernel: a state directory that is
// full or read-only stops apply before the kernel changes (exit 1, the
// path and the cause named, no temporary file left), and one removed
// while apply runs ends in exit 0 or 4 with the new rules in place, or 1
// with the old ones.
func TestApplyStateDirFaults(t *testing.T) {
	l := newFaultLab(t, "state")
	dir := t.TempDir()
	small, big := filepath.Join(dir, "small.hcl"), filepath.Join(dir, "big.hcl")
	rangePolicy(t, small, 0, 20)
	rangePolicy(t, big, 0, 20_000)
	smallRS, bigRS := compilePolicy(t, small), compilePolicy(t, big)
	ctx := context.Background()
	be, err := openAuto(l)
	if err != nil {
		t.Fatal(err)
	}
	holds := func(rs *rules.Ruleset) bool {
		p, err := be.Plan(ctx, rs)
		if err != nil {
			t.Fatal(err)
		}
		return p.Empty()
	}

	t.Run("full", func(t *testing.T) {
		mountTmpfs(t, l.state, "size=64k,mode=0700")
		if code, out := run1(t, l.cmd("status")); code != 0 {
			t.Fatalf("status: %d %s", code, out)
		}
		filler, _ := os.Create(filepath.Join(l.state, "filler"))
		buf := make([]byte, 4096)
		for range 1000 {
			if _, err := filler.Write(buf); err != nil {
				break
			}
		}
		filler.Close()
		code, out := run1(t, l.apply(small))
		t.Logf("full state directory: exit %d\n%s", code, out)
		if code != 1 || !strings.Contains(out, l.state) || !strings.Contains(out, "no space left") || !strings.Contains(out, "nothing was applied") {
			t.Errorf("exit %d, want 1 naming %s and the full disk", code, l.state)
		}
		if holds(smallRS) {
			t.Error("the kernel changed although apply said nothing was applied")
		}
		if tf := tempFiles(l.state); len(tf) > 0 {
			t.Errorf("temporary files left: %v", tf)
		}
		os.Remove(filepath.Join(l.state, "filler"))
	})
	t.Run("read-only", func(t *testing.T) {
		mountTmpfs(t, l.state, "size=1m,mode=0700")
		if code, out := run1(t, l.cmd("status")); code != 0 {
			t.Fatalf("status: %d %s", code, out)
		}
		if out, err := exec.Command("mount", "-o", "remount,ro", l.state).CombinedOutput(); err != nil {
			t.Fatalf("remount: %v %s", err, out)
		}
		code, out := run1(t, l.apply(small))
		t.Logf("read-only state directory: exit %d\n%s", code, out)
		if code != 1 || !strings.Contains(out, l.state) || !strings.Contains(out, "read-only") {
			t.Errorf("exit %d, want 1 naming %s and the read-only file system", code, l.state)
		}
		if holds(smallRS) {
			t.Error("the kernel changed although apply failed")
		}
	})
	t.Run("removed", func(t *testing.T) {
		os.RemoveAll(l.state)
		if code, out := run1(t, l.apply(small)); code != 0 {
			t.Fatalf("apply: %d %s", code, out)
		}
		start := time.Now()
		if code, out := run1(t, l.apply(big)); code != 0 {
			t.Fatalf("apply: %d %s", code, out)
		}
		whole := time.Since(start)
		from, to, toRS, fromRS := big, small, smallRS, bigRS
		for _, frac := range []float64{0.1, 0.3, 0.5, 0.7, 0.9} {
			from, to, fromRS, toRS = to, from, toRS, fromRS
			c := l.apply(to)
			var out strings.Builder
			c.Stdout, c.Stderr = &out, &out
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(frac * float64(whole)))
			os.RemoveAll(l.state)
			err := c.Wait()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
			newWhole, oldWhole := holds(toRS), holds(fromRS)
			t.Logf("state directory removed at %.0f%%: exit %d, new rules %v, old rules %v", frac*100, code, newWhole, oldWhole)
			switch {
			case (code == 0 || code == exitNotRecorded) && !newWhole:
				t.Errorf("exit %d but the kernel does not hold the new rules\n%s", code, out.String())
			case code == 1 && !oldWhole:
				t.Errorf("exit 1 but the kernel does not hold the old rules\n%s", out.String())
			case code != 0 && code != 1 && code != exitNotRecorded:
				t.Errorf("exit %d\n%s", code, out.String())
			}
			if code == exitNotRecorded && !strings.Contains(out.String(), "the firewall now matches the new policy") {
				t.Errorf("exit 4 without saying the firewall matches the new policy:\n%s", out.String())
			}
			if tf := tempFiles(l.state); len(tf) > 0 {
				t.Errorf("temporary files left: %v", tf)
			}
			if !newWhole {
				run1(t, l.apply(to))
			}
		}
	})
}

func openAuto(l *faultLab) (backends.Backend, error) {
	return openIn(l, "")
}

func openIn(l *faultLab, backend string) (backends.Backend, error) {
	cfg := backends.Config{NetNS: "/run/netns/" + l.ns}
	if backend == "iptables" {
		return iptables.New(cfg)
	}
	b, _, err := auto.Open("auto", cfg)
	return b, err
}

// holding is what one family holds after an interrupted iptables apply.
type holding string

const (
	holdsOld   holding = "old"
	holdsMid   holding = "intersection"
	holdsNew   holding = "new"
	holdsOther holding = "other"
)

func familyHoldings(t *testing.T, be backends.Backend, old, new *rules.Ruleset) [2]holding {
	t.Helper()
	lines, err := be.(safeapply.FamilyReporter).Holdings(context.Background(), old, new)
	if err != nil || len(lines) != 2 {
		t.Fatalf("holdings: %v %v", lines, err)
	}
	var out [2]holding
	for i, l := range lines {
		switch {
		case strings.Contains(l, "the new rules"):
			out[i] = holdsNew
		case strings.Contains(l, "the old rules"):
			out[i] = holdsOld
		case strings.Contains(l, "only the revocations"):
			out[i] = holdsMid
		default:
			out[i] = holdsOther
		}
	}
	return out
}

// within reports whether the firewall as a whole admits a subset of what
// the old policy admits or of what the new one admits: both families in
// {old, intersection}, or both in {intersection, new}.
func within(h [2]holding) (string, bool) {
	in := func(set ...holding) bool {
		for _, x := range h {
			ok := false
			for _, s := range set {
				ok = ok || x == s
			}
			if !ok {
				return false
			}
		}
		return true
	}
	switch {
	case in(holdsMid):
		return "within old and new", true
	case in(holdsOld, holdsMid):
		return "within old", true
	case in(holdsMid, holdsNew):
		return "within new", true
	}
	return "MORE OPEN THAN BOTH", false
}

// A SIGKILL at any point of a large iptables apply leaves each family on
// the old rules, the intersection or the new rules, never one family on
// the old and the other on the new; plan says the apply did not finish and
// the next apply completes it.
func TestKilledIptablesApplyNeverMoreOpen(t *testing.T) {
	l := newFaultLab(t, "ipkill", "--backend", "iptables")
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.hcl"), filepath.Join(dir, "b.hcl")
	// Half the sources of each are in the other: every change both adds
	// and revokes, so both phases write in both families.
	rangePolicy(t, a, 0, 8_000)
	rangePolicy(t, b, 2_000, 8_000)
	aRS, bRS := compilePolicy(t, a), compilePolicy(t, b)
	be, err := openIn(l, "iptables")
	if err != nil {
		t.Fatal(err)
	}
	if code, out := run1(t, l.apply(a)); code != 0 {
		t.Fatalf("apply: %d %s", code, out)
	}
	// Most of an apply is loading and planning; the kernel is written
	// after the plan is printed. Time that window in one whole apply and
	// kill at fractions of it, so the moment between the families and
	// between the phases is hit.
	c, planned := l.startAfterPlan(b)
	<-planned
	start := time.Now()
	if err := c.Wait(); err != nil {
		t.Fatalf("apply: %v", err)
	}
	window := time.Since(start)
	t.Logf("one apply of 8,000 sources (4,000 revoked, 4,000 added) writes for %s after printing its plan", window)

	from, to, fromRS, toRS := b, a, bRS, aRS
	var table []string
	bad := 0
	for i, frac := range []float64{0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95} {
		if i > 0 {
			from, to, fromRS, toRS = to, from, toRS, fromRS
		}
		c, planned := l.startAfterPlan(to)
		select {
		case <-planned:
		case <-time.After(2 * time.Minute):
			c.Process.Kill()
			t.Fatal("apply printed no plan within 2 minutes")
		}
		time.Sleep(time.Duration(frac * float64(window)))
		c.Process.Signal(syscall.SIGKILL)
		c.Wait()
		h := familyHoldings(t, be, fromRS, toRS)
		verdict, ok := within(h)
		if !ok {
			bad++
		}
		table = append(table, fmt.Sprintf("%3.0f%% (%6s after the plan)  IPv4 %-12s IPv6 %-12s %s", frac*100,
			time.Duration(frac*float64(window)).Round(time.Millisecond), h[0], h[1], verdict))
		if h != [2]holding{holdsOld, holdsOld} && h != [2]holding{holdsNew, holdsNew} {
			_, out := run1(t, l.cmd("--policy", to, "plan"))
			if !strings.Contains(out, "did not finish") {
				t.Errorf("killed at %.0f%% leaving %v: plan does not say the apply did not finish:\n%s", frac*100, h, out)
			}
		}
		if code, out := run1(t, l.apply(to)); code != 0 {
			t.Fatalf("completing apply: %d %s", code, out)
		}
		if h := familyHoldings(t, be, fromRS, toRS); h != [2]holding{holdsNew, holdsNew} {
			t.Fatalf("after the completing apply: %v", h)
		}
		if _, out := run1(t, l.cmd("status")); strings.Contains(out, "did not finish") {
			t.Errorf("status still reports an unfinished apply after it was completed:\n%s", out)
		}
	}
	t.Logf("kill point        what each family held\n%s", strings.Join(table, "\n"))
	if bad > 0 {
		t.Fatalf("%d kills left the firewall more open than both policies", bad)
	}
}

// SIGTERM (systemd stopping the unit) or SIGINT during apply: the change
// either completes (exit 0, the new rules) or never starts (exit 128+sig,
// the old rules), and the lock is free afterwards.
func TestSignalledApply(t *testing.T) {
	l := newFaultLab(t, "sigterm", "--backend", "iptables")
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.hcl"), filepath.Join(dir, "b.hcl")
	rangePolicy(t, a, 0, 8_000)
	rangePolicy(t, b, 2_000, 8_000)
	aRS, bRS := compilePolicy(t, a), compilePolicy(t, b)
	be, err := openIn(l, "iptables")
	if err != nil {
		t.Fatal(err)
	}
	if code, out := run1(t, l.apply(a)); code != 0 {
		t.Fatalf("apply: %d %s", code, out)
	}
	start := time.Now()
	if code, out := run1(t, l.apply(b)); code != 0 {
		t.Fatalf("apply: %d %s", code, out)
	}
	whole := time.Since(start)
	from, to, fromRS, toRS := b, a, bRS, aRS
	for i, tc := range []struct {
		sig  syscall.Signal
		frac float64
	}{{syscall.SIGTERM, 0.05}, {syscall.SIGTERM, 0.5}, {syscall.SIGINT, 0.3}, {syscall.SIGTERM, 0.8}} {
		if i > 0 {
			from, to, fromRS, toRS = to, from, toRS, fromRS
		}
		c := l.apply(to)
		var out strings.Builder
		c.Stdout, c.Stderr = &out, &out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(tc.frac * float64(whole)))
		c.Process.Signal(tc.sig)
		err := c.Wait()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = exitSignal + int(ws.Signal()) // killed before it caught signals: as a shell reports it
			}
		}
		h := familyHoldings(t, be, fromRS, toRS)
		t.Logf("%v at %.0f%%: exit %d, IPv4 %s, IPv6 %s", tc.sig, tc.frac*100, code, h[0], h[1])
		switch code {
		case 0:
			if h != [2]holding{holdsNew, holdsNew} {
				t.Errorf("exit 0 but the families hold %v\n%s", h, out.String())
			}
		case exitSignal + int(tc.sig):
			if h != [2]holding{holdsOld, holdsOld} {
				t.Errorf("exit %d but the families hold %v\n%s", code, h, out.String())
			}
			if ee.Exited() && !strings.Contains(out.String(), "nothing was applied") {
				t.Errorf("exit %d without saying nothing was applied:\n%s", code, out.String())
			}
			from, to, fromRS, toRS = to, from, toRS, fromRS // nothing changed: the next round applies the same again
		default:
			t.Errorf("exit %d after %v\n%s", code, tc.sig, out.String())
		}
		if held := lockedFiles(t, filepath.Join(l.state, "*", "lock")); len(held) > 0 {
			t.Errorf("the lock was not released: %v", held)
		}
		if code, out := run1(t, l.cmd("--policy", to, "apply", "--auto-approve", "--force", "--lock-timeout", "0s")); code != 0 {
			t.Errorf("apply after the signal: %d %s", code, out)
		}
	}
}

// lockedFiles returns the files matching pattern that a process holds an
// flock on.
func lockedFiles(t *testing.T, pattern string) []string {
	t.Helper()
	matches, _ := filepath.Glob(pattern)
	var held []string
	for _, m := range matches {
		f, err := os.Open(m)
		if err != nil {
			continue
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			held = append(held, m)
		} else {
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		}
		f.Close()
	}
	return held
}
