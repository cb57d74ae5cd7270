// Package nfgen asks nf_tables what a command needs before it decides
// anything: the ruleset generation (a number the kernel bumps on every
// committed change to any nf_tables table of a namespace, so an unchanged
// generation proves that nothing was written), the namespace's cookie, the
// tables, and any dump, over a plain netlink socket read with blocking
// calls; and it sends the apply batch (SendBatch). An exchange through mdlayher/netlink (the runtime's network
// poller, a wake-up between threads) cost 183 µs on a test VM, over a
// plain socket 43 µs (BenchmarkGeneration), and a command asks several
// times.
package nfgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/portwarden/portwarden/internal/netns"
	"golang.org/x/sys/unix"
)

// Generation returns the generation in the namespace at nsPath ("" for the
// caller's own). The kernel never gives 0 (it skips it when the counter
// wraps), so 0 can stand for "unknown".
func Generation(nsPath string) (uint32, error) {
	var gen uint32
	err := Exchange(nsPath, Request(unix.NFT_MSG_GETGEN, 0, unix.AF_UNSPEC), func(typ uint16, _ byte, data []byte) error {
		gen = generationIn(typ, data)
		return nil
	})
	if err == nil && gen == 0 {
		err = fmt.Errorf("no generation in the nf_tables answer")
	}
	if err != nil {
		return 0, fmt.Errorf("read the nf_tables generation: %w", err)
	}
	return gen, nil
}

// generationIn is the generation an answer of type typ carries, 0 when it
// carries none.
func generationIn(typ uint16, data []byte) uint32 {
	var gen uint32
	if typ != unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWGEN {
		return 0
	}
	_ = EachAttr(data, func(a uint16, v []byte) error {
		if a == unix.NFTA_GEN_ID && len(v) >= 4 {
			gen = binary.BigEndian.Uint32(v)
		}
		return nil
	})
	return gen
}

// Table is one nf_tables table: its family (unix.NFPROTO_*) and name.
type Table struct {
	Family byte
	Name   string
}

// Tables lists the tables of family (unix.NFPROTO_UNSPEC for all) in the
// namespace at nsPath.
func Tables(nsPath string, family byte) ([]Table, error) {
	var out []Table
	req := Request(unix.NFT_MSG_GETTABLE, unix.NLM_F_DUMP, family)
	err := Exchange(nsPath, req, func(typ uint16, family byte, data []byte) error {
		if typ != unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWTABLE {
			return nil
		}
		t := Table{Family: family}
		err := EachAttr(data, func(a uint16, v []byte) error {
			if a == unix.NFTA_TABLE_NAME {
				t.Name = cString(v)
			}
			return nil
		})
		out = append(out, t)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list nf_tables tables: %w", err)
	}
	return out, nil
}

// Request is a netlink request of nf_tables message msg (unix.NFT_MSG_*)
// with the extra flags (unix.NLM_F_DUMP for a dump) for family; attributes
// may be appended with AppendAttr.
func Request(msg int, flags uint16, family byte) []byte {
	b := AppendHeader(make([]byte, 0, 128), unix.NFNL_SUBSYS_NFTABLES<<8|uint16(msg), flags, 0)
	return FinishMessage(AppendGenmsg(b, family, 0), 0)
}

// AppendAttr adds a NUL-terminated string attribute to req.
func AppendAttr(req []byte, typ uint16, s string) []byte {
	return FinishMessage(AppendStringAttr(req, typ, s), 0)
}

// AppendHeader appends the header of a netlink request of type typ (the
// whole type: subsystem and message) with the extra flags and sequence
// number seq; FinishMessage writes its length once its body is appended.
func AppendHeader(b []byte, typ, flags uint16, seq uint32) []byte {
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, unix.NLM_F_REQUEST|flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	return binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel's
}

// AppendGenmsg appends the struct nfgenmsg an nf_tables message begins
// with: its family and resource id (the subsystem, in a batch delimiter).
func AppendGenmsg(b []byte, family byte, resID uint16) []byte {
	return binary.BigEndian.AppendUint16(append(b, family, unix.NFNETLINK_V0), resID)
}

// FinishMessage pads b and writes the length of the message that starts
// at start.
func FinishMessage(b []byte, start int) []byte {
	b = pad(b)
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// AppendStringAttr appends a NUL-terminated string attribute.
func AppendStringAttr(b []byte, typ uint16, s string) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofNlAttr+len(s)+1))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, s...)
	return pad(append(b, 0))
}

