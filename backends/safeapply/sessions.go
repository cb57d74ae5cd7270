package safeapply

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Session is one live remote-administration connection into this host:
// every TCP connection from Client to Server (one entry per client address
// and server port, however many connections it holds).
type Session struct {
	Client      netip.Addr     `json:"client"`
	Server      netip.AddrPort `json:"server"`
	Connections int            `json:"connections"`
	// Found says where the session was seen: "kernel socket table" or
	// "SSH_CONNECTION".
	Found string `json:"found"`
	// Local: the client is an address of this host, so the traffic arrives
	// on the loopback interface.
	Local bool `json:"local,omitempty"`
	// Interface is the one the session's packets arrive on, as far as the
	// kernel's routing tells (the route back to the client); empty when it
	// cannot tell, and then the guard judges the session on every
	// interface (see arrivals).
	Interface string `json:"interface,omitempty"`
}

// sshDaemons are the process names (comm) whose sockets are SSH sessions:
// OpenSSH's listener and, since 9.8, its per-session process, and dropbear.
var sshDaemons = []string{"sshd", "sshd-session", "dropbear"}

// DefaultSSHPort is assumed to be an SSH port when no SSH daemon's listening
// socket can be seen (no sshd in this namespace, or /proc hides it).
const DefaultSSHPort = 22

type tcpSocket struct {
	local, remote netip.AddrPort
	listening     bool
	established   bool
	inode         uint32
	// ifindex is the interface the socket is bound to (sock_diag's
	// idiag_if): the kernel binds an accepted link-local IPv6 connection
	// to the interface it came in on. 0 when unbound or unknown.
	ifindex uint32
}

// SSHSessions finds the live SSH sessions of the caller's network
// namespace in the kernel's socket table, not in the environment: sudo's
// env_reset and Ansible's become drop SSH_CONNECTION, the kernel does not.
// A session is an established TCP connection held by an SSH daemon's
// process, or whose local port is one an SSH daemon listens on. environ's
// SSH_CONNECTION, when present, adds the session it names. When no SSH
// daemon can be seen listening, DefaultSSHPort is taken for SSH.
func SSHSessions(environ []string) ([]Session, error) {
	socks, err := tcpSockets()
	if err != nil {
		return nil, err
	}
	// Which sockets SSH daemons hold matters only for established
	// connections; without any (a fresh namespace, a console) the walk
	// through every process's descriptors is skipped.
	var owned map[uint32]bool
	if slices.ContainsFunc(socks, func(s tcpSocket) bool { return s.established }) {
		owned = daemonSocketInodes()
	}
	ports := map[uint16]bool{}
	for _, s := range socks {
		if s.listening && owned[s.inode] {
			ports[s.local.Port()] = true
		}
	}
	if len(ports) == 0 {
		ports[DefaultSSHPort] = true
	}
	// A connection between two addresses of this host shows twice in the
	// table, once from each end: the client end marks the session local.
	ends := map[[2]netip.AddrPort]bool{}
	for _, s := range socks {
		if s.established {
			ends[[2]netip.AddrPort{s.local, s.remote}] = true
		}
	}
	byKey := map[[2]string]*Session{}
	// The interface each session's connections are bound to; -1 when
	// they disagree (then none is trusted).
	ifindex := map[[2]string]int64{}
	add := func(client netip.Addr, server netip.AddrPort, found string, local bool, bound uint32) {
		key := [2]string{client.String(), server.String()}
		if s, ok := byKey[key]; ok {
			s.Connections++
			s.Local = s.Local || local
			if ifindex[key] != int64(bound) {
				ifindex[key] = -1
			}
			return
		}
		byKey[key] = &Session{Client: client, Server: server, Connections: 1, Found: found, Local: local}
		ifindex[key] = int64(bound)
	}
	for _, s := range socks {
		if !s.established || !(owned[s.inode] || ports[s.local.Port()]) {
			continue
		}
		local := s.remote.Addr().IsLoopback() || ends[[2]netip.AddrPort{s.remote, s.local}]
		add(s.remote.Addr(), s.local, "kernel socket table", local, s.ifindex)
	}
	if env, ok := sshConnection(environ); ok {
		key := [2]string{env.Client.String(), env.Server.String()}
		if _, seen := byKey[key]; !seen {
			add(env.Client, env.Server, "SSH_CONNECTION", env.Client.IsLoopback(), 0)
		}
	}
	sessions := make([]Session, 0, len(byKey))
	for key, s := range byKey {
		if !s.Local {
			s.Interface = arrivalInterface(s.Client, s.Server.Addr(), ifindex[key])
		}
		sessions = append(sessions, *s)
	}
	slices.SortFunc(sessions, func(a, b Session) int {
		if c := a.Client.Compare(b.Client); c != 0 {
			return c
		}
		return a.Server.Compare(b.Server)
	})
	return sessions, nil
}

