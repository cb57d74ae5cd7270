package ansibletest

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
)

// The lab: one bridge in a hub namespace, the controller, three servers
// and three peers, all in 198.18.0.0/24.
const (
	ctlAddr = "198.18.0.10"
	// A source v2 of the policy adds; no host has it.
	absentPeer = "198.18.0.99"
)

var (
	serverAddrs = []string{"198.18.0.11", "198.18.0.12", "198.18.0.13"}
	// Not adjacent, so the policy's sets keep one /32 per peer.
	peerAddrs = []string{"198.18.0.21", "198.18.0.23", "198.18.0.25"}
	// The ports the policy manages; each server listens on both.
	managedPorts = []int{27, 8027}
)

type host struct {
	name string
	addr string
	ns   *netns.NS
}

type lab struct {
	t       *testing.T
	dir     string
	bin     string // the portwarden binary, built once
	ctl     *host
	servers []*host
	peers   []*host
	env     []string // ANSIBLE_* for ansible-playbook
}

func TestAnsible(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, tool := range []string{"ansible-playbook", "/usr/sbin/sshd", "ssh", "ssh-keygen", "nft", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing and CI=true forbids skipping: .ci/run installs ansible-core, openssh-server and openssh-client", tool)
			}
			t.Skipf("%s is missing (apt-get install ansible-core openssh-server openssh-client)", tool)
		}
	}
	l := newLab(t)

	v1 := l.policy("v1", peerAddrs)
	v2 := l.policy("v2", []string{peerAddrs[0], peerAddrs[1], absentPeer})
	v3 := l.policy("v3", []string{peerAddrs[0], peerAddrs[1], peerAddrs[2], absentPeer})

	t.Run("first run changes every server", func(t *testing.T) {
		out := l.play(t, 0, "site.yml", "-e", "portwarden_policy_src="+v1)
		recap := parseRecap(t, out)
		for _, s := range l.servers {
			if recap[s.name]["changed"] == 0 || recap[s.name]["failed"] != 0 {
				t.Errorf("%s: want changed>0 failed=0, got %v", s.name, recap[s.name])
			}
			if st := l.status(t, s); !st.Installed {
				t.Errorf("%s: nothing installed after the first run", s.name)
			}
		}
		t.Logf("recap of the first run:\n%s", recapLines(out))
	})

	// The rollout's rollback deadline must outlast one server's checks
	// from every peer, which take a few runs' worth of tasks: scale it by
	// how long a run that changes nothing takes on this machine now.
	deadline := 45 * time.Second
	t.Run("second run changes nothing", func(t *testing.T) {
		start := time.Now()
		out := l.play(t, 0, "site.yml", "-e", "portwarden_policy_src="+v1)
		deadline = min(max(deadline, 2*time.Since(start)), 5*time.Minute).Round(time.Second)
		recap := parseRecap(t, out)
		for _, s := range l.servers {
			if recap[s.name]["changed"] != 0 {
				t.Errorf("%s: want changed=0, got %v", s.name, recap[s.name])
			}
		}
		t.Logf("recap of the second run:\n%s", recapLines(out))
	})

	t.Run("check and diff mode show the change and write nothing", func(t *testing.T) {
		before := l.fingerprints(t)
		out := l.play(t, 0, "site.yml", "--check", "--diff", "-e", "portwarden_policy_src="+v2)
		recap := parseRecap(t, out)
		for _, s := range l.servers {
			if recap[s.name]["changed"] == 0 {
				t.Errorf("%s: check mode reports no change, got %v", s.name, recap[s.name])
			}
		}
		applied := taskResults(out, "Apply the policy")
		for _, s := range l.servers {
			if applied[s.name] != "changed" {
				t.Errorf("%s: the policy task says %q in check mode, want changed", s.name, applied[s.name])
			}
		}
		for _, want := range []string{"-  allow " + peerAddrs[2] + "/32", "+  allow " + absentPeer + "/32"} {
			if n := strings.Count(out, want); n < len(l.servers) {
				t.Errorf("diff shows %q %d times, want once per server (%d)", want, n, len(l.servers))
			}
		}
		if after := l.fingerprints(t); !equal(before, after) {
			t.Errorf("check mode changed the kernel: fingerprints %v -> %v", before, after)
		}
		t.Logf("recap of the check-mode run:\n%s", recapLines(out))
	})

	t.Run("a removed source is refused from its peer after the next run", func(t *testing.T) {
		for _, s := range l.servers {
			if got := l.dial(l.peers[2], s.addr, 27); got != "open" {
				t.Fatalf("before: %s -> %s:27 is %s, want open (v1 allows it)", l.peers[2].name, s.name, got)
			}
		}
		out := l.play(t, 0, "site.yml", "-e", "portwarden_policy_src="+v2)
		recap := parseRecap(t, out)
		for _, s := range l.servers {
			if recap[s.name]["changed"] == 0 {
				t.Errorf("%s: want changed, got %v", s.name, recap[s.name])
			}
			if got := l.dial(l.peers[2], s.addr, 27); got != "filtered" {
				t.Errorf("%s -> %s:27 is %s after removing it, want filtered", l.peers[2].name, s.name, got)
			}
			if got := l.dial(l.peers[0], s.addr, 27); got != "open" {
				t.Errorf("%s -> %s:27 is %s, want open", l.peers[0].name, s.name, got)
			}
		}
	})

	t.Run("mesh verification passes with every case in its JUnit", func(t *testing.T) {
		junit := filepath.Join(l.dir, "mesh.xml")
		out := l.play(t, 0, "portwarden.firewall.verify_mesh", "-e", "portwarden_policy_src="+v2, "-e", "portwarden_mesh_junit="+junit)
		data, err := os.ReadFile(junit)
		if err != nil {
			t.Fatalf("no JUnit report: %v\n%s", err, out)
		}
		var suite struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Errors   int `xml:"errors,attr"`
			Cases    []struct {
				Name string `xml:"name,attr"`
			} `xml:"testcase"`
		}
		if err := xml.Unmarshal(data, &suite); err != nil {
			t.Fatalf("JUnit report: %v\n%s", err, data)
		}
		want := len(l.peers) * len(l.servers) * len(managedPorts)
		if suite.Tests != want || len(suite.Cases) != want || suite.Failures != 0 || suite.Errors != 0 {
			t.Errorf("JUnit: tests=%d cases=%d failures=%d errors=%d, want %d cases, no failures\n%s",
				suite.Tests, len(suite.Cases), suite.Failures, suite.Errors, want, data)
		}
		names := map[string]bool{}
		for _, c := range suite.Cases {
			names[c.Name] = true
		}
		for _, p := range l.peers {
			for _, s := range l.servers {
				for _, port := range managedPorts {
					if n := fmt.Sprintf("%s -> %s tcp/%d", p.name, s.name, port); !names[n] {
						t.Errorf("JUnit has no case %q", n)
					}
				}
			}
		}
		t.Logf("mesh JUnit: tests=%d failures=%d errors=%d", suite.Tests, suite.Failures, suite.Errors)
	})

	t.Run("a rule deleted by hand is repaired on that server only", func(t *testing.T) {
		srv := l.servers[1]
		l.deleteAllowed(t, srv, peerAddrs[0])
		if got := l.dial(l.peers[0], srv.addr, 27); got == "open" {
			t.Fatalf("the hand edit did not cut %s -> %s:27", l.peers[0].name, srv.name)
		}
		out := l.play(t, 0, "site.yml", "-e", "portwarden_policy_src="+v2)
		recap := parseRecap(t, out)
		for _, s := range l.servers {
			want := 0
			if s == srv {
				want = 1
			}
			if recap[s.name]["changed"] != want {
				t.Errorf("%s: changed=%d, want %d", s.name, recap[s.name]["changed"], want)
			}
		}
		if got := taskResults(out, "Apply the policy")[srv.name]; got != "changed" {
			t.Errorf("%s: the policy task says %q, want changed (the repair)", srv.name, got)
		}
		if got := l.dial(l.peers[0], srv.addr, 27); got != "open" {
			t.Errorf("after the run %s -> %s:27 is %s, want open (repaired)", l.peers[0].name, srv.name, got)
		}
	})

	t.Run("a bad policy fails naming file and line", func(t *testing.T) {
		bad := l.badPolicy()
		out := l.play(t, 2, "site.yml", "--limit", l.servers[0].name, "-e", "portwarden_policy_src="+bad)
		if !regexp.MustCompile(`policy\.hcl:4:\d+: error: Port out of range`).MatchString(out) {
			t.Errorf("the failure does not name policy.hcl:4:\n%s", out)
		}
		if recap := parseRecap(t, out); recap[l.servers[0].name]["failed"] != 1 {
			t.Errorf("want failed=1, got %v", recap[l.servers[0].name])
		}
	})

	t.Run("a serial rollout stops and rolls back at a failed check", func(t *testing.T) {
		// A foreign rule on the second server drops the third peer on
		// port 27: v3 admits that peer, so its verification fails there.
		srv := l.servers[1]
		l.nft(t, srv, "add table inet pwtforeign",
			"add chain inet pwtforeign input { type filter hook input priority 10; policy accept; }",
			"add rule inet pwtforeign input ip saddr "+peerAddrs[2]+" tcp dport 27 drop")
		before := l.fingerprints(t)
		t.Logf("rollback deadline: %s", deadline)
		started := time.Now()
		out := l.play(t, 2, "portwarden.firewall.rollout", "-e", "portwarden_policy_src="+v3,
			"-e", "portwarden_rollout_serial=1", "-e", "portwarden_rollout_deadline="+deadline.String())
		after := l.fingerprints(t)
		if after[0] == before[0] {
			t.Errorf("%s: still on its previous rules, want v3 applied and confirmed", l.servers[0].name)
		}
		if l.dial(l.peers[2], l.servers[0].addr, 27) != "open" {
			t.Errorf("%s does not admit %s after the rollout", l.servers[0].name, l.peers[2].name)
		}
		if after[1] != before[1] {
			t.Errorf("%s: fingerprint %s, want its previous rules %s (rolled back)", srv.name, after[1], before[1])
		}
		if after[2] != before[2] {
			t.Errorf("%s: changed by the rollout, want untouched", l.servers[2].name)
		}
		if st := l.status(t, l.servers[2]); st.Applied == nil || !st.Applied.When.Before(started) {
			t.Errorf("%s: its last apply is not from before the rollout (%+v)", l.servers[2].name, st.Applied)
		}
		if !strings.Contains(out, "failed verification from its peers") {
			t.Errorf("the rollout did not stop with the rollback message")
		}
		if t.Failed() {
			t.Logf("output of the rollout:\n%s", out)
		}
		t.Logf("recap of the rollout:\n%s", recapLines(out))
	})
}

