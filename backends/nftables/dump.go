package nftables

import (
	"encoding/binary"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/portwarden/portwarden/internal/netns"
	"golang.org/x/sys/unix"
)

// elem is one set element as a dump gives it: its key, and whether it
// ends an interval.
type elem struct {
	key []byte
	// until is a grant element's deadline (Unix seconds) from its
	// comment, 0 when it has none.
	until int64
	end   bool
	// timeoutOff: the time the kernel has left for the element does not
	// end within a second of until (the element was re-added by hand with
	// another timeout, or has none).
	timeoutOff bool
}

// dumpSet reads every element of an owned set in one netlink dump over a
// socket of its own, decoding each 32 KiB answer as it arrives.
//
// Why not nftables.Conn.GetSetElements: it gathers the whole answer as
// netlink messages, then as SetElements of about 200 bytes each, and with
// 100,000 sources growing those slices cost as much as the kernel's walk
// itself. Here only the keys are kept, copied into shared blocks.
func (b *Backend) dumpSet(set *nftables.Set) ([]elem, error) {
	var out []elem
	err := netns.DoPath(b.netns, func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		if err := unix.Sendto(fd, getSetElemRequest(set), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		// A 32 KiB buffer makes the kernel fill every further answer up to
		// 32 KiB (see largeDumps).
		buf := make([]byte, dumpSkbBytes)
		var arena []byte
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
				switch m.Header.Type {
				case unix.NLMSG_DONE:
					return nil
				case unix.NLMSG_ERROR:
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
				if out, arena, err = decodeElems(m.Data[4:], out, arena); err != nil {
					return err
				}
			}
		}
		return fmt.Errorf("the dump did not end")
	})
	return out, err
}

// elemComment is the comment in an element's user data (libnftnl's
// type-length-value records; the comment is type 0, NUL-terminated).
func elemComment(ud []byte) string {
	for len(ud) >= 2 {
		typ, l := ud[0], int(ud[1])
		if 2+l > len(ud) {
			return ""
		}
		if typ == 0 { // NFTNL_UDATA_SET_ELEM_COMMENT
			return strings.TrimRight(string(ud[2:2+l]), "\x00")
		}
		ud = ud[2+l:]
	}
	return ""
}

func getSetElemRequest(set *nftables.Set) []byte {
	attr := func(b []byte, typ uint16, s string) []byte {
		l := unix.SizeofNlAttr + len(s) + 1
		b = binary.NativeEndian.AppendUint16(b, uint16(l))
		b = binary.NativeEndian.AppendUint16(b, typ)
		b = append(b, s...)
		b = append(b, 0)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	b := make([]byte, unix.NLMSG_HDRLEN, 128)
	b = append(b, byte(set.Table.Family), unix.NFNETLINK_V0, 0, 0) // struct nfgenmsg
	b = attr(b, unix.NFTA_SET_ELEM_LIST_TABLE, set.Table.Name)
	b = attr(b, unix.NFTA_SET_ELEM_LIST_SET, set.Name)
	binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:6], uint16(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETSETELEM))
	binary.NativeEndian.PutUint16(b[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	return b
}

// eachAttr calls fn for each netlink attribute in b.
func eachAttr(b []byte, fn func(typ uint16, data []byte) error) error {
	for len(b) >= unix.SizeofNlAttr {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) & 0x3fff // NLA_TYPE_MASK: without the nested and byte-order flags
		if l < unix.SizeofNlAttr || l > len(b) {
			return fmt.Errorf("malformed netlink attribute")
		}
		if err := fn(typ, b[unix.SizeofNlAttr:l]); err != nil {
			return err
		}
		l = (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if l > len(b) {
			return nil
		}
		b = b[l:]
	}
	return nil
}

// decodeElems appends the elements of one NFT_MSG_NEWSETELEM answer;
// keys are copied into arena, which grows in blocks.
func decodeElems(b []byte, out []elem, arena []byte) ([]elem, []byte, error) {
	err := eachAttr(b, func(typ uint16, data []byte) error {
		if typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			return nil
		}
		return eachAttr(data, func(typ uint16, data []byte) error {
			if typ != unix.NFTA_LIST_ELEM {
				return nil
			}
			var e elem
			expires := int64(-1)
			err := eachAttr(data, func(typ uint16, data []byte) error {
				switch typ {
				case unix.NFTA_SET_ELEM_KEY:
					return eachAttr(data, func(typ uint16, data []byte) error {
						if typ == unix.NFTA_DATA_VALUE {
							if cap(arena)-len(arena) < len(data) {
								arena = make([]byte, 0, 64<<10)
							}
							arena = append(arena, data...)
							e.key = arena[len(arena)-len(data) : len(arena) : len(arena)]
						}
						return nil
					})
				case unix.NFTA_SET_ELEM_FLAGS:
					if len(data) >= 4 {
						e.end = binary.BigEndian.Uint32(data)&unix.NFT_SET_ELEM_INTERVAL_END != 0
					}
				case unix.NFTA_SET_ELEM_EXPIRATION:
					if len(data) >= 8 {
						expires = int64(binary.BigEndian.Uint64(data))
					}
				case unix.NFTA_SET_ELEM_USERDATA:
					e.until, _ = parseUntilComment(elemComment(data))
				}
				return nil
			})
			if e.until != 0 {
				// The deadline the kernel keeps, from the milliseconds it has
				// left, must agree with the one the comment records.
				left := time.Until(time.Unix(e.until, 0)).Milliseconds()
				e.timeoutOff = expires < 0 || max(expires-left, left-expires) > 1000
			}
			if err == nil && e.key != nil {
				out = append(out, e)
			}
			return err
		})
	})
	return out, arena, err
}