// arrivalInterface names the interface a session's packets arrive on: the
// one its socket is bound to, where the kernel bound it (an accepted
// link-local IPv6 connection is bound to the interface it came in on);
// else, for an address that is not link-local, the interface the kernel
// routes traffic back to client through from the session's own address
// server, which is where the client's packets arrive as long as routing is
// symmetric (the usual case, and the only one strict reverse-path
// filtering lets through). "" when it cannot be told: a link-local address
// has a route on every interface, so its route says nothing, and the guard
// then judges the session on every interface. bound is -1 when the
// session's connections are bound to different interfaces.
var arrivalInterface = func(client, server netip.Addr, bound int64) string {
	switch {
	case bound > 0:
		link, err := netlink.LinkByIndex(int(bound))
		if err != nil {
			return ""
		}
		return link.Attrs().Name
	case bound < 0, client.IsLinkLocalUnicast():
		return ""
	}
	opts := &netlink.RouteGetOptions{}
	if server.IsValid() && !server.IsUnspecified() {
		opts.SrcAddr = server.AsSlice()
	}
	routes, err := netlink.RouteGetWithOptions(client.AsSlice(), opts)
	if err != nil || len(routes) == 0 || routes[0].LinkIndex == 0 {
		return ""
	}
	link, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return ""
	}
	return link.Attrs().Name
}

// sshConnection parses SSH_CONNECTION ("client_ip client_port server_ip
// server_port") from environ.
func sshConnection(environ []string) (Session, bool) {
	var v string
	for _, kv := range environ {
		if s, ok := strings.CutPrefix(kv, "SSH_CONNECTION="); ok {
			v = s
		}
	}
	f := strings.Fields(v)
	if len(f) != 4 {
		return Session{}, false
	}
	client, err1 := netip.ParseAddr(f[0])
	server, err2 := netip.ParseAddr(f[2])
	port, err3 := strconv.ParseUint(f[3], 10, 16)
	if err1 != nil || err2 != nil || err3 != nil {
		return Session{}, false
	}
	// sshd writes a link-local address with its zone ("fe80::1%eth0"). A
	// zoned address is in no prefix and differs from the socket table's
	// copy of the same session, so it would be judged as refused by
	// everything; the socket table says which interface it arrives on.
	client, server = client.WithZone(""), server.WithZone("")
	return Session{Client: client.Unmap(), Server: netip.AddrPortFrom(server.Unmap(), uint16(port))}, true
}

