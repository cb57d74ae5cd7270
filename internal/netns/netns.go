package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultPrefix starts the name of every namespace this package creates
// unless PORTWARDEN_NETNS_PREFIX names another, so that two tools or two CI
// jobs on one host keep apart.
const DefaultPrefix = "pwt-"

// Prefix is the prefix in force: PORTWARDEN_NETNS_PREFIX or DefaultPrefix.
func Prefix() string {
	if p := os.Getenv("PORTWARDEN_NETNS_PREFIX"); p != "" {
		return p
	}
	return DefaultPrefix
}

var (
	liveMu sync.Mutex
	live   = map[*NS]bool{} // created here and not closed yet
)

// NS is a named network namespace (visible to `ip netns`).
type NS struct {
	Name   string
	handle vnetns.NsHandle
	link   *netlink.Handle
}

// New creates a namespace named Prefix+label+"-"+random suffix, with its
// loopback interface up.
func New(label string) (*NS, error) {
	var suffix [3]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return nil, err
	}
	if err := validName(Prefix()); err != nil {
		return nil, err
	}
	name := Prefix() + label + "-" + hex.EncodeToString(suffix[:])
	handle, err := createNamed(name)
	if err != nil {
		return nil, fmt.Errorf("create network namespace %s: %w", name, err)
	}
	ns := &NS{Name: name, handle: handle}
	liveMu.Lock()
	live[ns] = true
	liveMu.Unlock()
	ns.link, err = netlink.NewHandleAt(handle)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink handle in %s: %w", name, err)
	}
	if err := ns.LinkUp("lo"); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

// createNamed runs netns.NewNamed on a locked thread that is thrown away
// afterwards, because NewNamed moves the calling thread into the new
// namespace.
func createNamed(name string) (vnetns.NsHandle, error) {
	type result struct {
		h   vnetns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		h, err := vnetns.NewNamed(name)
		ch <- result{h, err}
	}()
	r := <-ch
	return r.h, r.err
}

// Path is the namespace's bind mount, usable as backends.Config.NetNS.
func (n *NS) Path() string { return "/run/netns/" + n.Name }

// Fd is an open file descriptor of the namespace, valid until Close.
func (n *NS) Fd() int { return int(n.handle) }

// Close kills every process left inside the namespace (a daemon a test
// started, its children) and deletes the namespace.
func (n *NS) Close() error {
	liveMu.Lock()
	delete(live, n)
	liveMu.Unlock()
	if n.handle.IsOpen() {
		killProcessesIn(n.handle)
	}
	if n.link != nil {
		n.link.Close()
		n.link = nil
	}
	if n.handle.IsOpen() {
		n.handle.Close()
	}
	err := vnetns.DeleteNamed(n.Name)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// Do runs fn on an OS thread inside the namespace. Sockets fn creates stay in
// the namespace after Do returns; child processes fn starts run in it.
func (n *NS) Do(fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := vnetns.Set(n.handle); err != nil {
			ch <- fmt.Errorf("enter namespace %s: %w", n.Name, err)
			return
		}
		ch <- fn()
	}()
	return <-ch
}

// Run runs a command inside the namespace and returns its combined output.
func (n *NS) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var out []byte
	err := n.Do(func() error {
		var err error
		out, err = exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), n.Name, err, out)
		}
		return nil
	})
	return out, err
}

// LinkUp sets an interface up.
func (n *NS) LinkUp(ifname string) error {
	l, err := n.link.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", ifname, n.Name, err)
	}
	if err := n.link.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up in %s: %w", ifname, n.Name, err)
	}
	return nil
}

// AddAddr assigns an address to an interface; IPv6 addresses skip duplicate
// address detection so they are usable at once.
func (n *NS) AddAddr(ifname string, p netip.Prefix) error {
	l, err := n.link.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", ifname, n.Name, err)
	}
	addr := &netlink.Addr{IPNet: prefixToIPNet(p)}
	if p.Addr().Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := n.link.AddrAdd(l, addr); err != nil {
		return fmt.Errorf("add %s to %s in %s: %w", p, ifname, n.Name, err)
	}
	return nil
}

