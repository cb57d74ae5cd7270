package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/nftables"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
)

func compilePolicy(t *testing.T, path string) *rules.Ruleset {
	t.Helper()
	pol, diags := policies.Load(path, policies.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	rs, err := rules.Compile(pol)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// A SIGKILL at any moment of a large apply leaves the old ruleset whole or
// the new one whole (one nf_tables transaction), and the next apply
// completes the change.
func TestKilledApplyLeavesOldOrNew(t *testing.T) {
	ns := netnstest.New(t, "kill")
	exe, err := exec.LookPath("portwarden")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	small, big := filepath.Join(dir, "small.hcl"), filepath.Join(dir, "big.hcl")
	if err := os.WriteFile(small, []byte("expose \"nscp\" {\n  protocol = \"tcp\"\n  ports    = [27]\n  allow {\n    from = [\"198.18.1.0/24\"]\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rangePolicy(t, big, 0, 100_000)
	oldRS, newRS := compilePolicy(t, small), compilePolicy(t, big)
	be, err := nftables.New(backends.Config{NetNS: ns.Path()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	holds := func(rs *rules.Ruleset) bool {
		p, err := be.Plan(ctx, rs)
		if err != nil {
			t.Fatal(err)
		}
		return p.Empty()
	}
	apply := func(policy string) *exec.Cmd {
		c := exec.Command("ip", "netns", "exec", ns.Name, exe, "--policy", policy, "apply", "--auto-approve", "--force")
		c.Env = append(os.Environ(), "PORTWARDEN_STATE_DIR="+filepath.Join(dir, "state"))
		return c
	}
	run := func(policy string) {
		t.Helper()
		if out, err := apply(policy).CombinedOutput(); err != nil {
			t.Fatalf("apply %s: %v\n%s", policy, err, out)
		}
	}
	// One whole apply of the large policy, timed, to place the kills.
	run(small)
	start := time.Now()
	run(big)
	whole := time.Since(start)
	if !holds(newRS) {
		t.Fatal("the large policy did not apply")
	}
	t.Logf("one apply of 100,000 sources takes %s", whole)

	// Kill applies in both directions (growing to 100,000 sources, and
	// shrinking back), at spread fractions of one apply's time.
	from, to := small, big // swapped before each kill: the first shrinks
	fromRS, toRS := oldRS, newRS
	for _, frac := range []float64{0.2, 0.45, 0.7, 0.95} {
		from, to, fromRS, toRS = to, from, toRS, fromRS
		c := apply(to)
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(frac * float64(whole)))
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		c.Wait()
		oldWhole := holds(fromRS)
		newWhole := !oldWhole && holds(toRS)
		t.Logf("%s -> %s killed at %.0f%% (%s): old whole %v, new whole %v", filepath.Base(from), filepath.Base(to), frac*100,
			time.Duration(frac*float64(whole)).Round(time.Millisecond), oldWhole, newWhole)
		if !oldWhole && !newWhole {
			t.Fatalf("killed at %.0f%%: the kernel holds neither the old nor the new ruleset", frac*100)
		}
		run(to)
		if !holds(toRS) {
			t.Fatalf("killed at %.0f%%: the next apply did not complete the change", frac*100)
		}
	}
}
