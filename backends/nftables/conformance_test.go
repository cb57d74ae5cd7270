package nftables

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/backendtest"
	"github.com/portwarden/portwarden/internal/nfgen"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, &hooks{})
}

// TestConformanceWithCache runs the suite again with a state directory:
// every backend the suite opens is a fresh "process" that may trust the
// cache file instead of reading the kernel, and must behave the same.
func TestConformanceWithCache(t *testing.T) {
	backendtest.Run(t, &hooks{stateDir: t.TempDir()})
}

// hooks is the nftables side of the conformance suite.
type hooks struct{ nsPath, stateDir string }

func (h *hooks) Open(t *testing.T, nsPath string) backends.Backend {
	h.nsPath = nsPath
	if h.stateDir != "" {
		// The backend writes its cache only where the namespace's
		// directory exists, as safeapply.Open makes it for the CLI.
		makeNamespaceDir(t, h.stateDir, nsPath)
	}
	b, err := New(backends.Config{NetNS: nsPath, StateDir: h.stateDir})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Writes is the namespace's nf_tables generation: the kernel bumps it on
// every committed batch, whoever sends it.
func (h *hooks) Writes(t *testing.T) int {
	g, err := nfgen.Generation(h.nsPath)
	if err != nil {
		t.Fatal(err)
	}
	return int(g)
}

func nft(t *testing.T, nsPath string, script string) string {
	t.Helper()
	var out []byte
	err := runIn(nsPath, func(ctx context.Context) error {
		var err error
		out, err = nftCommand(ctx, script)
		return err
	})
	if err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	return string(out)
}

// foreignScript is shaped like what Docker and firewalld load.
const foreignScript = `
table ip filter {
	chain DOCKER-USER {
		return
	}
	chain DOCKER {
		iifname != "docker0" oifname "docker0" ip daddr 198.18.200.2 tcp dport 80 accept
	}
	chain FORWARD {
		type filter hook forward priority filter; policy drop;
		jump DOCKER-USER
		oifname "docker0" ct state established,related accept
		oifname "docker0" jump DOCKER
	}
	chain INPUT {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
	}
}
table inet firewalld {
	set allowed-sources {
		type ipv4_addr
		flags interval
		elements = { 198.18.0.128/25 }
	}
	chain filter_INPUT {
		type filter hook input priority filter + 10; policy accept;
		iifname "lo" accept
		ip saddr @allowed-sources accept
		tcp dport 22 accept
	}
	chain filter_IN_public {
		tcp dport 9090 accept
	}
}
`

func (h *hooks) InstallForeign(t *testing.T, nsPath string) { nft(t, nsPath, foreignScript) }

var countersRE = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// Foreign lists every table but portwarden's, without counters.
func (h *hooks) Foreign(t *testing.T, nsPath string) string {
	var out []string
	for _, table := range []string{"ip filter", "inet firewalld"} {
		out = append(out, countersRE.ReplaceAllString(nft(t, nsPath, "list table "+table), "counter"))
	}
	tables := nft(t, nsPath, "list tables")
	out = append(out, strings.ReplaceAll(tables, "table inet portwarden\n", ""))
	return strings.Join(out, "\n")
}

func (h *hooks) DamageKinds() []string {
	return []string{"delete-element", "delete-rule", "flush-chain", "foreign-rule", "delete-jump", "delete-set-end"}
}

var handleRE = regexp.MustCompile(`comment "portwarden (\S+) (\S+)[^"]*" # handle (\d+)`)

func (h *hooks) Damage(t *testing.T, nsPath, kind, exposure string) {
	chain := chainName(exposure)
	handleOf := func(chainName, ruleKind string) string {
		listing := nft(t, nsPath, "-a list chain inet portwarden "+chainName)
		for _, m := range handleRE.FindAllStringSubmatch(listing, -1) {
			if m[1] == exposure && m[2] == ruleKind {
				return m[3]
			}
		}
		t.Fatalf("no %s rule in %s:\n%s", ruleKind, chainName, listing)
		return ""
	}
	switch kind {
	case "delete-element":
		nft(t, nsPath, "delete element inet portwarden "+setName(exposure, roleAllow4)+" { 198.18.0.2/31 }")
	case "delete-set-end":
		// Leave the interval set half-edited: add a lone address then
		// remove the deny entry, as a careless script might.
		nft(t, nsPath, "add element inet portwarden "+setName(exposure, roleDeny4)+" { 198.18.0.100 }")
	case "delete-rule":
		nft(t, nsPath, "delete rule inet portwarden "+chain+" handle "+handleOf(chain, "allow4"))
	case "flush-chain":
		nft(t, nsPath, "flush chain inet portwarden "+chain)
	case "foreign-rule":
		nft(t, nsPath, "insert rule inet portwarden "+chain+" ip saddr 198.18.0.4 accept")
	case "delete-jump":
		nft(t, nsPath, "delete rule inet portwarden "+baseChainName+" handle "+handleOf(baseChainName, "jump"))
	default:
		t.Fatalf("unknown damage %q", kind)
	}
}