// AddRoute routes dst through an interface (on-link, no gateway).
func (n *NS) AddRoute(ifname string, dst netip.Prefix) error {
	l, err := n.link.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", ifname, n.Name, err)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixToIPNet(dst), Scope: netlink.SCOPE_LINK}
	if err := n.link.RouteReplace(r); err != nil {
		return fmt.Errorf("route %s via %s in %s: %w", dst, ifname, n.Name, err)
	}
	return nil
}

// Veth connects two namespaces with a veth pair: nameA inside a, nameB
// inside b, both up. Names must be at most 15 bytes.
func Veth(a *NS, nameA string, b *NS, nameB string) error {
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: nameA},
		PeerName:      nameB,
		PeerNamespace: netlink.NsFd(b.Fd()),
	}
	if err := a.link.LinkAdd(veth); err != nil {
		return fmt.Errorf("veth %s(%s)-%s(%s): %w", nameA, a.Name, nameB, b.Name, err)
	}
	if err := a.LinkUp(nameA); err != nil {
		return err
	}
	return b.LinkUp(nameB)
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// DoPath runs fn on an OS thread inside the namespace bind-mounted or
// linked at path (/run/netns/NAME, /proc/PID/ns/net); an empty path runs fn
// where the caller is. The thread is discarded afterwards.
func DoPath(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		h, err := vnetns.GetFromPath(path)
		if err != nil {
			ch <- fmt.Errorf("open network namespace %s: %w", path, err)
			return
		}
		defer h.Close()
		if err := vnetns.Set(h); err != nil {
			ch <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		ch <- fn()
	}()
	return <-ch
}

// Sysctl sets a sysctl of the namespace, e.g. "net.ipv4.icmp_ratelimit".
// Network sysctls are per namespace: the file is opened from a thread
// inside it.
func (n *NS) Sysctl(key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	return n.Do(func() error {
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, n.Name, err)
		}
		return nil
	})
}

// CloseAll closes every namespace this process created and has not closed:
// the last resort of a signal handler.
func CloseAll() {
	liveMu.Lock()
	all := make([]*NS, 0, len(live))
	for ns := range live {
		all = append(all, ns)
	}
	liveMu.Unlock()
	for _, ns := range all {
		ns.Close()
	}
}

var closeOnSignal sync.Once

// CloseAllOnSignal makes SIGINT, SIGTERM and SIGHUP delete every namespace
// this process created before it exits, so that an interrupted test run
// leaves none behind. Programs that handle these signals themselves (and
// close their namespaces on the way out) do not call it.
func CloseAllOnSignal() {
	closeOnSignal.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		go func() {
			sig := <-ch
			CloseAll()
			fmt.Fprintf(os.Stderr, "%v: deleted this process's network namespaces\n", sig)
			os.Exit(128 + int(sig.(syscall.Signal)))
		}()
	})
}

// killProcessesIn sends SIGKILL to every process whose network namespace
// is the one h refers to.
func killProcessesIn(h vnetns.NsHandle) {
	var want unix.Stat_t
	if unix.Fstat(int(h), &want) != nil {
		return
	}
	self := os.Getpid()
	for range 5 { // a dying parent may fork; bounded
		procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
		killed := 0
		for _, p := range procs {
			var st unix.Stat_t
			if unix.Stat(p, &st) != nil || st.Ino != want.Ino || st.Dev != want.Dev {
				continue
			}
			pid, err := strconv.Atoi(strings.Split(p, "/")[2])
			if err != nil || pid == self {
				continue
			}
			if unix.Kill(pid, unix.SIGKILL) == nil {
				killed++
			}
		}
		if killed == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// validName refuses a prefix that cannot start a namespace name.
func validName(prefix string) error {
	if strings.ContainsAny(prefix, "/ \t\n") || prefix == "." || prefix == ".." {
		return fmt.Errorf("PORTWARDEN_NETNS_PREFIX %q cannot start a namespace name: use letters, digits and dashes", prefix)
	}
	return nil
}