func newLab(t *testing.T) *lab {
	l := &lab{t: t, dir: t.TempDir()}
	l.bin = filepath.Join(l.dir, "portwarden")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	build := exec.Command(gobin, "build", "-o", l.bin, "github.com/portwarden/portwarden/cmd/portwarden")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build portwarden: %v\n%s", err, out)
	}

	hub := l.newNS("ahub")
	if _, err := hub.Run(context.Background(), "ip", "link", "add", "br0", "type", "bridge"); err != nil {
		t.Fatal(err)
	}
	if err := hub.LinkUp("br0"); err != nil {
		t.Fatal(err)
	}
	attach := func(name, addr string) *host {
		h := &host{name: name, addr: addr, ns: l.newNS("a" + name)}
		port := "b-" + name
		if err := netns.Veth(hub, port, h.ns, "eth0"); err != nil {
			t.Fatal(err)
		}
		if _, err := hub.Run(context.Background(), "ip", "link", "set", port, "master", "br0"); err != nil {
			t.Fatal(err)
		}
		if err := h.ns.AddAddr("eth0", netip.MustParsePrefix(addr+"/24")); err != nil {
			t.Fatal(err)
		}
		return h
	}
	l.ctl = attach("ctl", ctlAddr)
	for i, a := range serverAddrs {
		l.servers = append(l.servers, attach(fmt.Sprintf("srv%d", i+1), a))
	}
	for i, a := range peerAddrs {
		l.peers = append(l.peers, attach(fmt.Sprintf("peer%d", i+1), a))
	}

	sshDir := filepath.Join(l.dir, "ssh")
	must(t, os.MkdirAll(sshDir, 0o700))
	keygen(t, filepath.Join(sshDir, "host_key"))
	keygen(t, filepath.Join(sshDir, "id"))
	pub, err := os.ReadFile(filepath.Join(sshDir, "id.pub"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(sshDir, "authorized_keys"), pub, 0o600))
	// sshd refuses to start without its privilege separation directory,
	// which Debian creates when the ssh service runs.
	must(t, os.MkdirAll("/run/sshd", 0o755))
	for _, h := range append(append([]*host{}, l.servers...), l.peers...) {
		l.startSSHD(h, sshDir)
		for _, port := range managedPorts {
			if strings.HasPrefix(h.name, "srv") {
				l.listen(h, port)
			}
		}
	}
	for _, h := range append(append([]*host{}, l.servers...), l.peers...) {
		l.waitSSH(h)
	}
	l.writeAnsibleConfig(sshDir)
	return l
}

