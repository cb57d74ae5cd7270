package iptables

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"go4.org/netipx"
	"golang.org/x/sys/unix"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/rules"
)

// Sources live in ipset sets, one pair per exposure and family (doc.go,
// "Sets"). This file names them, computes their contents from the model,
// and reads and writes them over netlink.

const (
	// setType is the type of every owned set: prefixes of any length,
	// looked up by hash per prefix length, so the per-packet cost does not
	// grow with the number of elements.
	setType = "hash:net"
	// setRevision is the lowest hash:net revision with per-element
	// counters (3) and comments (4); every kernel since 3.13 has it.
	setRevision = 4
	// setMaxElem is the element limit of owned sets (hash:net's default,
	// 65,536, is too small for big lists). It only caps growth: memory
	// follows the elements held.
	setMaxElem = 1 << 24
	// Set roles, the letter after the chain name.
	roleAllow = 'a'
	roleDeny  = 'd'
	// tempSuffix marks the set a new content is built in before it is
	// swapped with the live one.
	tempSuffix = "t"
)

// Deny set element comments: whether the element is a deny prefix, lies
// in the allow list too (so allow can be read back exactly: the allow set
// holds allow minus deny), or both.
const (
	tagDeny        = "deny"
	tagAllowed     = "also allowed"
	tagDenyAllowed = "deny; also allowed"
)

// digit is the family's set name suffix.
func (f family) digit() string {
	if f == ipv6 {
		return "6"
	}
	return "4"
}

