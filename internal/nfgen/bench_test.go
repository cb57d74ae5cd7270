package nfgen

import (
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"golang.org/x/sys/unix"
)

// BenchmarkGeneration reads the generation over a plain socket, as
// Generation does, beside the same request through mdlayher/netlink (what
// google/nftables uses): the library's sockets go through the runtime's
// network poller, so every exchange costs a wake-up between threads.
//
//	sudo go test -run '^$' -bench Generation ./internal/nfgen
func BenchmarkGeneration(b *testing.B) {
	ns := netnstest.New(b, "nfgenbench")
	b.Run("plain socket", func(b *testing.B) {
		err := ns.Do(func() error {
			for b.Loop() {
				if _, err := Generation(""); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	})
	b.Run("mdlayher/netlink", func(b *testing.B) {
		req := netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
			Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
		}
		err := ns.Do(func() error {
			for b.Loop() {
				c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
				if err != nil {
					return err
				}
				_, err = c.Execute(req)
				c.Close()
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	})
}