// newNS creates a namespace deleted at the end, and kills every process
// still inside it (sshd and its sessions, ssh masters, rollback watchdogs)
// before that: all were started by this test.
func (l *lab) newNS(label string) *netns.NS {
	ns := netnstest.New(l.t, label)
	l.t.Cleanup(func() { killInside(l.t, ns) })
	return ns
}

func killInside(t *testing.T, ns *netns.NS) {
	var left []int
	for range 20 {
		out, err := exec.Command("ip", "netns", "pids", ns.Name).Output()
		if err != nil {
			return
		}
		left = left[:0]
		for _, p := range strings.Fields(string(out)) {
			// This test process can show up too: a thread locked into the
			// namespace may be its main one.
			if pid, err := strconv.Atoi(p); err == nil && pid > 1 && pid != os.Getpid() {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return
		}
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("processes still inside %s after killing them: %v", ns.Name, left)
}

func keygen(t *testing.T, path string) {
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "portwarden-test", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
}

func (l *lab) startSSHD(h *host, sshDir string) {
	cfg := filepath.Join(sshDir, "sshd_"+h.name)
	conf := fmt.Sprintf(`Port 22
ListenAddress %s
HostKey %s
PidFile %s
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
UseDNS no
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
SetEnv HOME=%s
`, h.addr, filepath.Join(sshDir, "host_key"), filepath.Join(sshDir, h.name+".pid"), filepath.Join(sshDir, "authorized_keys"), filepath.Join(l.dir, "home"))
	must(l.t, os.WriteFile(cfg, []byte(conf), 0o600))
	logf, err := os.Create(filepath.Join(sshDir, h.name+".log"))
	must(l.t, err)
	cmd := exec.Command("ip", "netns", "exec", h.ns.Name, "/usr/sbin/sshd", "-D", "-e", "-f", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("start sshd in %s: %v", h.ns.Name, err)
	}
	l.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
}

// waitSSH waits (bounded) until sshd of h accepts connections from the
// controller.
func (l *lab) waitSSH(h *host) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		if l.dial(l.ctl, h.addr, 22) == "open" {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(l.dir, "ssh", h.name+".log"))
			l.t.Fatalf("sshd in %s does not answer on %s:22 after 15s:\n%s", h.ns.Name, h.addr, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// listen accepts TCP connections on port inside h and closes them.
func (l *lab) listen(h *host, port int) {
	var ln net.Listener
	err := h.ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", port))
		return err
	})
	must(l.t, err)
	l.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// dial connects from h to addr:port and says open, closed (reset) or
// filtered (no answer within a second).
func (l *lab) dial(h *host, addr string, port int) string {
	state := "error"
	h.ns.Do(func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, strconv.Itoa(port)), time.Second)
		switch {
		case err == nil:
			c.Close()
			state = "open"
		case errors.Is(err, syscall.ECONNREFUSED):
			state = "closed"
		case errors.Is(err, os.ErrDeadlineExceeded):
			state = "filtered"
		default:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				state = "filtered"
			} else {
				state = err.Error()
			}
		}
		return nil
	})
	return state
}