func pad(b []byte) []byte {
	for len(b)%unix.NLA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// DumpBufferBytes is the most the kernel puts into one netlink dump
// message (SKB_WITH_OVERHEAD(32768) in af_netlink.c). Reading with a
// buffer this large makes the kernel fill every further answer up to it:
// a set dump restarts the set walk for every message, so page-sized
// messages cost four times the walks.
const DumpBufferBytes = 32 << 10

// ErrDumpInterrupted: the kernel changed what it was dumping between two
// parts of the answer (NLM_F_DUMP_INTR), so the parts do not agree.
var ErrDumpInterrupted = errors.New("the nf_tables ruleset changed while it was being read: run the command again")

// Exchange sends req on a new netlink socket in the namespace at nsPath
// and calls fn with the type, the family (from struct nfgenmsg) and the
// attributes of every answer, until the dump or the answer ends. An error
// the kernel returns is returned as its errno.
func Exchange(nsPath string, req []byte, fn func(typ uint16, family byte, attrs []byte) error) error {
	return netns.DoPath(nsPath, func() error {
		fd, err := socket()
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return exchange(fd, req, fn)
	})
}

// exchange is Exchange on the open socket fd.
func exchange(fd int, req []byte, fn func(typ uint16, family byte, attrs []byte) error) error {
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	dump := binary.NativeEndian.Uint16(req[6:8])&unix.NLM_F_DUMP != 0
	buf := make([]byte, DumpBufferBytes)
	for range 1 << 24 { // bounded: a dump of 2^24 answers is broken
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
				return ErrDumpInterrupted
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE, unix.NLMSG_ERROR:
				// Both carry an errno: 0 for an acknowledgement or a
				// dump that ended well.
				if len(m.Data) >= 4 {
					if errno := -int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
						return syscall.Errno(errno)
					}
				}
				return nil
			}
			if len(m.Data) < 4 {
				continue
			}
			if err := fn(m.Header.Type, m.Data[0], m.Data[4:]); err != nil {
				return err
			}
		}
		if !dump {
			return nil // one answer, and no acknowledgement was asked for
		}
	}
	return fmt.Errorf("the dump did not end")
}

