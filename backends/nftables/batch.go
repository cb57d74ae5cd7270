package nftables

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"github.com/portwarden/portwarden/internal/nfgen"
	"golang.org/x/sys/unix"
)

// batch is one nf_tables transaction, encoded as it is built and sent as
// nft sends one: in one sendmsg, asking no acknowledgement per message, so
// that the kernel answers only what failed (internal/nfgen.SendBatch).
// google/nftables v0.3.0 asks an acknowledgement of every message and
// reads them one at a time, through the runtime's poller, and builds each
// element as a list of attributes: at 1,000 sources its Flush and the
// elements took 13-21 ms of a cold apply of about 55 (phase timers). (Its development branch sends
// as nft does since google/nftables#336, in no release yet.)
//
// Tables, sets, chains and rules keep the library's encoding: it builds
// them on lib, whose messages the batch takes over in order (see take).
// Set elements, the bulk of a batch, are encoded here straight from the
// intervals, without the library's per-element attribute lists.
type batch struct {
	lib    *nftables.Conn
	buf    []byte
	starts []int // where each message starts, by sequence number
	err    error
}

// newBatch starts a batch; size is what its buffer starts with (the
// elements of a set filled anew take some 20-40 bytes each), so that a
// large one is not copied again and again as it grows.
func newBatch(size int) *batch {
	bt := &batch{buf: make([]byte, 0, max(size, 16<<10))}
	// WithTestDial is the library's hook for what it would send: here it
	// hands each message to the batch instead of a socket.
	bt.lib, _ = nftables.New(nftables.WithTestDial(bt.take))
	bt.delimiter(unix.NFNL_MSG_BATCH_BEGIN)
	return bt
}

// take receives what lib sends on Flush: its batch (begin, messages, end),
// whose messages join this batch without their acknowledgement and echo
// requests; and then, once per message, a read for the acknowledgement,
// answered at once (the kernel has not seen anything yet).
func (bt *batch) take(req []netlink.Message) ([]netlink.Message, error) {
	if req == nil {
		return []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4)}}, nil
	}
	for _, m := range req {
		typ := uint16(m.Header.Type)
		if typ == unix.NFNL_MSG_BATCH_BEGIN || typ == unix.NFNL_MSG_BATCH_END {
			continue
		}
		flags := uint16(m.Header.Flags) &^ (unix.NLM_F_ACK | unix.NLM_F_ECHO)
		start := bt.header(typ, flags)
		bt.buf = append(bt.buf, m.Data...)
		bt.finish(start)
	}
	return nil, nil
}

// sync moves what lib has queued into the batch, so that what is encoded
// here next follows it.
func (bt *batch) sync() {
	if err := bt.lib.Flush(); err != nil && bt.err == nil {
		bt.err = err
	}
}

// send ends the batch and sends it to the kernel of the namespace at
// nsPath ("" for this one's). A batch that came to no message is not sent
// (sent is false): a plan can, as when its only change is a grant about
// to expire, which the kernel removes by itself. gen is the generation
// right after a batch that went in, 0 when it is unknown.
func (bt *batch) send(nsPath string) (sent bool, gen uint32, err error) {
	bt.sync()
	if bt.err != nil {
		return false, 0, bt.err
	}
	if len(bt.starts) == 1 {
		return false, 0, nil
	}
	bt.delimiter(unix.NFNL_MSG_BATCH_END)
	gen, err = nfgen.SendBatch(nsPath, bt.buf, len(bt.starts))
	var be *nfgen.BatchError
	if errors.As(err, &be) && int(be.Seq) < len(bt.starts)-1 {
		what := fmt.Sprintf("%s (message %d of %d", bt.describe(be.Seq), be.Seq, len(bt.starts)-2)
		if be.Seq == 1 {
			what += ", or the commit of the whole batch" // the kernel names the first message then
		}
		return true, 0, fmt.Errorf("the kernel refused the change, and nothing of it was applied: %s): %w; "+
			"run portwarden plan to see the change, and report it with the output of nft --version and uname -r if it persists", what, be)
	}
	return true, gen, err
}

// messageKind is what a refusal of one kind of message says: the verb,
// the attribute that names its object, and how the object is named.
type messageKind struct {
	what     string
	nameAttr uint16
	object   string
}

