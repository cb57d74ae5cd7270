package nftables

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/internal/nfgen"
	"golang.org/x/sys/unix"
)

// newTestBatch is a batch that makes table inet pwtest with one interval
// set of key type, in a namespace of the test's own.
func newTestBatch(t *testing.T, key nftables.SetDatatype) (*netns.NS, *batch, *nftables.Set) {
	t.Helper()
	ns := netnstest.New(t, "batch")
	bt := newBatch(0)
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
	_, _, err := bt.send(ns.Path())
	if err == nil {
		t.Fatal("the kernel took a batch deleting a missing element")
	}
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "delete elements from set s") {
		t.Fatalf("error = %v, want ENOENT naming the delete", err)
	}
	t.Logf("refused: %v", err)
	out, _ := ns.Run(context.Background(), "nft", "list", "tables")
	if strings.Contains(string(out), "pwtest") {
		t.Fatalf("a refused batch left its table behind:\n%s", out)
	}
}

// A batch that came to no message sends nothing, and Apply does not take
// the unmoved generation for a dropped batch.
func TestBatchEmptySendsNothing(t *testing.T) {
	ns := netnstest.New(t, "batch")
	before, err := nfgen.Generation(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	bt := newBatch(0)
	writeIntervals(bt, &nftables.Set{Name: "s", Table: &nftables.Table{Name: "pwtest"}}, nil, true)
	sent, _, err := bt.send(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	if sent {
		t.Fatal("a batch with nothing queued was sent")
	}
	if after, _ := nfgen.Generation(ns.Path()); after != before {
		t.Fatalf("an empty batch moved the generation from %d to %d", before, after)
	}
}

// A batch refused in thousands of messages, more refusals than a socket
// holds by default, still reports the first one.
func TestBatchManyRefusals(t *testing.T) {
	ns, bt, set := newTestBatch(t, nftables.TypeIPAddr)
	for i := range 3000 {
		w := bt.elements(set, true)
		w.add([]byte{198, 18, byte(i >> 8), byte(i)}, []byte{198, 18, byte(i >> 8), byte(i)}, 0)
		w.close()
	}
	_, _, err := bt.send(ns.Path())
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "delete elements from set s (message 3 of 3002") {
		t.Fatalf("error = %v, want the first refusal", err)
	}
}

// What the batch encodes is what the kernel then holds, read back by nft:
// intervals, a single address, and an interval reaching the top of the
// key space (no end element). send reports the generation the batch made,
// read on its own socket.
func TestBatchElementsAsWritten(t *testing.T) {
	ns, bt, set := newTestBatch(t, nftables.TypeIPAddr)
	before, err := nfgen.Generation(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	w := bt.elements(set, false)
	w.add([]byte{198, 18, 0, 0}, []byte{198, 18, 0, 255}, 0)
	w.add([]byte{198, 19, 1, 1}, []byte{198, 19, 1, 1}, 0)
	w.add([]byte{255, 255, 255, 0}, []byte{255, 255, 255, 255}, 0)
	w.close()
	sent, gen, err := bt.send(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	if after, err := nfgen.Generation(ns.Path()); !sent || err != nil || gen != before+1 || after != gen {
		t.Fatalf("sent %v, generation %d before, %d reported by send, %d read after (%v): want the one batch's", sent, before, gen, after, err)
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
	for _, start := range bt.starts {
		if binary.NativeEndian.Uint16(bt.buf[start+4:])&0xff == unix.NFT_MSG_NEWSETELEM {
			messages++
		}
	}
	if messages < 2 {
		t.Fatalf("%d elements went into %d message(s)", n, messages)
	}
	if _, _, err := bt.send(ns.Path()); err != nil {
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

// The elements the batch encodes say what google/nftables would have said
// for the same intervals (the library's encoding, read back attribute by
// attribute): keys, interval ends, timeouts and comments.
func TestBatchElementsEncodeAsTheLibrary(t *testing.T) {
	table := &nftables.Table{Name: "pwtest", Family: nftables.TableFamilyINet}
	set := &nftables.Set{Table: table, Name: "g", KeyType: nftables.TypeIP6Addr, Interval: true, HasTimeout: true}
	until := time.Now().Add(time.Hour).Unix()
	ivs := []interval{
		{first: netip.MustParseAddr("2001:2::").AsSlice(), last: netip.MustParseAddr("2001:2::ff").AsSlice()},
		{first: netip.MustParseAddr("2001:2::1:0").AsSlice(), last: netip.MustParseAddr("2001:2::1:0").AsSlice(), until: until},
		{first: netip.MustParseAddr("ffff::").AsSlice(), last: netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").AsSlice()},
	}
	ours := newBatch(0)
	writeIntervals(ours, set, ivs, false)
	ours.sync()

	// What the library makes of the same elements, the way portwarden
	// gave them to it before: start keys, end keys one past the last, the
	// grant's time left as its timeout and its deadline as its comment.
	var els []nftables.SetElement
	for _, iv := range ivs {
		start := nftables.SetElement{Key: iv.first}
		if iv.until != 0 {
			start.Timeout = time.Until(time.Unix(iv.until, 0)).Truncate(time.Millisecond)
			start.Comment = untilComment(iv.until)
		}
		els = append(els, start)
		end := slices.Clone(iv.last)
		if incrementKey(end) {
			els = append(els, nftables.SetElement{Key: end, IntervalEnd: true})
		}
	}
	theirs := newBatch(0)
	if err := theirs.lib.SetAddElements(set, els); err != nil {
		t.Fatal(err)
	}
	theirs.sync()

	a, b := decodedElements(t, ours.buf), decodedElements(t, theirs.buf)
	// Two intervals of a start and an end each, one reaching the top
	// with no end.
	if len(a) != 5 || a[2].comment == "" || a[2].timeout == 0 || a[1].flags != unix.NFT_SET_ELEM_INTERVAL_END {
		t.Fatalf("encoded %+v", a)
	}
	if len(a) != len(b) {
		t.Fatalf("%d elements encoded, the library %d:\n%v\n%v", len(a), len(b), a, b)
	}
	for i := range a {
		// Timeouts are taken at slightly different moments.
		if d := a[i].timeout - b[i].timeout; d > 1000 || d < -1000 {
			t.Errorf("element %d: timeout %d ms, the library %d ms", i, a[i].timeout, b[i].timeout)
		}
		a[i].timeout, b[i].timeout = 0, 0
		if a[i] != b[i] {
			t.Errorf("element %d: %+v, the library %+v", i, a[i], b[i])
		}
	}
}

type decodedElement struct {
	key     string
	flags   uint32
	timeout int64
	comment string
}

// decodedElements reads the set elements of every NEWSETELEM message in an
// encoded batch.
func decodedElements(t *testing.T, buf []byte) []decodedElement {
	t.Helper()
	msgs, err := syscall.ParseNetlinkMessage(buf)
	if err != nil {
		t.Fatal(err)
	}
	var out []decodedElement
	for _, m := range msgs {
		if m.Header.Type&0xff != unix.NFT_MSG_NEWSETELEM || m.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES {
			continue
		}
		nfgen.EachAttr(m.Data[4:], func(typ uint16, data []byte) error {
			if typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				return nil
			}
			return nfgen.EachAttr(data, func(_ uint16, data []byte) error {
				var e decodedElement
				nfgen.EachAttr(data, func(typ uint16, data []byte) error {
					switch typ {
					case unix.NFTA_SET_ELEM_KEY:
						nfgen.EachAttr(data, func(_ uint16, v []byte) error { e.key = netip.AddrFrom16([16]byte(v)).String(); return nil })
					case unix.NFTA_SET_ELEM_FLAGS:
						e.flags = binary.BigEndian.Uint32(data)
					case unix.NFTA_SET_ELEM_TIMEOUT:
						e.timeout = int64(binary.BigEndian.Uint64(data))
					case unix.NFTA_SET_ELEM_USERDATA:
						e.comment = elemComment(data)
					}
					return nil
				})
				out = append(out, e)
				return nil
			})
		})
	}
	return out
}
