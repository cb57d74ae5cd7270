// Package doctor checks the environment portwarden works in: privileges,
// kernel and tool support, whether something listens on each exposed
// port, and foreign rules that would decide the managed traffic before or
// after portwarden's. Every problem says what to do.
package doctor

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/auto"
	"github.com/portwarden/portwarden/rules"
)

// Finding is one check's outcome.
type Finding struct {
	Check   string `json:"check"`
	Problem bool   `json:"problem"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Config says what to check for.
type Config struct {
	Ruleset *rules.Ruleset // the policy's exposures; may be nil
	Backend string         // auto, nftables or iptables
}

// Run runs every check in the caller's network namespace.
func Run(ctx context.Context, cfg Config) []Finding {
	var out []Finding
	add := func(check string, problem bool, msg, fix string) {
		out = append(out, Finding{Check: check, Problem: problem, Message: msg, Fix: fix})
	}
	if os.Geteuid() == 0 {
		add("privileges", false, "running as root (CAP_NET_ADMIN)", "")
	} else {
		add("privileges", true, "not running as root: reading and changing the firewall needs CAP_NET_ADMIN", "run portwarden with sudo")
	}
	conn, err := nftables.New()
	var tables []*nftables.Table
	if err == nil {
		tables, err = conn.ListTables()
	}
	if err != nil {
		add("nf_tables", true, "nf_tables cannot be read: "+err.Error(), "use --backend iptables, or load the nf_tables module (modprobe nf_tables)")
	} else {
		add("nf_tables", false, fmt.Sprintf("nf_tables works (%d tables)", len(tables)), "")
	}
	for _, bin := range []string{"iptables", "ip6tables", "iptables-legacy", "iptables-nft"} {
		if p, err := exec.LookPath(bin); err == nil {
			add("tools", false, bin+" at "+p, "")
		}
	}
	if b, reason, err := auto.Open(cfg.Backend, backends.Config{}); err != nil {
		add("backend", true, "no backend can work here: "+err.Error(), "install nftables or iptables, or run as root")
	} else {
		add("backend", false, b.Name()+": "+reason, "")
	}
	if cfg.Ruleset != nil {
		out = append(out, listening(cfg.Ruleset)...)
	}
	if err == nil {
		out = append(out, foreignNftables(conn, tables)...)
	}
	out = append(out, legacyIptables(ctx)...)
	for _, tool := range []string{"ufw", "firewalld"} {
		if p, err := exec.LookPath(tool); err == nil {
			add("other firewalls", true, tool+" is installed ("+p+"): it may rewrite or reorder rules that decide the managed ports",
				"let "+tool+" allow the managed ports (portwarden then decides who), or disable "+tool)
		}
	}
	return out
}

// Problems counts the findings that are problems.
func Problems(fs []Finding) int {
	n := 0
	for _, f := range fs {
		if f.Problem {
			n++
		}
	}
	return n
}

// listening checks /proc/net for a listener on each exposed port.
func listening(rs *rules.Ruleset) []Finding {
	var out []Finding
	for _, e := range rs.Exposures {
		files, state := []string{"/proc/net/tcp", "/proc/net/tcp6"}, "0A" // TCP_LISTEN
		if e.Protocol == rules.UDP {
			files, state = []string{"/proc/net/udp", "/proc/net/udp6"}, "07" // unconnected UDP socket
		}
		ports := localPorts(files, state)
		for _, r := range e.Ports {
			found := 0
			for p := range ports {
				if p >= r.First && p <= r.Last {
					found++
				}
			}
			name := fmt.Sprintf("%s/%s", e.Protocol, r)
			if found == 0 {
				out = append(out, Finding{Check: "listening", Problem: true,
					Message: fmt.Sprintf("nothing listens on %s (expose %q): allowed peers will get connection refused", name, e.Name),
					Fix:     "start the service, or remove the port from the policy"})
			} else {
				out = append(out, Finding{Check: "listening", Message: fmt.Sprintf("something listens on %s (expose %q)", name, e.Name)})
			}
		}
	}
	return out
}

func localPorts(files []string, state string) map[uint16]bool {
	ports := map[uint16]bool{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != state {
				continue
			}
			_, port, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			if n, err := strconv.ParseUint(port, 16, 16); err == nil {
				ports[uint16(n)] = true
			}
		}
		fh.Close()
	}
	return ports
}

// foreignNftables finds input-hook chains of other tables that drop or
// reject: a packet portwarden accepts is still refused there.
func foreignNftables(conn *nftables.Conn, tables []*nftables.Table) []Finding {
	var out []Finding
	chains, err := conn.ListChains()
	if err != nil {
		return nil
	}
	for _, ch := range chains {
		if ch.Table == nil || (ch.Table.Name == "portwarden" && ch.Table.Family == nftables.TableFamilyINet) {
			continue
		}
		if ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookInput {
			continue
		}
		where := fmt.Sprintf("table %s %s, chain %s (hook input, priority %d)", family(ch.Table.Family), ch.Table.Name, ch.Name, priority(ch))
		order := "after"
		switch {
		case priority(ch) < 0:
			order = "before"
		case priority(ch) == 0:
			order = "at the same priority as (in no set order with)"
		}
		if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
			out = append(out, Finding{Check: "foreign rules", Problem: true,
				Message: where + " has policy drop: it runs " + order + " portwarden and drops managed traffic portwarden accepts unless one of its rules accepts it",
				Fix:     "add an accept for the managed ports to that chain, or change its policy"})
		}
		rs, err := conn.GetRules(ch.Table, ch)
		if err != nil {
			continue
		}
		refusing := 0
		for _, r := range rs {
			for _, e := range r.Exprs {
				switch v := e.(type) {
				case *expr.Verdict:
					if v.Kind == expr.VerdictDrop {
						refusing++
					}
				case *expr.Reject:
					refusing++
				}
			}
		}
		if refusing > 0 {
			out = append(out, Finding{Check: "foreign rules", Problem: true,
				Message: fmt.Sprintf("%s has %d rule(s) that drop or reject; they run %s portwarden and may refuse peers portwarden allows", where, refusing, order),
				Fix:     "check them with `nft list chain " + family(ch.Table.Family) + " " + ch.Table.Name + " " + ch.Name + "`; exempt the managed ports or let portwarden decide them"})
		}
	}
	return out
}

func priority(ch *nftables.Chain) int {
	if ch.Priority == nil {
		return 0
	}
	return int(*ch.Priority)
}

func family(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return strconv.Itoa(int(f))
}

// legacyIptables looks at legacy iptables' INPUT chains, which nf_tables
// cannot see.
func legacyIptables(ctx context.Context) []Finding {
	var out []Finding
	for _, fam := range []struct{ names, bin string }{{"/proc/net/ip_tables_names", "iptables-legacy"}, {"/proc/net/ip6_tables_names", "ip6tables-legacy"}} {
		data, err := os.ReadFile(fam.names)
		if err != nil || !strings.Contains(string(data), "filter") {
			continue
		}
		rulesText, err := exec.CommandContext(ctx, fam.bin, "-S", "INPUT").Output()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(rulesText), "\n") {
			switch {
			case line == "-P INPUT DROP":
				out = append(out, Finding{Check: "foreign rules", Problem: true,
					Message: fam.bin + ": INPUT has policy DROP: managed traffic that portwarden accepts is dropped there unless a rule accepts it",
					Fix:     "accept the managed ports in legacy INPUT, or use --backend iptables so portwarden's chains sit in the same table"})
			case strings.HasPrefix(line, "-A INPUT") && (strings.Contains(line, "-j DROP") || strings.Contains(line, "-j REJECT")):
				out = append(out, Finding{Check: "foreign rules", Problem: true,
					Message: fam.bin + " INPUT rule refuses traffic: " + line,
					Fix:     "make sure it does not cover the managed ports"})
			}
		}
	}
	return out
}
