package nfgen

import (
	"context"
	"errors"
	"slices"
	"syscall"
	"testing"

	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"golang.org/x/sys/unix"
)

// Over a plain socket in a namespace of its own: the tables with their
// families (all, or one family), a generation that moves with each write,
// and the kernel's refusal as its errno.
func TestTablesAndGeneration(t *testing.T) {
	ns := netnstest.New(t, "nfgen")
	g0, err := Generation(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	if tables, err := Tables(ns.Path(), unix.NFPROTO_UNSPEC); err != nil || len(tables) != 0 {
		t.Fatalf("new namespace: tables %v, %v", tables, err)
	}
	for _, args := range [][]string{{"add", "table", "inet", "a"}, {"add", "table", "ip", "b"}, {"add", "table", "ip6", "c"}} {
		if out, err := ns.Run(context.Background(), "nft", args...); err != nil {
			t.Fatalf("nft %v: %v: %s", args, err, out)
		}
	}
	g1, err := Generation(ns.Path())
	if err != nil || g1 != g0+3 {
		t.Fatalf("generation after three writes: %d (%v), want %d", g1, err, g0+3)
	}
	all, err := Tables(ns.Path(), unix.NFPROTO_UNSPEC)
	want := []Table{{unix.NFPROTO_INET, "a"}, {unix.NFPROTO_IPV4, "b"}, {unix.NFPROTO_IPV6, "c"}}
	slices.SortFunc(all, func(x, y Table) int { return int(x.Name[0]) - int(y.Name[0]) })
	if err != nil || !slices.Equal(all, want) {
		t.Fatalf("tables %v, %v; want %v", all, err, want)
	}
	if ip, err := Tables(ns.Path(), unix.NFPROTO_IPV4); err != nil || !slices.Equal(ip, want[1:2]) {
		t.Fatalf("ip tables %v, %v", ip, err)
	}
	req := AppendAttr(Request(unix.NFT_MSG_GETSET, unix.NLM_F_DUMP, unix.NFPROTO_INET), unix.NFTA_SET_TABLE, "missing")
	err = Exchange(ns.Path(), req, func(uint16, byte, []byte) error { return nil })
	if !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("sets of a missing table: %v, want ENOENT", err)
	}
}