func (l *lab) writeAnsibleConfig(sshDir string) {
	var inv strings.Builder
	inv.WriteString("[servers]\n")
	for _, s := range l.servers {
		d := filepath.Join(l.dir, "hosts", s.name)
		// The namespaces share one file system: each server keeps its
		// binary, policy, unit and state apart, and no unit is enabled.
		fmt.Fprintf(&inv, "%s ansible_host=%s portwarden_binary=%s/portwarden portwarden_config_dir=%s/etc portwarden_state_dir=%s/state portwarden_systemd_dir=%s/systemd\n",
			s.name, s.addr, d, d, d, d)
		must(l.t, os.MkdirAll(filepath.Join(d, "systemd"), 0o755))
	}
	inv.WriteString("\n[peers]\n")
	for _, p := range l.peers {
		fmt.Fprintf(&inv, "%s ansible_host=%s portwarden_peer_dir=%s\n", p.name, p.addr, filepath.Join(l.dir, "hosts", p.name))
	}
	fmt.Fprintf(&inv, "\n[servers:vars]\nportwarden_systemd_enable=false\n\n[all:vars]\nansible_user=root\nansible_python_interpreter=/usr/bin/python3\nportwarden_binary_src=%s\n", l.bin)
	invPath := filepath.Join(l.dir, "inventory.ini")
	must(l.t, os.WriteFile(invPath, []byte(inv.String()), 0o644))

	// The collection is the repository's ansible/ directory, as a user who
	// installs it from the repository gets it.
	colls := filepath.Join(l.dir, "collections")
	must(l.t, os.MkdirAll(filepath.Join(colls, "ansible_collections", "portwarden"), 0o755))
	src, err := filepath.Abs("..")
	must(l.t, err)
	must(l.t, os.Symlink(src, filepath.Join(colls, "ansible_collections", "portwarden", "firewall")))
	cfg := filepath.Join(l.dir, "ansible.cfg")
	must(l.t, os.WriteFile(cfg, nil, 0o644))
	for _, d := range []string{"home", "local", "cp"} {
		must(l.t, os.MkdirAll(filepath.Join(l.dir, d), 0o700))
	}
	l.env = []string{
		"HOME=" + filepath.Join(l.dir, "home"),
		"ANSIBLE_CONFIG=" + cfg,
		"ANSIBLE_INVENTORY=" + invPath,
		"ANSIBLE_COLLECTIONS_PATH=" + colls,
		"ANSIBLE_PRIVATE_KEY_FILE=" + filepath.Join(sshDir, "id"),
		"ANSIBLE_HOST_KEY_CHECKING=False",
		"ANSIBLE_PIPELINING=True",
		"ANSIBLE_FORKS=8",
		"ANSIBLE_GATHERING=explicit",
		"ANSIBLE_LOCAL_TEMP=" + filepath.Join(l.dir, "local"),
		"ANSIBLE_REMOTE_TEMP=" + filepath.Join(l.dir, "remote"),
		"ANSIBLE_SSH_CONTROL_PATH_DIR=" + filepath.Join(l.dir, "cp"),
		"ANSIBLE_SSH_ARGS=-F /dev/null -o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR",
		"ANSIBLE_RETRY_FILES_ENABLED=False",
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_DEPRECATION_WARNINGS=False",
		"ANSIBLE_LOCALHOST_WARNING=False",
		"ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3",
		"ANSIBLE_STDOUT_CALLBACK=default",
		"ANSIBLE_MODULE_COMPRESSION=ZIP_STORED",
	}
}