var messageKinds = map[uint16]messageKind{
	unix.NFT_MSG_NEWTABLE:   {"add table", unix.NFTA_TABLE_NAME, ""},
	unix.NFT_MSG_DELTABLE:   {"delete table", unix.NFTA_TABLE_NAME, ""},
	unix.NFT_MSG_NEWCHAIN:   {"add chain", unix.NFTA_CHAIN_NAME, ""},
	unix.NFT_MSG_DELCHAIN:   {"delete chain", unix.NFTA_CHAIN_NAME, ""},
	unix.NFT_MSG_NEWRULE:    {"add rule", unix.NFTA_RULE_CHAIN, "in chain "},
	unix.NFT_MSG_DELRULE:    {"delete rules", unix.NFTA_RULE_CHAIN, "in chain "}, // a whole chain's, when it is flushed
	unix.NFT_MSG_NEWSET:     {"add set", unix.NFTA_SET_NAME, ""},
	unix.NFT_MSG_DELSET:     {"delete set", unix.NFTA_SET_NAME, ""},
	unix.NFT_MSG_NEWSETELEM: {"add elements", unix.NFTA_SET_ELEM_LIST_SET, "to set "},
	unix.NFT_MSG_DELSETELEM: {"delete elements", unix.NFTA_SET_ELEM_LIST_SET, "from set "},
}

// describe names message seq and the object it is about.
func (bt *batch) describe(seq uint32) string {
	msg := bt.buf[bt.starts[seq]:]
	typ := binary.NativeEndian.Uint16(msg[4:6])
	if typ == unix.NFNL_MSG_BATCH_BEGIN || typ == unix.NFNL_MSG_BATCH_END {
		return "the batch"
	}
	k, ok := messageKinds[typ&0xff]
	if typ>>8 != unix.NFNL_SUBSYS_NFTABLES || !ok {
		return fmt.Sprintf("message type %#x", typ)
	}
	name := ""
	nfgen.EachAttr(msg[unix.NLMSG_HDRLEN+4:binary.NativeEndian.Uint32(msg[0:4])], func(typ uint16, v []byte) error {
		if typ == k.nameAttr {
			name = string(bytes.TrimRight(v, "\x00"))
		}
		return nil
	})
	if name == "" {
		return k.what
	}
	return k.what + " " + k.object + name
}

// header starts a message of type typ (the whole netlink type), numbered
// by its place in the batch, and returns where it starts; finish writes
// its length.
func (bt *batch) header(typ, flags uint16) int {
	start := len(bt.buf)
	bt.buf = nfgen.AppendHeader(bt.buf, typ, flags, uint32(len(bt.starts)))
	bt.starts = append(bt.starts, start)
	return start
}

// begin starts an nf_tables message (msg is unix.NFT_MSG_*) with its
// struct nfgenmsg.
func (bt *batch) begin(msg int, flags uint16, family byte) int {
	start := bt.header(unix.NFNL_SUBSYS_NFTABLES<<8|uint16(msg), flags)
	bt.buf = nfgen.AppendGenmsg(bt.buf, family, 0)
	return start
}

// delimiter writes the message that begins or ends the batch, addressed
// to nf_tables (the resource id of its struct nfgenmsg).
func (bt *batch) delimiter(typ uint16) {
	start := bt.header(typ, 0)
	bt.buf = nfgen.AppendGenmsg(bt.buf, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)
	bt.finish(start)
}

func (bt *batch) finish(start int) { bt.buf = nfgen.FinishMessage(bt.buf, start) }

// attr appends an attribute with data, padded.
func (bt *batch) attr(typ uint16, data []byte) {
	bt.buf = binary.NativeEndian.AppendUint16(bt.buf, uint16(unix.SizeofNlAttr+len(data)))
	bt.buf = binary.NativeEndian.AppendUint16(bt.buf, typ)
	bt.buf = append(bt.buf, data...)
	for len(bt.buf)%unix.NLA_ALIGNTO != 0 {
		bt.buf = append(bt.buf, 0)
	}
}

func (bt *batch) attrBE32(typ uint16, v uint32) {
	bt.buf = binary.NativeEndian.AppendUint16(bt.buf, unix.SizeofNlAttr+4)
	bt.buf = binary.NativeEndian.AppendUint16(bt.buf, typ)
	bt.buf = binary.BigEndian.AppendUint32(bt.buf, v)
}

func (bt *batch) attrBE64(typ uint16, v uint64) {
	bt.buf = binary.NativeEndian.AppendUint16(bt.buf, unix.SizeofNlAttr+8)
	bt.buf = binary.NativeEndian.AppendUint16(bt.buf, typ)
	bt.buf = binary.BigEndian.AppendUint64(bt.buf, v)
}

// nest starts a nested attribute; end closes it.
func (bt *batch) nest(typ uint16) int {
	start := len(bt.buf)
	bt.buf = binary.NativeEndian.AppendUint32(bt.buf, 0)
	binary.NativeEndian.PutUint16(bt.buf[start+2:], typ|unix.NLA_F_NESTED)
	return start
}

