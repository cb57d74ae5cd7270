package nftables

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/rules"
	"go4.org/netipx"
	"golang.org/x/sys/unix"
)

// ruleSpec is one rule as portwarden writes it: its comment identifies it
// (exposure and kind) and its expressions are what the kernel must hold.
type ruleSpec struct {
	comment string
	exprs   []expr.Any
}

// attrs are the exposure attributes the jump rule's comment records; the
// rules themselves must agree with them, or the chain has drifted.
type attrs struct {
	protocol rules.Protocol
	def      rules.Verdict
	answer   rules.RejectWith // set only with def == Reject
	log      bool
	loopback bool
	ifaces   bool // the jump matches the interface set
	dst      bool // the jump matches the destination sets
}

func attrsOf(e *rules.Exposure) attrs {
	a := attrs{protocol: e.Protocol, def: e.Default, log: e.Log, loopback: e.Loopback,
		ifaces: len(e.Interfaces) > 0, dst: !e.Destinations.Empty()}
	if e.Default == rules.Reject {
		a.answer = e.Answer()
	}
	return a
}

func (a attrs) String() string {
	s := fmt.Sprintf("proto=%s default=%s", a.protocol, a.def)
	if a.answer != "" {
		s += " reject=" + string(a.answer)
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{a.log, "log"}, {a.loopback, "loopback"}, {a.ifaces, "ifaces"}, {a.dst, "dst"}} {
		if f.on {
			s += " " + f.name
		}
	}
	return s
}

func parseAttrs(s string) (attrs, error) {
	var a attrs
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "proto":
			a.protocol = rules.Protocol(v)
		case "default":
			a.def = rules.Verdict(v)
		case "reject":
			a.answer = rules.RejectWith(v)
		case "log":
			a.log = true
		case "loopback":
			a.loopback = true
		case "ifaces":
			a.ifaces = true
		case "dst":
			a.dst = true
		default:
			return a, fmt.Errorf("unknown attribute %q", f)
		}
	}
	if (a.protocol != rules.TCP && a.protocol != rules.UDP) || (a.def != rules.Drop && a.def != rules.Reject) {
		return a, fmt.Errorf("incomplete attributes %q", s)
	}
	if a.def == rules.Reject && a.answer == "" {
		// Written before reject_with existed, when every reject answered
		// admin-prohibited: read it as that, so the plan shows the change.
		a.answer = rules.ICMPAdminProhibited
	}
	if a.answer != "" && !slices.Contains(rules.RejectChoices, a.answer) {
		return a, fmt.Errorf("unknown reject answer in %q", s)
	}
	return a, nil
}

// comment builds the rule comment: "portwarden <exposure> <kind>[ <attrs>]".
func comment(exposure, kind string, extra string) string {
	c := commentPrefix + exposure + " " + kind
	if extra != "" {
		c += " " + extra
	}
	return c
}

func parseComment(c string) (exposure, kind, extra string, ok bool) {
	rest, ok := strings.CutPrefix(c, commentPrefix)
	if !ok {
		return "", "", "", false
	}
	parts := strings.SplitN(rest, " ", 3)
	if len(parts) < 2 {
		return "", "", "", false
	}
	if len(parts) == 3 {
		extra = parts[2]
	}
	return parts[0], parts[1], extra, true
}

// userData encodes a comment the way nft does (a TLV of type
// NFTNL_UDATA_RULE_COMMENT), so `nft list ruleset` shows it.
func userData(comment string) []byte {
	b := []byte{0, byte(len(comment) + 1)}
	b = append(b, comment...)
	return append(b, 0)
}

func commentOf(ud []byte) string {
	for len(ud) >= 2 {
		typ, n := ud[0], int(ud[1])
		if len(ud) < 2+n {
			return ""
		}
		if typ == 0 {
			return strings.TrimRight(string(ud[2:2+n]), "\x00")
		}
		ud = ud[2+n:]
	}
	return ""
}

func protoNum(p rules.Protocol) byte {
	if p == rules.UDP {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

func familyMatch(fam int) []expr.Any {
	proto := byte(unix.NFPROTO_IPV4)
	if fam == 6 {
		proto = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

// addrInSet matches the source (or destination) address of family fam
// against a set.
func addrInSet(fam int, source bool, set *nftables.Set) []expr.Any {
	offset, length := uint32(12), uint32(4)
	if fam == 6 {
		offset, length = 8, 16
	}
	if !source {
		offset += length
	}
	return append(familyMatch(fam),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: length},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
	)
}

// verdictExprs is a verdict as expressions; answer says how a Reject
// answers. icmpx codes answer in each family's own ICMP, so one rule
// serves IPv4 and IPv6 in the inet table.
func verdictExprs(v rules.Verdict, answer rules.RejectWith) []expr.Any {
	switch v {
	case rules.Accept:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
	case rules.Reject:
		switch answer {
		case rules.TCPReset:
			// The chain sees only its exposure's protocol, but a reset
			// needs a TCP header: nft adds this match to a rule loaded as
			// text, so Apply writes it too and both read back the same.
			return []expr.Any{
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
				&expr.Reject{Type: unix.NFT_REJECT_TCP_RST},
			}
		case rules.ICMPPortUnreachable:
			return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}}
		}
		return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}}
	default:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
	}
}