// play runs ansible-playbook in the controller namespace and wants exit
// code rc. A playbook is a file of ../tests or a collection playbook.
func (l *lab) play(t *testing.T, rc int, playbook string, args ...string) string {
	t.Helper()
	if !strings.Contains(playbook, ".firewall.") {
		p, err := filepath.Abs(filepath.Join("..", "tests", playbook))
		must(t, err)
		playbook = p
	}
	limit := 10 * time.Minute
	if d, ok := t.Deadline(); ok && time.Until(d)-30*time.Second < limit {
		// Leave time for the clean-up: a test killed by -timeout runs none.
		limit = time.Until(d) - 30*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.ctl.ns.Name, "ansible-playbook", playbook}, args...)...)
	cmd.Env = append(os.Environ(), l.env...)
	cmd.Dir = l.dir
	// On time-out, kill ansible-playbook's whole process group (its forks
	// hold the output pipe).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		t.Fatalf("ansible-playbook %s: %v\n%s", playbook, err, out)
	}
	t.Logf("ansible-playbook %s %s: exit %d in %s", filepath.Base(playbook), strings.Join(args, " "), got, time.Since(start).Round(time.Millisecond))
	if got != rc {
		t.Fatalf("ansible-playbook %s exited %d, want %d:\n%s", playbook, got, rc, out)
	}
	return out
}