func (f family) ipsetFamily() uint8 {
	if f == ipv6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// setName is the deterministic name of an exposure's set of one role and
// family: its chain name (PW- and ten hex digits) with "-a4", "-d6"...,
// 16 bytes, within ipset's 31.
func setName(exposure string, fam family, role byte) string {
	return exposureChain(exposure) + "-" + string(role) + fam.digit()
}

// ownedSetName reports whether name is one portwarden makes: exactly
// setName's shape, optionally followed by tempSuffix. Other sets, even
// named PW-..., are never read or written.
func ownedSetName(name string) (fam family, role byte, temp, ok bool) {
	base, temp := strings.CutSuffix(name, tempSuffix)
	if len(base) != len("PW-0123456789-a4") || !isOwnedChain(base[:13]) || base[13] != '-' {
		return 0, 0, false, false
	}
	role = base[14]
	if role != roleAllow && role != roleDeny {
		return 0, 0, false, false
	}
	switch base[15] {
	case '4':
		return ipv4, role, temp, true
	case '6':
		return ipv6, role, temp, true
	}
	return 0, 0, false, false
}

// setElem is one element of a set.
type setElem struct {
	prefix          netip.Prefix
	comment         string
	nomatch         bool   // cuts its addresses out of a larger element (netElems)
	packets, nbytes uint64 // counters, when read from the kernel
}

// elemKey identifies an element for comparison (counters left out).
type elemKey struct {
	prefix  netip.Prefix
	comment string
	nomatch bool
}

func (e setElem) key() elemKey { return elemKey{e.prefix, e.comment, e.nomatch} }

// setSpec is a set as portwarden writes it.
type setSpec struct {
	name  string
	fam   family
	role  byte
	elems []setElem // sorted by prefix
}

// comments reports whether the set carries element comments (deny sets).
func (s setSpec) comments() bool { return s.role == roleDeny }

// ownedSet is a set as found in the kernel.
type ownedSet struct {
	name               string
	typ                string
	family             uint8
	counters, comments bool
	maxElem            uint32
	refs               uint32
	elems              []setElem // sorted by prefix
}

// headerOK reports whether the kernel's set has the type and options
// portwarden creates it with.
func (o *ownedSet) headerOK(w setSpec) bool {
	return o.typ == setType && o.family == w.fam.ipsetFamily() && o.counters &&
		o.comments == w.comments() && o.maxElem == setMaxElem
}

// exposureSets are the contents of an exposure's two sets in one family:
// allow holds allow minus deny (so whether a source is accepted depends on
// this one set, and one swap or element edit changes it at once), as
// hash:net holds it: the allow prefixes, and the deny prefixes inside them
// flagged nomatch (see netElems); deny holds the deny prefixes and the
// part of allow that deny overrides, each element commented with what it
// is, so both lists read back exactly.
func exposureSets(e *rules.Exposure, fam family) (allow, deny setSpec) {
	allowed, denied := familyPrefixes(e.Allow, fam), familyPrefixes(e.Deny, fam)
	overlap := intersectPrefixes(allowed, denied)
	allow = setSpec{name: setName(e.Name, fam, roleAllow), fam: fam, role: roleAllow, elems: netElems(allowed, denied)}
	tags := map[netip.Prefix]string{}
	for _, p := range storable(denied) {
		tags[p] = tagDeny
	}
	for _, p := range storable(overlap) {
		if tags[p] == tagDeny {
			tags[p] = tagDenyAllowed
		} else {
			tags[p] = tagAllowed
		}
	}
	deny = setSpec{name: setName(e.Name, fam, roleDeny), fam: fam, role: roleDeny}
	for p, tag := range tags {
		deny.elems = append(deny.elems, setElem{prefix: p, comment: tag})
	}
	sortElems(deny.elems)
	return allow, deny
}

// netElems are the hash:net elements that hold match minus nomatch, for
// normalised (sorted, merged) prefix lists: a hash:net set decides an
// address by the most specific element that holds it, so a nomatch
// element inside a match element cuts it out. Kept: every match prefix
// no nomatch prefix holds, and every nomatch prefix strictly inside one
// of those. The count is at most that of the two lists (plus one where
// /0 is split): writing allow minus deny out as plain prefixes instead
// made a block list of 20,000 IPv6 addresses under an allow of ::/0 into
// 1.3 million elements and 100 MB of kernel memory.
func netElems(match, nomatch []netip.Prefix) []setElem {
	// Split first: hash:net holds no /0, and a nomatch /1 must meet the
	// /1 it would equal, not the /0 it is strictly inside (the set would
	// hold that /1 once, flagged as the last write said).
	match = storable(match)
	out := make([]setElem, 0, len(match))
	for _, m := range match {
		if len(nomatch) == 0 || !coveredBy(nomatch, m) {
			out = append(out, setElem{prefix: m})
		}
	}
	if len(nomatch) == 0 {
		return out // sorted already
	}
	// A kept match prefix is inside no nomatch one, so a nomatch prefix
	// inside a kept one is strictly inside it.
	kept := out
	for _, n := range nomatch {
		if elemsCover(kept, n) {
			out = append(out, setElem{prefix: n, nomatch: true})
		}
	}
	sortElems(out)
	return out
}

func prefixSet(ps []netip.Prefix) *netipx.IPSet {
	var b netipx.IPSetBuilder
	for _, p := range ps {
		b.AddPrefix(p)
	}
	s, _ := b.IPSet()
	return s
}

// storable splits /0, which hash:net cannot hold, into two /1; reading
// back merges them again.
func storable(ps []netip.Prefix) []netip.Prefix {
	if !slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Bits() == 0 }) {
		return ps
	}
	out := make([]netip.Prefix, 0, len(ps)+1)
	for _, p := range ps {
		if p.Bits() == 0 {
			lo := netip.PrefixFrom(p.Addr(), 1)
			hi := netipx.PrefixLastIP(p)
			out = append(out, lo, netip.PrefixFrom(hi, 1).Masked())
			continue
		}
		out = append(out, p)
	}
	return out
}

func sortElems(es []setElem) {
	slices.SortFunc(es, func(a, b setElem) int {
		if c := a.prefix.Addr().Compare(b.prefix.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.prefix.Bits(), b.prefix.Bits())
	})
}

// setRunner is the narrow seam over ipset: read the owned sets, write
// them. Tests wrap it to count writes.
type setRunner interface {
	// sets reads every owned set of both families, elements included.
	sets() ([2]map[string]*ownedSet, error)
	// write runs set operations in order; each is its own kernel commit.
	write(ops []setOp) error
}

// setOp is one write: create (with elements), add, del, swap, destroy.
type setOp struct {
	kind  string // "create", "add", "del", "swap", "destroy"
	name  string
	other string // swap: the set swapped with
	spec  setSpec
	elems []setElem
}

// netlinkSets talks to the kernel's ipset subsystem over netlink in the
// backend's network namespace: create, swap and destroy through
// vishvananda/netlink's Handle; element edits and dumps with requests of
// its own, because the library sends one message per element (100,000
// elements: seconds instead of tenths) and logs what it cannot parse.
type netlinkSets struct {
	nsPath string
}

// conn is an open pair of sockets in the namespace.
type setConn struct {
	h    *netlink.Handle
	sock map[int]*nl.SocketHandle
}