// tcpSockets reads the TCP sockets of the caller's network namespace with
// sock_diag, falling back to /proc/net/tcp{,6} where sock_diag is missing
// (inet_diag not loaded, or filtered by a seccomp policy).
func tcpSockets() ([]tcpSocket, error) {
	// Both ways of reading the table walk the kernel's whole connection
	// hash, which is shared by every namespace and sized by the machine's
	// memory: 1-3 ms here even for a namespace without a socket. The
	// per-namespace counters say when there is nothing to find (a new
	// namespace, a host at boot before sshd starts).
	if n, ok := tcpSocketsInUse(); ok && n == 0 {
		return nil, nil
	}
	var out []tcpSocket
	var diagErr error
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		socks, err := netlink.SocketDiagTCP(family)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			diagErr = err
			break
		}
		for _, s := range socks {
			l, ok1 := netip.AddrFromSlice(s.ID.Source)
			r, ok2 := netip.AddrFromSlice(s.ID.Destination)
			if !ok1 || !ok2 {
				continue
			}
			out = append(out, tcpSocket{
				local:       netip.AddrPortFrom(l.Unmap(), s.ID.SourcePort),
				remote:      netip.AddrPortFrom(r.Unmap(), s.ID.DestinationPort),
				listening:   s.State == unix.BPF_TCP_LISTEN,
				established: s.State == unix.BPF_TCP_ESTABLISHED,
				inode:       s.INode,
				ifindex:     s.ID.Interface,
			})
		}
	}
	if diagErr == nil {
		return out, nil
	}
	out = out[:0]
	for _, name := range []string{"tcp", "tcp6"} {
		socks, err := procNetTCP("/proc/thread-self/net/" + name)
		if err != nil {
			return nil, fmt.Errorf("read the TCP socket table: sock_diag: %v; /proc: %w", diagErr, err)
		}
		out = append(out, socks...)
	}
	return out, nil
}

// tcpSocketsInUse counts the caller's namespace's TCP sockets (listening
// and connected, IPv4 and IPv6) from /proc/net/sockstat{,6}; ok is false
// when they cannot be read.
func tcpSocketsInUse() (n int, ok bool) {
	for _, f := range []struct{ file, label string }{{"sockstat", "TCP:"}, {"sockstat6", "TCP6:"}} {
		data, err := os.ReadFile("/proc/thread-self/net/" + f.file)
		if err != nil {
			return 0, false
		}
		found := false
		for line := range strings.Lines(string(data)) {
			// TCP: inuse 3 orphan 0 tw 0 alloc 5 mem 1
			fields := strings.Fields(line)
			if len(fields) >= 3 && fields[0] == f.label && fields[1] == "inuse" {
				v, err := strconv.Atoi(fields[2])
				if err != nil {
					return 0, false
				}
				n, found = n+v, true
			}
		}
		if !found {
			return 0, false
		}
	}
	return n, true
}

// procNetTCP parses /proc/net/tcp or tcp6: addresses are hex in host byte
// order per 32-bit word, ports hex, state hex (01 established, 0A listen).
func procNetTCP(path string) ([]tcpSocket, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []tcpSocket
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		local, err1 := parseProcAddrPort(fields[1])
		remote, err2 := parseProcAddrPort(fields[2])
		state, err3 := strconv.ParseUint(fields[3], 16, 8)
		inode, err4 := strconv.ParseUint(fields[9], 10, 32)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			continue
		}
		out = append(out, tcpSocket{local: local, remote: remote, listening: state == 0x0A, established: state == 0x01, inode: uint32(inode)})
	}
	return out, sc.Err()
}

func parseProcAddrPort(s string) (netip.AddrPort, error) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	raw, err := hex.DecodeString(hexAddr)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(raw); i += 4 { // each 32-bit word is in host (little-endian) order
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", s)
	}
	a, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}

// daemonSocketInodes returns the inodes of the sockets SSH daemon
// processes hold open, from /proc/PID/fd. Socket inodes are unique across
// network namespaces, so matching them against this namespace's table
// picks only this namespace's daemons.
func daemonSocketInodes() map[uint32]bool {
	pids, _ := filepath.Glob("/proc/[0-9]*") // the pattern is valid
	inodes := map[uint32]bool{}
	for _, dir := range pids {
		comm, err := os.ReadFile(dir + "/comm")
		if err != nil || !slices.Contains(sshDaemons, strings.TrimSpace(string(comm))) {
			continue
		}
		fds, err := os.ReadDir(dir + "/fd")
		if err != nil {
			continue // exited, or hidden from us
		}
		for _, fd := range fds {
			link, err := os.Readlink(dir + "/fd/" + fd.Name())
			if err != nil {
				continue
			}
			if s, ok := strings.CutPrefix(link, "socket:["); ok {
				if n, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 32); err == nil {
					inodes[uint32(n)] = true
				}
			}
		}
	}
	return inodes
}