// socket opens a bound nf_tables netlink socket in the calling thread's
// namespace.
func socket() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// EachAttr calls fn for every netlink attribute in b, with the nested and
// byte-order flags cleared from its type.
func EachAttr(b []byte, fn func(typ uint16, data []byte) error) error {
	for len(b) >= unix.SizeofNlAttr {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < unix.SizeofNlAttr || l > len(b) {
			return fmt.Errorf("malformed netlink attribute")
		}
		if err := fn(typ, b[unix.SizeofNlAttr:l]); err != nil {
			return err
		}
		l = (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if l > len(b) {
			break
		}
		b = b[l:]
	}
	return nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// Cookie is the namespace's cookie: a 64-bit number the kernel never gives
// to another namespace, unlike inode numbers, which are reused.
func Cookie(nsPath string) (uint64, error) {
	var cookie uint64
	err := netns.DoPath(nsPath, func() error {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		cookie, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read the network namespace cookie: %w", err)
	}
	return cookie, nil
}

// BatchError is the kernel's refusal of one message of a batch: Seq is the
// message's sequence number, Errno the reason, Message the kernel's own
// words where it gave any (extended acknowledgement).
type BatchError struct {
	Seq     uint32
	Errno   syscall.Errno
	Message string
}

func (e *BatchError) Error() string {
	if e.Message != "" {
		return e.Errno.Error() + " (" + e.Message + ")"
	}
	return e.Errno.Error()
}

func (e *BatchError) Unwrap() error { return e.Errno }

// SendBatch sends batch, messages nf_tables messages between a batch
// begin and a batch end, on a new socket in the namespace at nsPath, as
// nft does: the kernel runs a whole batch inside the one sendmsg,
// committing all of it or none, so when sendmsg returns every answer is
// queued already; and as the messages ask no acknowledgement, a batch
// that went in has none. One read that finds nothing waiting is the
// success. An error is the first message the kernel refused (*BatchError).
//
// gen is the generation read on the same socket once the batch is in (0
// when it could not be read). The socket is closed in the background: the
// kernel frees what a commit replaced only after an RCU grace period, and
// the release of any nf_tables socket waits for that (nft_rcv_nl_event
// flushes the namespace's destroy work), some 10 ms on the machines
// portwarden is measured on. Closed here, every command that writes would
// wait for it before writing its state files; closed beside them, the
// wait overlaps them. A netlink socket opened and closed afterwards in the
// same process may still wait for what remains of it.
func SendBatch(nsPath string, batch []byte, messages int) (gen uint32, err error) {
	err = netns.DoPath(nsPath, func() error {
		fd, err := socket()
		if err != nil {
			return err
		}
		defer func() { go unix.Close(fd) }()
		// The send buffer must hold the whole batch. SO_SNDBUFFORCE needs
		// CAP_NET_ADMIN over the host, which a container's root may lack
		// while still managing its own namespace: SO_SNDBUF (up to
		// net.core.wmem_max) is the fallback. The receive buffer holds a
		// refusal of every message (each a header, and the kernel's reason
		// in words), so that the first one is not lost to an overflow.
		if len(batch) > 64<<10 {
			if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, len(batch)+4096) != nil {
				_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, len(batch)+4096)
			}
		}
		if rcv := min(messages*1024, 16<<20); rcv > 64<<10 {
			if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcv) != nil {
				_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcv)
			}
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
		_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
		if err := unix.Sendto(fd, batch, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			if err == unix.EMSGSIZE {
				return fmt.Errorf("the %d-byte batch is larger than this socket may send (net.core.wmem_max, or CAP_NET_ADMIN over the host to exceed it): %w", len(batch), err)
			}
			return err
		}
		var first *BatchError
		overflow := false
		buf := make([]byte, 8192)
		for range 1 << 16 { // bounded: one answer per message at most
			n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			if err == unix.EAGAIN || err == unix.EWOULDBLOCK {
				break
			}
			if err == unix.ENOBUFS {
				// More refusals than the socket held: the kernel says so
				// first, and the ones queued before the overflow follow.
				overflow = true
				continue
			}
			if err != nil {
				return fmt.Errorf("read the kernel's answer to the batch: %w", err)
			}
			msgs, err := syscall.ParseNetlinkMessage(buf[:n])
			if err != nil {
				return err
			}
			for _, m := range msgs {
				if m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4+unix.NLMSG_HDRLEN {
					continue
				}
				errno := -int32(binary.NativeEndian.Uint32(m.Data))
				if errno == 0 || first != nil {
					continue
				}
				first = &BatchError{Seq: binary.NativeEndian.Uint32(m.Data[4+8:]), Errno: syscall.Errno(errno)}
				if m.Header.Flags&unix.NLM_F_ACK_TLVS != 0 {
					_ = EachAttr(m.Data[4+unix.NLMSG_HDRLEN:], func(typ uint16, v []byte) error {
						if typ == unix.NLMSGERR_ATTR_MSG {
							first.Message = cString(v)
						}
						return nil
					})
				}
			}
		}
		if first != nil {
			return first
		}
		if overflow {
			return fmt.Errorf("the kernel refused the batch, and its answers overflowed the socket: %w", unix.ENOBUFS)
		}
		_ = exchange(fd, Request(unix.NFT_MSG_GETGEN, 0, unix.AF_UNSPEC), func(typ uint16, _ byte, data []byte) error {
			gen = generationIn(typ, data)
			return nil
		})
		return nil
	})
	return gen, err
}