func (n netlinkSets) open() (*setConn, error) {
	ns := netns.None()
	if n.nsPath != "" {
		h, err := netns.GetFromPath(n.nsPath)
		if err != nil {
			return nil, fmt.Errorf("network namespace %s: %w", n.nsPath, err)
		}
		defer h.Close()
		ns = h
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, setError("open a netlink socket for ipset", err)
	}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_NETFILTER)
	if err != nil {
		h.Close()
		return nil, setError("open a netlink socket for ipset", err)
	}
	return &setConn{h: h, sock: map[int]*nl.SocketHandle{unix.NETLINK_NETFILTER: {Socket: s}}}, nil
}

func (c *setConn) close() {
	c.h.Close()
	for _, s := range c.sock {
		s.Close()
	}
}

// setError says what failed, with the kernel's ipset error in words.
func setError(what string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) && int(errno) >= nl.IPSET_ERR_PRIVATE {
		err = nl.IPSetError(uintptr(errno))
	}
	switch {
	case errors.Is(err, nl.IPSetError(nl.IPSET_ERR_REFERENCED)),
		// The kernel says BUSY when a set a rule uses is destroyed.
		errors.Is(err, nl.IPSetError(nl.IPSET_ERR_BUSY)) && strings.HasPrefix(what, "destroy"):
		return fmt.Errorf("%s: a rule that is not portwarden's still uses the set; remove that rule (iptables-save | grep -- --match-set shows it) and try again", what)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%s: %w", what, backends.ErrPermission)
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.ENOENT) && strings.HasPrefix(what, "open"):
		return fmt.Errorf("%s: the kernel has no ipset support (modules ip_set and ip_set_hash_net): %w", what, backends.ErrUnsupported)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (c *setConn) request(cmd int, flags int) *nl.NetlinkRequest {
	req := &nl.NetlinkRequest{
		NlMsghdr: unix.NlMsghdr{
			Len:   uint32(unix.SizeofNlMsghdr),
			Type:  uint16(cmd | unix.NFNL_SUBSYS_IPSET<<8),
			Flags: uint16(flags),
		},
		Sockets: c.sock,
	}
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_NETLINK, Version: nl.NFNETLINK_V0})
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_PROTOCOL, nl.Uint8Attr(nl.IPSET_PROTOCOL)))
	return req
}

// ipset dump flag: list set names (and type, family) only.
const ipsetFlagListSetname = 1 << 1

func (n netlinkSets) sets() ([2]map[string]*ownedSet, error) {
	out := [2]map[string]*ownedSet{{}, {}}
	c, err := n.open()
	if err != nil {
		return out, err
	}
	defer c.close()
	req := c.request(nl.IPSET_CMD_LIST, unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_DUMP)
	req.AddData(&nl.Uint32Attribute{Type: nl.IPSET_ATTR_FLAGS | nl.NLA_F_NET_BYTEORDER, Value: ipsetFlagListSetname})
	var names []string
	err = req.ExecuteIter(unix.NETLINK_NETFILTER, 0, func(msg []byte) bool {
		if name := dumpSetName(msg); name != "" {
			if _, _, _, ok := ownedSetName(name); ok {
				names = append(names, name)
			}
		}
		return true
	})
	if err != nil {
		return out, setError("list the ipset sets", err)
	}
	for _, name := range names {
		fam, _, _, _ := ownedSetName(name)
		s := &ownedSet{name: name}
		req := c.request(nl.IPSET_CMD_LIST, unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_DUMP)
		req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_SETNAME, nl.ZeroTerminated(name)))
		var perr error
		err := req.ExecuteIter(unix.NETLINK_NETFILTER, 0, func(msg []byte) bool {
			if perr == nil {
				perr = parseSetDump(s, msg)
			}
			return true
		})
		if err != nil {
			if isNoSuchSet(err) {
				continue // destroyed since it was listed
			}
			return out, setError("read ipset "+name, err)
		}
		if perr != nil {
			return out, fmt.Errorf("read ipset %s: %w", name, perr)
		}
		sortElems(s.elems)
		out[fam][name] = s
	}
	return out, nil
}

func isNoSuchSet(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && errno == unix.ENOENT
}

// attrs calls fn with the type (flags masked off) and value of every
// netlink attribute in b. A dump of 100,000 elements is half a million
// attributes: walked in place, without a decoder object or a copy each.
func attrs(b []byte, fn func(typ uint16, v []byte)) error {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < 4 || l > len(b) {
			return errors.New("malformed netlink attribute")
		}
		fn(binary.NativeEndian.Uint16(b[2:4])&nl.NLA_TYPE_MASK, b[4:l])
		l = (l + 3) &^ 3
		if l >= len(b) {
			break
		}
		b = b[l:]
	}
	return nil
}

