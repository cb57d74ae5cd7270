package nftables

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"golang.org/x/sys/unix"
)

// newTestBatch is a batch that makes table inet pwtest with one interval
// set of key type, in a namespace of the test's own.
func newTestBatch(t *testing.T, key nftables.SetDatatype) (*netns.NS, *batch, *nftables.Set) {
	t.Helper()
	ns := netnstest.New(t, "batch")
	bt := newBatch()
	table := bt.lib.AddTable(&nftables.Table{Name: "pwtest", Family: nftables.TableFamilyINet})
	set := &nftables.Set{Table: table, Name: "s", KeyType: key, Interval: true}
	if err := bt.lib.AddSet(set, nil); err != nil {
		t.Fatal(err)
	}
	return ns, bt, set
}

// A batch the kernel refuses in its last message is refused whole: the
// error names the message, and nothing before it went in.
func TestBatchRefusedWhole(t *testing.T) {
	ns, bt, set := newTestBatch(t, nftables.TypeIPAddr)
	w := bt.elements(set, false)
	w.add([]byte{198, 18, 0, 1}, []byte{198, 18, 0, 9}, 0)
	w.close()
	// Deleting an element the set never held fails the batch.
	w = bt.elements(set, true)
	w.add([]byte{198, 18, 7, 7}, []byte{198, 18, 7, 7}, 0)
	w.close()
	err := bt.send(ns.Path())
	if err == nil {
		t.Fatal("the kernel took a batch deleting a missing element")
	}
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "delete set elements") {
		t.Fatalf("error = %v, want ENOENT naming the delete", err)
	}
	t.Logf("refused: %v", err)
	out, _ := ns.Run(context.Background(), "nft", "list", "tables")
	if strings.Contains(string(out), "pwtest") {
		t.Fatalf("a refused batch left its table behind:\n%s", out)
	}
}

// What the batch encodes is what the kernel then holds, read back by nft:
// intervals, a single address, and an interval reaching the top of the
// key space (no end element).
func TestBatchElementsAsWritten(t *testing.T) {
	ns, bt, set := newTestBatch(t, nftables.TypeIPAddr)
	w := bt.elements(set, false)
	w.add([]byte{198, 18, 0, 0}, []byte{198, 18, 0, 255}, 0)
	w.add([]byte{198, 19, 1, 1}, []byte{198, 19, 1, 1}, 0)
	w.add([]byte{255, 255, 255, 0}, []byte{255, 255, 255, 255}, 0)
	w.close()
	if err := bt.send(ns.Path()); err != nil {
		t.Fatal(err)
	}
	out, err := ns.Run(context.Background(), "nft", "list", "set", "inet", "pwtest", "s")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"198.18.0.0/24", "198.19.1.1", "255.255.255.0/24"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("set lacks %s:\n%s", want, out)
		}
	}
}

// Many elements split over several messages, each under the 64 KiB an
// attribute can hold, still arrive in the one batch.
func TestBatchSplitsLongElementLists(t *testing.T) {
	ns, bt, set := newTestBatch(t, nftables.TypeIP6Addr)
	w := bt.elements(set, false)
	const n = 5000
	for i := range n {
		// Every other address, so that nothing merges.
		k := []byte{0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(2 * i >> 8), byte(2 * i)}
		w.add(k, k, 0)
	}
	w.close()
	messages := 0
	for _, k := range bt.kinds {
		if k&0xff == unix.NFT_MSG_NEWSETELEM {
			messages++
		}
	}
	if messages < 2 {
		t.Fatalf("%d elements went into %d message(s)", n, messages)
	}
	if err := bt.send(ns.Path()); err != nil {
		t.Fatal(err)
	}
	out, err := ns.Run(context.Background(), "nft", "list", "set", "inet", "pwtest", "s")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := strings.Count(string(out), "2001:2::"); got != n {
		t.Fatalf("the set holds %d addresses, want %d", got, n)
	}
}