func logExprs(exposure string) []expr.Any {
	return []expr.Any{
		&expr.Limit{Type: expr.LimitTypePkts, Rate: logRate, Unit: expr.LimitTimeMinute, Burst: logBurst},
		&expr.Counter{},
		&expr.Log{Key: 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_LEVEL, Level: expr.LogLevelWarning, Data: []byte(backends.LogPrefix(exposure))},
	}
}

// exposureSets are the named sets of one exposure, keyed by role.
type exposureSets map[string]*nftables.Set

func newExposureSets(table *nftables.Table, exposure string) exposureSets {
	sets := exposureSets{}
	for _, role := range setRoles {
		s := &nftables.Set{Table: table, Name: setName(exposure, role), Interval: true, KeyType: nftables.TypeIPAddr,
			Counter: isAdmitting(role)}
		switch role {
		case rolePorts:
			s.KeyType = nftables.TypeInetService
		case roleIfaces:
			s.KeyType, s.Interval = nftables.TypeIFName, false
		case roleDst6, roleDeny6, roleAllow6, roleGrant6:
			s.KeyType = nftables.TypeIP6Addr
		}
		s.HasTimeout = isGrantRole(role)
		sets[role] = s
	}
	for _, role := range seenRoles {
		s := &nftables.Set{Table: table, Name: setName(exposure, role), KeyType: nftables.TypeIPAddr,
			Dynamic: true, HasTimeout: true, Timeout: seenTimeout, Size: seenSize}
		if role == roleSeen6 {
			s.KeyType = nftables.TypeIP6Addr
		}
		sets[role] = s
	}
	return sets
}

// seenTimeout is how long a seen set remembers a source after it was last
// admitted; the time an element has left tells when that was. A year
// covers every sensible --unused-since (30, 90, 180 days) and an annual
// access review; a source silent for longer drops out and reads as never
// seen, which is the same answer: unused.
const seenTimeout = 365 * 24 * time.Hour

// seenSize bounds a seen set (the kernel's own default for a set the packet
// path fills): at most 65,535 sources per exposure and family are
// remembered, about 6 MB. When it is full a new source is not recorded;
// its packets are still admitted (see seenRule) and counted.
const seenSize = 65535

// jumpRules are the base chain rules that send an exposure's packets to
// its chain: one rule, or one per family when destinations are limited.
func jumpRules(e *rules.Exposure, sets exposureSets) []ruleSpec {
	a := attrsOf(e)
	common := []expr.Any{}
	if a.ifaces {
		common = append(common,
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: sets[roleIfaces].Name, SetID: sets[roleIfaces].ID})
	}
	common = append(common,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNum(e.Protocol)}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: sets[rolePorts].Name, SetID: sets[rolePorts].ID},
	)
	jump := []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictJump, Chain: chainName(e.Name)}}
	if !a.dst {
		return []ruleSpec{{comment(e.Name, "jump", a.String()), concat(common, jump)}}
	}
	var out []ruleSpec
	for _, fam := range []int{4, 6} {
		role := roleDst4
		if fam == 6 {
			role = roleDst6
		}
		out = append(out, ruleSpec{
			comment(e.Name, fmt.Sprintf("jump%d", fam), a.String()),
			concat(common, addrInSet(fam, false, sets[role]), jump),
		})
	}
	return out
}

// chainRules are the rules of an exposure's chain, in the evaluation order
// of rules.Exposure: loopback, deny, allow, default.
func chainRules(e *rules.Exposure, sets exposureSets) []ruleSpec {
	var out []ruleSpec
	add := func(kind string, exprs ...[]expr.Any) {
		out = append(out, ruleSpec{comment(e.Name, kind, ""), concat(exprs...)})
	}
	if e.Loopback {
		add("loopback", []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte("lo\x00")},
			&expr.Counter{},
		}, verdictExprs(rules.Accept, ""))
	}
	for _, fam := range []int{4, 6} {
		set := sets[map[int]string{4: roleDeny4, 6: roleDeny6}[fam]]
		if e.Log {
			add(fmt.Sprintf("deny%d-log", fam), addrInSet(fam, true, set), logExprs(e.Name))
		}
		add(fmt.Sprintf("deny%d", fam), addrInSet(fam, true, set), []expr.Any{&expr.Counter{}}, verdictExprs(e.Default, e.Answer()))
	}
	for _, a := range admittingSets {
		set := sets[a.role]
		add(a.role+"-new", newConnection(e.Protocol), addrInSet(a.fam, true, set), recordSeen(a.fam, sets[a.seen]),
			[]expr.Any{&expr.Counter{}}, verdictExprs(rules.Accept, ""))
		add(a.role, addrInSet(a.fam, true, set), []expr.Any{&expr.Counter{}}, verdictExprs(rules.Accept, ""))
	}
	if e.Log {
		add("default-log", logExprs(e.Name))
	}
	add("default", []expr.Any{&expr.Counter{}}, verdictExprs(e.Default, e.Answer()))
	return out
}