func (bt *batch) end(start int) {
	binary.NativeEndian.PutUint16(bt.buf[start:], uint16(len(bt.buf)-start))
}

// maxElementList keeps an element list under the 64 KiB a netlink
// attribute can hold, with room for one more element; the messages still
// travel in the one batch.
const maxElementList = 60 << 10

// elementWriter adds (or deletes) intervals of one set, starting a new
// message whenever one is full.
type elementWriter struct {
	bt        *batch
	set       *nftables.Set
	msg       int
	msgStart  int
	listStart int
	n         uint16 // elements in the message
	now       time.Time
}

func (bt *batch) elements(set *nftables.Set, del bool) *elementWriter {
	bt.sync()
	msg := unix.NFT_MSG_NEWSETELEM
	if del {
		msg = unix.NFT_MSG_DELSETELEM
	}
	return &elementWriter{bt: bt, set: set, msg: msg, msgStart: -1, now: time.Now()}
}

func (w *elementWriter) open() {
	bt := w.bt
	w.msgStart = bt.begin(w.msg, unix.NLM_F_CREATE, byte(w.set.Table.Family))
	bt.buf = nfgen.AppendStringAttr(bt.buf, unix.NFTA_SET_ELEM_LIST_TABLE, w.set.Table.Name)
	bt.buf = nfgen.AppendStringAttr(bt.buf, unix.NFTA_SET_ELEM_LIST_SET, w.set.Name)
	if w.set.ID != 0 {
		bt.attrBE32(unix.NFTA_SET_ELEM_LIST_SET_ID, w.set.ID)
	}
	w.listStart = bt.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
	w.n = 0
}

// close ends the message being written, if any.
func (w *elementWriter) close() {
	if w.msgStart < 0 {
		return
	}
	w.bt.end(w.listStart)
	w.bt.finish(w.msgStart)
	w.msgStart = -1
}

// add writes the interval [first, last] (keys in network order) with the
// deadline until (Unix seconds, 0 for none): a start element and, in an
// interval set, an end element one past last, flagged as an interval end
// (none when the range reaches the top of the key space).
//
// A grant's start element carries the time left until its deadline as
// its timeout (the kernel refuses one on an interval end and expires the
// pair by the start) and the deadline as its comment; one whose deadline
// has passed is left out (the kernel would refuse a timeout of zero).
func (w *elementWriter) add(first, last []byte, until int64) {
	var timeout time.Duration
	comment := ""
	if until != 0 {
		timeout = time.Unix(until, 0).Sub(w.now).Truncate(time.Millisecond)
		if timeout <= 0 {
			return
		}
		comment = untilComment(until)
	}
	if w.msgStart >= 0 && len(w.bt.buf)-w.listStart > maxElementList {
		w.close()
	}
	if w.msgStart < 0 {
		w.open()
	}
	w.element(first, false, timeout, comment)
	if !w.set.Interval {
		return
	}
	var end [16]byte
	if n := copy(end[:], last); incrementKey(end[:n]) {
		w.element(end[:n], true, 0, "")
	}
}

// addRange adds the interval of addresses r covers.
func (w *elementWriter) addRange(from, to netip.Addr) {
	if from.Is4() {
		f, t := from.As4(), to.As4()
		w.add(f[:], t[:], 0)
		return
	}
	f, t := from.As16(), to.As16()
	w.add(f[:], t[:], 0)
}

func (w *elementWriter) element(key []byte, intervalEnd bool, timeout time.Duration, comment string) {
	bt := w.bt
	w.n++
	el := bt.nest(w.n)
	if intervalEnd {
		bt.attrBE32(unix.NFTA_SET_ELEM_FLAGS, unix.NFT_SET_ELEM_INTERVAL_END)
	}
	k := bt.nest(unix.NFTA_SET_ELEM_KEY)
	bt.attr(unix.NFTA_DATA_VALUE, key)
	bt.end(k)
	if w.set.HasTimeout && timeout != 0 {
		bt.attrBE64(unix.NFTA_SET_ELEM_TIMEOUT, uint64(timeout.Milliseconds()))
	}
	if comment != "" {
		bt.attr(unix.NFTA_SET_ELEM_USERDATA, userdata.AppendString(nil, userdata.NFTNL_UDATA_SET_ELEM_COMMENT, comment))
	}
	bt.end(el)
}

// incrementKey adds one to the big-endian number b in place; false on
// overflow (b was all ones).
func incrementKey(b []byte) bool {
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			return true
		}
	}
	return false
}
