package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends/iptables"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
)

// BenchmarkCLIIptables times the built binary with --backend iptables as
// a fresh process per command, beside a script loading the same content
// with the tools themselves in the same run (interleaved, median of 5,
// each case in namespaces of its own):
//
//	cold apply          portwarden apply  vs  ipset restore (create the sets)
//	                                          + iptables-restore + ip6tables-restore --noflush
//	unchanged re-apply  portwarden apply  vs  ipset restore (build each set beside the
//	                                          live one, swap) + both restores (no jump)
//	one source changed  portwarden apply  vs  the same with the changed content
//
// at 1,000 and 100,000 sources in a list file (PORTWARDEN_BENCH_SIZES
// picks others). The beside side reloads everything each time, as a
// script without a plan does; portwarden reads the kernel and writes only
// the difference. Run with `make bench` (root).
func BenchmarkCLIIptables(b *testing.B) {
	netnstest.RequireRoot(b)
	for _, tool := range []string{"ipset", "iptables-restore", "ip6tables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s is needed beside portwarden: %v", tool, err)
		}
	}
	bin := cliBinary(b)
	runCLIBench(b, []int{1000, 100_000}, func(n int) []cliRow {
		if n == 0 {
			return nil
		}
		return benchIptablesSize(b, bin, n)
	},
		"portwarden --backend iptables as a fresh process per command beside ipset restore + iptables-restore (median of the rounds)")
}

// iptScripts is what the beside side loads: the sets as created cold, the
// sets rebuilt beside the live ones and swapped, and each family's rules
// with and without the INPUT jump.
type iptScripts struct {
	setsCold, setsSwap string
	rules, rulesNoJump [2]string
}

func newIptScripts(b *testing.B, dir string) iptScripts {
	pol, diags := policies.Load(dir, policies.Options{})
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	rs, err := rules.Compile(pol)
	if err != nil {
		b.Fatal(err)
	}
	var s iptScripts
	if s.setsCold, err = iptables.RenderSets(rs); err != nil {
		b.Fatal(err)
	}
	// Swap script: every set built under a temporary name, then swapped in.
	create := regexp.MustCompile(`(?m)^(create|add) (\S+)`)
	tmp := create.ReplaceAllString(s.setsCold, "$1 ${2}t")
	var swap strings.Builder
	swap.WriteString(tmp)
	for _, m := range regexp.MustCompile(`(?m)^create (\S+)`).FindAllStringSubmatch(s.setsCold, -1) {
		fmt.Fprintf(&swap, "swap %s %st\ndestroy %st\n", m[1], m[1], m[1])
	}
	s.setsSwap = swap.String()
	v4, v6, err := iptables.RenderFamilies(rs)
	if err != nil {
		b.Fatal(err)
	}
	s.rules = [2]string{v4, v6}
	for i, r := range s.rules {
		s.rulesNoJump[i] = regexp.MustCompile(`(?m)^-I INPUT 1 .*\n`).ReplaceAllString(r, "")
	}
	return s
}

// files writes the scripts into dir and returns their paths.
func (s iptScripts) files(b *testing.B, dir string) (cold, swap string, rules, rulesNoJump [2]string) {
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
		return p
	}
	cold, swap = write("sets.cold", s.setsCold), write("sets.swap", s.setsSwap)
	for i, fam := range []string{"v4", "v6"} {
		rules[i] = write("rules."+fam, s.rules[i])
		rulesNoJump[i] = write("rules-nojump."+fam, s.rulesNoJump[i])
	}
	return
}

func benchIptablesSize(b *testing.B, bin string, n int) []cliRow {
	f := newCLIFixture(b, bin, n)
	state := filepath.Join(f.dir, "state")
	cold, swap, rulesFull, noJump := newIptScripts(b, f.policy).files(b, f.policy)
	_, changedSwap, _, changedNoJump := newIptScripts(b, f.changed).files(b, f.changed)
	const rounds = 5
	pw := func(ns *netns.NS, policy string) (time.Duration, int64) {
		return cliRun(b, ns, state, bin, "--backend", "iptables", "--policy", policy, "apply", "--auto-approve")
	}
	// script loads the sets file with ipset restore, then both families'
	// rules, each a fresh process; the time is their sum.
	script := func(ns *netns.NS, sets string, rules [2]string) time.Duration {
		d, _ := cliRun(b, ns, state, "sh", "-c", "ipset restore < "+sets)
		d4, _ := cliRun(b, ns, state, "sh", "-c", "iptables-restore --noflush < "+rules[0])
		d6, _ := cliRun(b, ns, state, "sh", "-c", "ip6tables-restore --noflush < "+rules[1])
		return d + d4 + d6
	}
	newNS, closeAll := benchNamespaces(b)
	defer closeAll()
	const beside = "ipset restore + iptables-restore"
	coldRow := cliRow{n: n, name: "cold apply", otherName: beside}
	for range rounds {
		d, rss := pw(newNS(), f.policy)
		coldRow.pwRuns, coldRow.pwRSS = append(coldRow.pwRuns, d), append(coldRow.pwRSS, rss)
		coldRow.oRuns = append(coldRow.oRuns, script(newNS(), cold, rulesFull))
		closeAll()
	}
	re := cliRow{n: n, name: "unchanged re-apply", otherName: beside}
	{
		pwNS, scNS := newNS(), newNS()
		pw(pwNS, f.policy)
		script(scNS, cold, rulesFull)
		for range rounds {
			d, rss := pw(pwNS, f.policy)
			re.pwRuns, re.pwRSS = append(re.pwRuns, d), append(re.pwRSS, rss)
			re.oRuns = append(re.oRuns, script(scNS, swap, noJump))
		}
		closeAll()
	}
	one := cliRow{n: n, name: "one source changed", otherName: beside}
	for range rounds {
		pwNS, scNS := newNS(), newNS()
		pw(pwNS, f.policy)
		script(scNS, cold, rulesFull)
		d, rss := pw(pwNS, f.changed)
		one.pwRuns, one.pwRSS = append(one.pwRuns, d), append(one.pwRSS, rss)
		one.oRuns = append(one.oRuns, script(scNS, changedSwap, changedNoJump))
		closeAll()
	}
	return []cliRow{coldRow.finished(), re.finished(), one.finished()}
}