// cstring is a NUL-terminated netlink string.
func cstring(v []byte) string {
	if i := slices.Index(v, 0); i >= 0 {
		v = v[:i]
	}
	return string(v)
}

// dumpSetName is the IPSET_ATTR_SETNAME of a dump message.
func dumpSetName(msg []byte) string {
	if len(msg) < 4 {
		return ""
	}
	var name string
	attrs(msg[4:], func(typ uint16, v []byte) {
		if typ == nl.IPSET_ATTR_SETNAME {
			name = cstring(v)
		}
	})
	return name
}

// parseSetDump adds one LIST message (header and/or elements) to s.
func parseSetDump(s *ownedSet, msg []byte) error {
	if len(msg) < 4 {
		return errors.New("short ipset message")
	}
	var err error
	keep := func(e error) {
		if err == nil {
			err = e
		}
	}
	keep(attrs(msg[4:], func(typ uint16, v []byte) {
		switch typ {
		case nl.IPSET_ATTR_TYPENAME:
			s.typ = cstring(v)
		case nl.IPSET_ATTR_FAMILY:
			if len(v) > 0 {
				s.family = v[0]
			}
		case nl.IPSET_ATTR_DATA:
			keep(attrs(v, func(typ uint16, v []byte) {
				if len(v) < 4 {
					return
				}
				switch typ {
				case nl.IPSET_ATTR_CADT_FLAGS:
					f := binary.BigEndian.Uint32(v)
					s.counters = f&nl.IPSET_FLAG_WITH_COUNTERS != 0
					s.comments = f&nl.IPSET_FLAG_WITH_COMMENT != 0
				case nl.IPSET_ATTR_MAXELEM:
					s.maxElem = binary.BigEndian.Uint32(v)
				case nl.IPSET_ATTR_REFERENCES:
					s.refs = binary.BigEndian.Uint32(v)
				case nl.IPSET_ATTR_ELEMENTS:
					if n := int(binary.BigEndian.Uint32(v)); s.elems == nil && n < setMaxElem {
						s.elems = make([]setElem, 0, n)
					}
				}
			}))
		case nl.IPSET_ATTR_ADT:
			keep(attrs(v, func(typ uint16, v []byte) {
				if typ == nl.IPSET_ATTR_DATA {
					el, e := parseElem(v)
					keep(e)
					s.elems = append(s.elems, el)
				}
			}))
		}
	}))
	return err
}

func parseElem(b []byte) (setElem, error) {
	var el setElem
	var addr netip.Addr
	bits := -1
	err := attrs(b, func(typ uint16, v []byte) {
		switch typ {
		case nl.IPSET_ATTR_IP:
			attrs(v, func(_ uint16, v []byte) { addr, _ = netip.AddrFromSlice(v) })
		case nl.IPSET_ATTR_CIDR:
			if len(v) > 0 {
				bits = int(v[0])
			}
		case nl.IPSET_ATTR_CADT_FLAGS:
			if len(v) >= 4 {
				el.nomatch = binary.BigEndian.Uint32(v)&nl.IPSET_FLAG_NOMATCH != 0
			}
		case nl.IPSET_ATTR_PACKETS:
			if len(v) >= 8 {
				el.packets = binary.BigEndian.Uint64(v)
			}
		case nl.IPSET_ATTR_BYTES:
			if len(v) >= 8 {
				el.nbytes = binary.BigEndian.Uint64(v)
			}
		case nl.IPSET_ATTR_COMMENT:
			el.comment = cstring(v)
		}
	})
	if bits < 0 {
		bits = addr.BitLen()
	}
	el.prefix = netip.PrefixFrom(addr, bits)
	return el, err
}

// maxBatch keeps an element message well under the 64 KiB a netlink
// attribute (the nested element list) can hold.
const maxBatch = 60000

func (n netlinkSets) write(ops []setOp) error {
	if len(ops) == 0 {
		return nil
	}
	c, err := n.open()
	if err != nil {
		return err
	}
	defer c.close()
	for _, op := range ops {
		if err := c.do(op); err != nil {
			return err
		}
	}
	return nil
}

