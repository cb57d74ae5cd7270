package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/portwarden/portwarden/internal/netns"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"portwarden": func() { os.Exit(run(os.Args[1:])) },
	})
}

// TestScripts runs the CLI scripts in testdata/script. Scripts that need
// the kernel start with `[!kernel] skip` (root; under CI=true a missing
// privilege fails instead) and `netns NAME`, which creates a throwaway namespace
// (deleted when the script ends) and sets $NAME to its name for
// `exec ip netns exec $NAME portwarden ...`.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("NO_COLOR", "1")
			env.Setenv("CI", os.Getenv("CI"))
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond != "kernel" {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			if os.Geteuid() == 0 {
				return true, nil
			}
			if os.Getenv("CI") == "true" {
				return false, fmt.Errorf("this script needs root (CAP_NET_ADMIN) and CI=true forbids skipping")
			}
			return false, nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"netns":    cmdNetns,
			"jsonmask": cmdJSONMask,
		},
	})
}

func cmdNetns(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: netns VAR")
	}
	ns, err := netns.New("cli")
	if err != nil {
		ts.Fatalf("create namespace: %v", err)
	}
	ts.Defer(func() { ns.Close() })
	ts.Setenv(args[0], ns.Name)
}
