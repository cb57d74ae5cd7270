// Package nfgen reads the nf_tables ruleset generation: a number the kernel
// bumps on every committed change to any nf_tables table of a namespace.
// An unchanged generation proves that nothing was written.
package nfgen

import (
	"encoding/binary"
	"fmt"

	"github.com/mdlayher/netlink"
	"github.com/portwarden/portwarden/internal/netns"
	"golang.org/x/sys/unix"
)

// Generation returns the generation in the namespace at nsPath ("" for the
// caller's own).
func Generation(nsPath string) (uint32, error) {
	var gen uint32
	err := netns.DoPath(nsPath, func() error {
		conn, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
		if err != nil {
			return err
		}
		defer conn.Close()
		req := netlink.Message{
			Header: netlink.Header{
				Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
				Flags: netlink.Request,
			},
			Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}, // struct nfgenmsg
		}
		msgs, err := conn.Execute(req)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Type != netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWGEN) || len(m.Data) < 4 {
				continue
			}
			ad, err := netlink.NewAttributeDecoder(m.Data[4:])
			if err != nil {
				return err
			}
			ad.ByteOrder = binary.BigEndian
			for ad.Next() {
				if ad.Type() == unix.NFTA_GEN_ID {
					gen = ad.Uint32()
					return nil
				}
			}
			if err := ad.Err(); err != nil {
				return err
			}
		}
		return fmt.Errorf("no generation in the nf_tables answer")
	})
	if err != nil {
		return 0, fmt.Errorf("read the nf_tables generation: %w", err)
	}
	return gen, nil
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
