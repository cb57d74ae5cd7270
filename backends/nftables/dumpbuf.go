package nftables

import (
	"errors"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// dumpSkbBytes is the most the kernel puts into one netlink dump message
// (SKB_WITH_OVERHEAD(32768) in af_netlink.c).
const dumpSkbBytes = 32 << 10

// largeDumps makes the kernel fill each dump message of this socket up to
// 32 KiB instead of one page.
//
// Why: the kernel sizes the next dump message by the largest buffer the
// socket has read with so far, and the netlink library reads with one page
// until a message does not fit. A set dump restarts the set walk from the
// first element for every message, so a dump of n elements in messages of
// k costs about n²/2k element visits: with 4 KiB messages, dumping 100,000
// intervals took about 2 s, with 32 KiB a quarter of that or less
// (BenchmarkSetDump). One read of a small answer with a 32 KiB buffer
// raises the size for every later dump on the socket.
func largeDumps(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	// NFT_MSG_GETGEN: the cheapest request with an answer.
	data := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0} // struct nfgenmsg
	req, err := netlink.Message{
		Header: netlink.Header{
			Length: uint32(unix.NLMSG_HDRLEN + len(data)),
			Type:   netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
			Flags:  netlink.Request,
		},
		Data: data,
	}.MarshalBinary()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return !errors.Is(serr, unix.EAGAIN)
	}); err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	buf := make([]byte, dumpSkbBytes)
	if err := rc.Read(func(fd uintptr) bool {
		_, _, serr = unix.Recvfrom(int(fd), buf, 0)
		return !errors.Is(serr, unix.EAGAIN)
	}); err != nil {
		return err
	}
	return serr
}