var recapRE = regexp.MustCompile(`(?m)^(\S+)\s+: ((?:\w+=\d+\s*)+)$`)

// parseRecap reads PLAY RECAP: host -> counter -> value.
func parseRecap(t *testing.T, out string) map[string]map[string]int {
	t.Helper()
	i := strings.LastIndex(out, "PLAY RECAP")
	if i < 0 {
		t.Fatalf("no PLAY RECAP in:\n%s", out)
	}
	recap := map[string]map[string]int{}
	for _, m := range recapRE.FindAllStringSubmatch(out[i:], -1) {
		counts := map[string]int{}
		for _, kv := range strings.Fields(m[2]) {
			k, v, _ := strings.Cut(kv, "=")
			counts[k], _ = strconv.Atoi(v)
		}
		recap[m[1]] = counts
	}
	return recap
}

var taskRE = regexp.MustCompile(`^(?:TASK|RUNNING HANDLER) \[(?:[^\]]* : )?(.*?)\]`)
var resultRE = regexp.MustCompile(`^(ok|changed|fatal|skipping|failed): \[([^\]]+)\]`)

// taskResults reads the per-host results (ok, changed, fatal, skipping) of
// the task named name from ansible-playbook's output.
func taskResults(out, name string) map[string]string {
	res := map[string]string{}
	in := false
	for _, line := range strings.Split(out, "\n") {
		if m := taskRE.FindStringSubmatch(line); m != nil {
			in = m[1] == name
			continue
		}
		if strings.HasPrefix(line, "PLAY") {
			in = false
		}
		if m := resultRE.FindStringSubmatch(line); in && m != nil {
			res[m[2]] = m[1]
		}
	}
	return res
}

func recapLines(out string) string {
	if i := strings.LastIndex(out, "PLAY RECAP"); i >= 0 {
		return strings.TrimSpace(out[i:])
	}
	return ""
}

