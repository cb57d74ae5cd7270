package main

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/portwarden/portwarden/internal/listen"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"portwarden": func() { os.Exit(run(os.Args[1:])) },
		// tcp-listen PORT...: accept and close connections (the managed
		// service a verification probes), until killed.
		"tcp-listen": tcpListen,
	})
}

// TestScripts runs the CLI scripts in testdata/script. Scripts that need
// the kernel start with `[!kernel] skip` (root; under CI=true a missing
// privilege fails instead) and `netns NAME`, which creates a throwaway namespace
// (deleted when the script ends) and sets $NAME to its name for
// `exec ip netns exec $NAME portwarden ...`.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: os.Getenv("UPDATE_SCRIPTS") == "1", // rewrite golden files in the scripts
		Setup: func(env *testscript.Env) error {
			env.Setenv("NO_COLOR", "1")
			env.Setenv("CI", os.Getenv("CI"))
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "kernel":
			case "sshd": // the lockout tests run a real sshd
				if _, err := exec.LookPath("sshd"); err == nil {
					return true, nil
				}
				if os.Getenv("CI") == "true" {
					return false, fmt.Errorf("this script needs sshd (Debian's openssh-server) and CI=true forbids skipping")
				}
				netnstest.LogSkip("TestScripts (a CLI script)", "needs sshd (Debian's openssh-server)")
				return false, nil
			case "promtool": // metrics.txtar checks its output with Debian's prometheus
				if _, err := exec.LookPath("promtool"); err == nil {
					return true, nil
				}
				if os.Getenv("CI") == "true" {
					return false, fmt.Errorf("this script needs promtool (Debian's prometheus) and CI=true forbids skipping")
				}
				netnstest.LogSkip("TestScripts (a CLI script)", "promtool check metrics needs promtool (Debian's prometheus)")
				return false, nil
			default:
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			if os.Geteuid() == 0 {
				return true, nil
			}
			if os.Getenv("CI") == "true" {
				return false, fmt.Errorf("this script needs root (CAP_NET_ADMIN) and CI=true forbids skipping")
			}
			netnstest.LogSkip("TestScripts (a CLI script)", "kernel script needs root (CAP_NET_ADMIN); skipped outside CI")
			return false, nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"netns":         cmdNetns,
			"jsonmask":      cmdJSONMask,
			"countersmatch": cmdCountersMatch,
			"deadline":      cmdDeadline,
		},
	})
}

func tcpListen() {
	if err := listen.Ports(os.Args[1:]...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening")
	select {}
}

// cmdDeadline sets VAR to the RFC 3339 instant DURATION from now, in
// whole seconds rounded up: deadline VAR 5s.
func cmdDeadline(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: deadline VAR DURATION")
	}
	d, err := time.ParseDuration(args[1])
	if err != nil {
		ts.Fatalf("deadline: %v", err)
	}
	at := time.Now().Add(d).Add(time.Second - 1).Truncate(time.Second).UTC()
	ts.Setenv(args[0], at.Format(time.RFC3339))
}

func cmdNetns(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: netns VAR")
	}
	netns.CloseAllOnSignal()
	ns, err := netns.New("cli")
	if err != nil {
		ts.Fatalf("create namespace: %v", err)
	}
	ts.Defer(func() { ns.Close() })
	ts.Setenv(args[0], ns.Name)
}