func (c *setConn) do(op setOp) error {
	switch op.kind {
	case "create":
		err := c.h.IpsetCreate(op.name, setType, netlink.IpsetCreateOptions{
			Family: op.spec.fam.ipsetFamily(), Revision: setRevision, Counters: true,
			Comments: op.spec.comments(), MaxElements: setMaxElem,
		})
		if err != nil {
			return setError("create ipset "+op.name, err)
		}
		return c.elements(nl.IPSET_CMD_ADD, op.name, op.elems)
	case "add":
		return c.elements(nl.IPSET_CMD_ADD, op.name, op.elems)
	case "del":
		return c.elements(nl.IPSET_CMD_DEL, op.name, op.elems)
	case "swap":
		if err := c.h.IpsetSwap(op.name, op.other); err != nil {
			return setError("swap ipset "+op.name+" with "+op.other, err)
		}
	case "destroy":
		if err := c.h.IpsetDestroy(op.name); err != nil && !isNoSuchSet(err) {
			return setError("destroy ipset "+op.name, err)
		}
	default:
		return fmt.Errorf("unknown ipset operation %q", op.kind)
	}
	return nil
}

// elements adds or deletes elements, many to a message, as `ipset
// restore` does. Adding an element that exists or deleting one that does
// not is no error.
func (c *setConn) elements(cmd int, name string, elems []setElem) error {
	verb := map[int]string{nl.IPSET_CMD_ADD: "add to", nl.IPSET_CMD_DEL: "delete from"}[cmd]
	for len(elems) > 0 {
		req := c.request(cmd, unix.NLM_F_REQUEST|unix.NLM_F_ACK)
		req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_SETNAME, nl.ZeroTerminated(name)))
		// The kernel wants a line number beside an element list (it
		// reports errors by it, for ipset restore).
		req.AddData(&nl.Uint32Attribute{Type: nl.IPSET_ATTR_LINENO, Value: 0})
		adt := nl.NewRtAttr(nl.IPSET_ATTR_ADT|int(nl.NLA_F_NESTED), nil)
		size := 0
		n := 0
		for n < len(elems) && size < maxBatch {
			a := elemAttr(elems[n], cmd == nl.IPSET_CMD_ADD)
			size += a.Len()
			adt.AddChild(a)
			n++
		}
		req.AddData(adt)
		if _, err := req.Execute(unix.NETLINK_NETFILTER, 0); err != nil {
			return setError(fmt.Sprintf("%s ipset %s (%d elements from %s)", verb, name, n, elems[0].prefix), err)
		}
		elems = elems[n:]
	}
	return nil
}

func elemAttr(e setElem, withExtensions bool) *nl.RtAttr {
	data := elemData(e, withExtensions)
	if withExtensions && e.nomatch {
		data.AddChild(&nl.Uint32Attribute{Type: nl.IPSET_ATTR_CADT_FLAGS | nl.NLA_F_NET_BYTEORDER, Value: nl.IPSET_FLAG_NOMATCH})
	}
	return data
}

func elemData(e setElem, withExtensions bool) *nl.RtAttr {
	data := nl.NewRtAttr(nl.IPSET_ATTR_DATA|int(nl.NLA_F_NESTED), nil)
	ip := nl.NewRtAttr(nl.IPSET_ATTR_IP|int(nl.NLA_F_NESTED), nil)
	if e.prefix.Addr().Is4() {
		ip.AddRtAttr(nl.IPSET_ATTR_IPADDR_IPV4|int(nl.NLA_F_NET_BYTEORDER), e.prefix.Addr().AsSlice())
	} else {
		ip.AddRtAttr(nl.IPSET_ATTR_IPADDR_IPV6|int(nl.NLA_F_NET_BYTEORDER), e.prefix.Addr().AsSlice())
	}
	data.AddChild(ip)
	data.AddRtAttr(nl.IPSET_ATTR_CIDR, nl.Uint8Attr(uint8(e.prefix.Bits())))
	if withExtensions {
		if e.comment != "" {
			data.AddRtAttr(nl.IPSET_ATTR_COMMENT, nl.ZeroTerminated(e.comment))
		}
		if e.packets != 0 || e.nbytes != 0 {
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], e.packets)
			data.AddRtAttr(nl.IPSET_ATTR_PACKETS|int(nl.NLA_F_NET_BYTEORDER), slices.Clone(b[:]))
			binary.BigEndian.PutUint64(b[:], e.nbytes)
			data.AddRtAttr(nl.IPSET_ATTR_BYTES|int(nl.NLA_F_NET_BYTEORDER), slices.Clone(b[:]))
		}
	}
	return data
}