// policy writes a policy directory: the exposures in policy.hcl, the
// peers' addresses in a second file, as a user keeps lists apart.
func (l *lab) policy(name string, peers []string) string {
	dir := filepath.Join(l.dir, "policies", name)
	must(l.t, os.MkdirAll(dir, 0o755))
	must(l.t, os.WriteFile(filepath.Join(dir, "policy.hcl"), []byte(`variable "web_clients" {
  type    = list(string)
  default = ["`+peerAddrs[0]+`"]
}

expose "nscp" {
  protocol = "tcp"
  ports    = [27]
  default  = "drop"
  allow {
    from    = [address_group.peers]
    comment = "the peers"
  }
}

expose "web" {
  protocol = "tcp"
  ports    = [8027]
  default  = "drop"
  allow {
    from = var.web_clients
  }
}
`), 0o644))
	quoted := make([]string, len(peers))
	for i, p := range peers {
		quoted[i] = strconv.Quote(p)
	}
	must(l.t, os.WriteFile(filepath.Join(dir, "peers.hcl"), []byte("address_group \"peers\" {\n  members = ["+strings.Join(quoted, ", ")+"]\n}\n"), 0o644))
	return dir
}

// badPolicy is a policy directory with the same files and a port out of
// range on line 4 of policy.hcl.
func (l *lab) badPolicy() string {
	dir := l.policy("bad", peerAddrs)
	must(l.t, os.WriteFile(filepath.Join(dir, "policy.hcl"), []byte(`variable "web_clients" { default = [] }
expose "nscp" {
  protocol = "tcp"
  ports    = [70000]
  allow { from = [address_group.peers] }
}
`), 0o644))
	return dir
}

type status struct {
	FormatVersion int    `json:"format_version"`
	Installed     bool   `json:"installed"`
	Fingerprint   string `json:"fingerprint"`
	Applied       *struct {
		When time.Time `json:"when"`
	} `json:"last_applied"`
}

// status reads portwarden status --json on a server, straight from its
// namespace.
func (l *lab) status(t *testing.T, s *host) status {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", s.ns.Name, l.bin, "status", "--json")
	cmd.Env = append(os.Environ(), "PORTWARDEN_STATE_DIR="+filepath.Join(l.dir, "hosts", s.name, "state"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("status on %s: %v\n%s", s.name, err, out)
	}
	var st status
	if err := json.Unmarshal(out, &st); err != nil || st.FormatVersion != 1 {
		t.Fatalf("status on %s: %v (format_version %d)\n%s", s.name, err, st.FormatVersion, out)
	}
	return st
}

func (l *lab) fingerprints(t *testing.T) []string {
	var fps []string
	for _, s := range l.servers {
		fps = append(fps, l.status(t, s).Fingerprint)
	}
	return fps
}

func (l *lab) nft(t *testing.T, h *host, cmds ...string) {
	t.Helper()
	if _, err := h.ns.Run(context.Background(), "nft", strings.Join(cmds, "\n")); err != nil {
		t.Fatal(err)
	}
}

// deleteAllowed empties every set of portwarden's table in h that holds
// addr, as an administrator editing the rules by hand would.
func (l *lab) deleteAllowed(t *testing.T, h *host, addr string) {
	t.Helper()
	out, err := h.ns.Run(context.Background(), "nft", "-j", "list", "sets", "inet")
	must(t, err)
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	must(t, json.Unmarshal(out, &doc))
	n := 0
	for _, o := range doc.Nftables {
		raw, ok := o["set"]
		if !ok {
			continue
		}
		var set struct {
			Table string          `json:"table"`
			Name  string          `json:"name"`
			Elem  json.RawMessage `json:"elem"`
		}
		must(t, json.Unmarshal(raw, &set))
		if set.Table != "portwarden" || !strings.Contains(string(set.Elem), `"`+addr+`"`) {
			continue
		}
		l.nft(t, h, fmt.Sprintf("flush set inet portwarden %s", set.Name))
		n++
	}
	if n == 0 {
		t.Fatalf("no set of portwarden's table in %s holds %s:\n%s", h.name, addr, out)
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