// newConnection matches the packets that make a source "seen": for TCP the
// first of a handshake (SYN without ACK), stateless; for UDP every packet.
//
// Why not `ct state new`: conntrack is not used anywhere in these chains,
// and the first ct expression would switch connection tracking on for the
// whole namespace, whose table, when full, drops packets of every
// connection: the record of who connected must not change who may.
func newConnection(p rules.Protocol) []expr.Any {
	if p != rules.TCP {
		return nil
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpSYN | tcpACK}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{tcpSYN}},
	}
}

const (
	tcpSYN = 0x02
	tcpACK = 0x10
)

// recordSeen adds the packet's source to the seen set of its family, or
// refreshes its timeout (`update @seen4 { ip saddr }`).
//
// The rule that records also accepts, and the plain accept rule of the
// same set follows it: when the kernel cannot record (the seen set is
// full), the dynset expression ends the rule as a non-match and the next
// rule accepts the packet, so recording never changes a verdict. A
// separate record-only rule would look the source up twice and count the
// packet twice in the element's counter.
func recordSeen(fam int, seen *nftables.Set) []expr.Any {
	offset, length := uint32(12), uint32(4)
	if fam == 6 {
		offset, length = 8, 16
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: length},
		&expr.Dynset{SrcRegKey: 1, SetName: seen.Name, SetID: seen.ID, Operation: unix.NFT_DYNSET_OP_UPDATE},
	}
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// interval is an inclusive range of set keys; until is the deadline of a
// grant set's element (Unix seconds), 0 in every other set.
type interval struct {
	first, last []byte
	until       int64
}

// wantedIntervals are the kernel set contents of one role: maximal
// ranges, so no two intervals touch (the kernel keeps them apart).
func wantedIntervals(e *rules.Exposure, role string) []interval {
	switch role {
	case rolePorts:
		var out []interval
		for _, p := range e.Ports {
			out = append(out, interval{first: be16(p.First), last: be16(p.Last)})
		}
		return out
	case roleIfaces:
		var out []interval
		for _, i := range e.Interfaces {
			k := ifnameKey(i)
			out = append(out, interval{first: k, last: k})
		}
		return out
	}
	var ps []netip.Prefix
	switch role {
	case roleDst4:
		ps = e.Destinations.V4
	case roleDst6:
		ps = e.Destinations.V6
	case roleDeny4:
		ps = e.Deny.V4
	case roleDeny6:
		ps = e.Deny.V6
	case roleAllow4:
		ps = e.Allow.V4
	case roleAllow6:
		ps = e.Allow.V6
	case roleGrant4, roleGrant6:
		return grantIntervals(e, role)
	}
	// Normalised prefixes are sorted and disjoint: coalescing neighbours
	// gives the maximal ranges in one pass. Sized up front and with the
	// keys in one block: growing and allocating per interval cost a third
	// of a one-source change at 100,000 sources.
	out := make([]interval, 0, len(ps))
	var keys []byte
	if len(ps) > 0 {
		keys = make([]byte, 0, 2*len(ps)*ps[0].Addr().BitLen()/8)
	}
	key := func(a netip.Addr) []byte {
		n := len(keys)
		if a.Is4() {
			b := a.As4()
			keys = append(keys, b[:]...) // within capacity: no reallocation
		} else {
			b := a.As16()
			keys = append(keys, b[:]...)
		}
		return keys[n:len(keys):len(keys)]
	}
	var cur netipx.IPRange
	for _, p := range ps {
		r := netipx.RangeOfPrefix(p)
		if cur.IsValid() && cur.To().Next() == r.From() {
			cur = netipx.IPRangeFrom(cur.From(), r.To())
			continue
		}
		if cur.IsValid() {
			out = append(out, interval{first: key(cur.From()), last: key(cur.To())})
		}
		cur = r
	}
	if cur.IsValid() {
		out = append(out, interval{first: key(cur.From()), last: key(cur.To())})
	}
	return out
}

// grantIntervals are the elements of a grant set: one interval per run of
// adjacent grants with one deadline, sorted.
func grantIntervals(e *rules.Exposure, role string) []interval {
	var out []interval
	for _, g := range e.Expiring {
		if g.Source.Addr().Is4() != (role == roleGrant4) {
			continue
		}
		r := netipx.RangeOfPrefix(g.Source)
		until := g.Until.Unix()
		if n := len(out); n > 0 && out[n-1].until == until {
			last, _ := netip.AddrFromSlice(out[n-1].last)
			if last.Next() == r.From() {
				out[n-1].last = r.To().AsSlice()
				continue
			}
		}
		out = append(out, interval{first: r.From().AsSlice(), last: r.To().AsSlice(), until: until})
	}
	return out
}

func be16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

func ifnameKey(name string) []byte {
	k := make([]byte, 16)
	copy(k, name)
	return k
}

func decrement(b []byte) []byte {
	out := append([]byte(nil), b...)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]--
		if out[i] != 0xff {
			break
		}
	}
	return out
}
