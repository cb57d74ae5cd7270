package importer

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"net/netip"
	"os/exec"
	"reflect"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"go4.org/netipx"
	"golang.org/x/sys/unix"
)

// ReadNftablesKernel reads the running ruleset over netlink (nsFd: a
// network namespace to read, or -1 for the current one) and imports it
// like `nft -j list ruleset` output. The kernel holds expressions, not
// statements: it decodes the shapes nft writes for what a policy can
// say (meta nfproto and l4proto, ip/ip6 saddr with prefixes, ranges,
// named and anonymous sets, tcp/udp dport with ranges and sets, iif lo,
// ct state, accept/drop/reject/jump/return, counter, log, comments);
// any other expression makes its rule a left-out item named by its kind.
// For import --check it also saves the ruleset with `nft -j list
// ruleset` when the nft binary is there.
func ReadNftablesKernel(ctx context.Context, nsFd int) (*Import, error) {
	var opts []nftables.ConnOption
	if nsFd >= 0 {
		opts = append(opts, nftables.WithNetNSFd(nsFd))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	defer conn.CloseLasting()
	doc, err := kernelDoc(conn)
	if err != nil {
		return nil, fmt.Errorf("read the ruleset over netlink: %w (reading it needs root)", err)
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	im, err := ParseNftables([]File{{Name: "kernel", Data: data}})
	if err != nil {
		return nil, err
	}
	im.Sources = []string{"the running ruleset (netlink)"}
	im.Load = nil
	if nsFd < 0 {
		if out, err := exec.CommandContext(ctx, "nft", "-j", "list", "ruleset").Output(); err == nil {
			im.Load = []LoadStep{{Name: "nft", Args: []string{"-j", "-f", "-"}, Stdin: out}}
		}
	}
	return im, nil
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	}
	return ""
}

var hookNames = map[uint32]string{unix.NF_INET_PRE_ROUTING: "prerouting", unix.NF_INET_LOCAL_IN: "input", unix.NF_INET_FORWARD: "forward", unix.NF_INET_LOCAL_OUT: "output", unix.NF_INET_POST_ROUTING: "postrouting"}

// kernelDoc builds the libnftables JSON document of the ruleset's ip, ip6
// and inet tables.
func kernelDoc(conn *nftables.Conn) (map[string][]map[string]any, error) {
	var objs []map[string]any
	tables, err := conn.ListTables()
	if err != nil {
		return nil, err
	}
	chains, err := conn.ListChains()
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		fam := familyName(t.Family)
		if fam == "" {
			continue
		}
		sets, err := conn.GetSets(t)
		if err != nil {
			return nil, err
		}
		anon := map[string][]any{}
		for _, s := range sets {
			els, err := conn.GetSetElements(s)
			if err != nil {
				return nil, err
			}
			vals := setValues(s, els)
			if s.Anonymous {
				anon[s.Name] = vals
				continue
			}
			var flags []string
			if s.Interval {
				flags = append(flags, "interval")
			}
			if s.Dynamic {
				flags = append(flags, "dynamic")
			}
			if s.HasTimeout {
				flags = append(flags, "timeout")
			}
			objs = append(objs, map[string]any{"set": map[string]any{"family": fam, "table": t.Name, "name": s.Name, "type": s.KeyType.Name, "flags": flags, "elem": vals}})
		}
		for _, c := range chains {
			if c.Table.Name != t.Name || c.Table.Family != t.Family {
				continue
			}
			ch := map[string]any{"family": fam, "table": t.Name, "name": c.Name}
			if c.Hooknum != nil {
				ch["hook"] = hookNames[uint32(*c.Hooknum)]
				ch["type"] = string(c.Type)
				if c.Priority != nil {
					ch["prio"] = int(*c.Priority)
				}
				ch["policy"] = "accept"
				if c.Policy != nil && *c.Policy == nftables.ChainPolicyDrop {
					ch["policy"] = "drop"
				}
			}
			objs = append(objs, map[string]any{"chain": ch})
			rs, err := conn.GetRules(t, c)
			if err != nil {
				return nil, err
			}
			for _, r := range rs {
				rule := map[string]any{"family": fam, "table": t.Name, "chain": c.Name, "handle": r.Handle, "expr": decodeExprs(r.Exprs, fam, anon)}
				if comment, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok {
					rule["comment"] = comment
				}
				objs = append(objs, map[string]any{"rule": rule})
			}
		}
	}
	return map[string][]map[string]any{"nftables": objs}, nil
}

// register is what the expressions so far loaded into register 1.
type register struct {
	kind   string // nfproto, l4proto, saddr, dport, iif, iifname, ctstate, or another description
	family int    // for saddr
	bytes  int    // payload length loaded
	mask   []byte // a bitwise mask applied to it
}

func decodeExprs(exprs []expr.Any, tableFam string, anon map[string][]any) []map[string]any {
	var out []map[string]any
	fam := map[string]int{"ip": 4, "ip6": 6}[tableFam]
	l4 := ""
	var reg register
	var pendingLow any // a >= port waiting for its <=
	stmt := func(k string, v any) { out = append(out, map[string]any{k: v}) }
	match := func(op string, left map[string]any, right any) {
		stmt("match", map[string]any{"op": op, "left": left, "right": right})
	}
	for _, e := range exprs {
		switch x := e.(type) {
		case *expr.Meta:
			switch x.Key {
			case expr.MetaKeyNFPROTO:
				reg = register{kind: "nfproto"}
			case expr.MetaKeyL4PROTO:
				reg = register{kind: "l4proto"}
			case expr.MetaKeyIIF:
				reg = register{kind: "iif"}
			case expr.MetaKeyIIFNAME:
				reg = register{kind: "iifname"}
			default:
				reg = register{kind: fmt.Sprintf("meta key %d", x.Key)}
			}
		case *expr.Ct:
			if x.Key == expr.CtKeySTATE {
				reg = register{kind: "ctstate"}
			} else {
				reg = register{kind: fmt.Sprintf("ct key %d", x.Key)}
			}
		case *expr.Payload:
			switch {
			case x.Base == expr.PayloadBaseNetworkHeader && fam == 4 && x.Offset == 12 && x.Len <= 4:
				reg = register{kind: "saddr", family: 4, bytes: int(x.Len)}
			case x.Base == expr.PayloadBaseNetworkHeader && fam == 6 && x.Offset == 8 && x.Len <= 16:
				reg = register{kind: "saddr", family: 6, bytes: int(x.Len)}
			case x.Base == expr.PayloadBaseTransportHeader && x.Offset == 2 && x.Len == 2 && (l4 == "tcp" || l4 == "udp"):
				reg = register{kind: "dport"}
			default:
				reg = register{kind: fmt.Sprintf("payload base %d offset %d", x.Base, x.Offset)}
			}
		case *expr.Bitwise:
			reg.mask = x.Mask
		case *expr.Cmp:
			op := map[expr.CmpOp]string{expr.CmpOpEq: "==", expr.CmpOpNeq: "!=", expr.CmpOpLt: "<", expr.CmpOpLte: "<=", expr.CmpOpGt: ">", expr.CmpOpGte: ">="}[x.Op]
			switch reg.kind {
			case "nfproto":
				v := map[byte]string{unix.NFPROTO_IPV4: "ipv4", unix.NFPROTO_IPV6: "ipv6"}[x.Data[0]]
				if x.Op == expr.CmpOpEq {
					fam = map[string]int{"ipv4": 4, "ipv6": 6}[v]
				}
				match(op, meta("nfproto"), v)
			case "l4proto":
				v := map[byte]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp", unix.IPPROTO_ICMP: "icmp", unix.IPPROTO_ICMPV6: "ipv6-icmp"}[x.Data[0]]
				if v == "" {
					v = fmt.Sprint(x.Data[0])
				}
				if x.Op == expr.CmpOpEq {
					l4 = v
				}
				match(op, meta("l4proto"), v)
			case "iif":
				v := fmt.Sprintf("ifindex %d", binary.NativeEndian.Uint32(pad(x.Data, 4)))
				if binary.NativeEndian.Uint32(pad(x.Data, 4)) == 1 {
					v = "lo" // lo is interface 1 in every namespace
				}
				match(op, meta("iif"), v)
			case "iifname":
				match(op, meta("iifname"), string(bytes.TrimRight(x.Data, "\x00")))
			case "ctstate":
				if x.Op != expr.CmpOpNeq || !allZero(x.Data) {
					stmt("ct state comparison", nil)
					continue
				}
				match("in", map[string]any{"ct": map[string]any{"key": "state"}}, ctStates(reg.mask))
			case "saddr":
				proto := map[int]string{4: "ip", 6: "ip6"}[reg.family]
				match(op, payload(proto, "saddr"), prefixValue(x.Data, reg))
			case "dport":
				port := int(binary.BigEndian.Uint16(pad(x.Data, 2)))
				switch x.Op {
				case expr.CmpOpGte:
					pendingLow = port
					continue
				case expr.CmpOpLte:
					if pendingLow != nil {
						match("==", payload(l4, "dport"), map[string]any{"range": []any{pendingLow, port}})
						pendingLow = nil
						continue
					}
				}
				match(op, payload(l4, "dport"), port)
			default:
				stmt(reg.kind, nil)
			}
		case *expr.Range:
			if reg.kind == "dport" {
				lo, hi := binary.BigEndian.Uint16(pad(x.FromData, 2)), binary.BigEndian.Uint16(pad(x.ToData, 2))
				op := "=="
				if x.Op == expr.CmpOpNeq {
					op = "!="
				}
				match(op, payload(l4, "dport"), map[string]any{"range": []any{int(lo), int(hi)}})
			} else {
				stmt("range on "+reg.kind, nil)
			}
		case *expr.Lookup:
			var right any = "@" + x.SetName
			if vals, ok := anon[x.SetName]; ok {
				right = map[string]any{"set": vals}
			}
			op := "=="
			if x.Invert {
				op = "!="
			}
			switch reg.kind {
			case "saddr":
				match(op, payload(map[int]string{4: "ip", 6: "ip6"}[reg.family], "saddr"), right)
			case "dport":
				match(op, payload(l4, "dport"), right)
			case "l4proto":
				match(op, meta("l4proto"), right)
			default:
				stmt("lookup on "+reg.kind, nil)
			}
		case *expr.Counter:
			stmt("counter", nil)
		case *expr.Log:
			stmt("log", nil)
		case *expr.Verdict:
			switch x.Kind {
			case expr.VerdictAccept:
				stmt("accept", nil)
			case expr.VerdictDrop:
				stmt("drop", nil)
			case expr.VerdictReturn:
				stmt("return", nil)
			case expr.VerdictJump:
				stmt("jump", map[string]any{"target": x.Chain})
			case expr.VerdictGoto:
				stmt("goto", map[string]any{"target": x.Chain})
			default:
				stmt(fmt.Sprintf("verdict %d", x.Kind), nil)
			}
		case *expr.Reject:
			stmt("reject", map[string]any{"type": map[uint32]string{0: "icmp", 1: "tcp reset", 2: "icmpx"}[x.Type], "expr": rejectCode(x)})
		default:
			stmt(strings.ToLower(reflect.TypeOf(e).Elem().Name()), nil)
		}
	}
	return out
}

func meta(key string) map[string]any { return map[string]any{"meta": map[string]any{"key": key}} }

func payload(proto, field string) map[string]any {
	return map[string]any{"payload": map[string]any{"protocol": proto, "field": field}}
}

func rejectCode(r *expr.Reject) string {
	if r.Type == 2 {
		return map[uint8]string{0: "no-route", 1: "port-unreachable", 2: "host-unreachable", 3: "admin-prohibited"}[r.Code]
	}
	return fmt.Sprintf("code %d", r.Code)
}

func pad(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	return append(slices.Clone(b), make([]byte, n-len(b))...)
}

func allZero(b []byte) bool { return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) }

// ctStates names the conntrack state bits of a mask.
func ctStates(mask []byte) []any {
	m := binary.NativeEndian.Uint32(pad(mask, 4))
	var out []any
	for bit, name := range map[uint32]string{1: "invalid", 2: "established", 4: "related", 8: "new", 64: "untracked"} {
		if m&bit != 0 {
			out = append(out, name)
		}
	}
	slices.SortFunc(out, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
	return out
}

// prefixValue is the address a saddr comparison holds: a payload of n
// bytes (nft loads only the prefix's bytes) or a bitwise mask gives the
// prefix length.
func prefixValue(data []byte, reg register) any {
	size := 4
	if reg.family == 6 {
		size = 16
	}
	addr, _ := netip.AddrFromSlice(pad(data, size)[:size])
	length := reg.bytes * 8
	if reg.mask != nil {
		length = 0
		for _, b := range reg.mask {
			length += bits.OnesCount8(b)
		}
	}
	if length == size*8 {
		return addr.String()
	}
	return map[string]any{"prefix": map[string]any{"addr": addr.String(), "len": length}}
}

// setValues turns a set's elements into JSON values: addresses, prefixes
// and ranges for address sets, numbers and ranges for port sets.
func setValues(s *nftables.Set, els []nftables.SetElement) []any {
	isAddr := s.KeyType.Name == "ipv4_addr" || s.KeyType.Name == "ipv6_addr"
	value := func(key []byte) any {
		if isAddr {
			a, _ := netip.AddrFromSlice(key)
			return a
		}
		if len(key) == 2 {
			return int(binary.BigEndian.Uint16(key))
		}
		if len(key) == 1 {
			return map[byte]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp", unix.IPPROTO_ICMP: "icmp", unix.IPPROTO_ICMPV6: "ipv6-icmp"}[key[0]]
		}
		return fmt.Sprintf("%x", key)
	}
	render := func(lo, hi any) any {
		if a, ok := lo.(netip.Addr); ok {
			b := hi.(netip.Addr)
			ps := netipx.IPRangeFrom(a, b).Prefixes()
			if len(ps) == 1 {
				if ps[0].IsSingleIP() {
					return a.String()
				}
				return map[string]any{"prefix": map[string]any{"addr": ps[0].Addr().String(), "len": ps[0].Bits()}}
			}
			return map[string]any{"range": []any{a.String(), b.String()}}
		}
		if lo == hi {
			return lo
		}
		return map[string]any{"range": []any{lo, hi}}
	}
	var out []any
	if !s.Interval {
		for _, e := range els {
			v := value(e.Key)
			out = append(out, render(v, v))
		}
		return out
	}
	// Interval sets hold each range as its first key and, flagged as an
	// interval end, the key after its last.
	sorted := slices.Clone(els)
	slices.SortFunc(sorted, func(a, b nftables.SetElement) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		// A range's end and the next range's start share a key: the
		// end belongs to the range before.
		if a.IntervalEnd != b.IntervalEnd {
			if a.IntervalEnd {
				return -1
			}
			return 1
		}
		return 0
	})
	for i, e := range sorted {
		if e.IntervalEnd {
			continue
		}
		lo := value(e.Key)
		var hi any
		if i+1 < len(sorted) && sorted[i+1].IntervalEnd {
			hi = prev(value(sorted[i+1].Key))
		} else if e.KeyEnd != nil {
			hi = value(e.KeyEnd)
		} else {
			hi = last(lo)
		}
		out = append(out, render(lo, hi))
	}
	return out
}

func prev(v any) any {
	switch x := v.(type) {
	case netip.Addr:
		return x.Prev()
	case int:
		return x - 1
	}
	return v
}

func last(v any) any {
	switch x := v.(type) {
	case netip.Addr:
		if x.Is4() {
			return netip.MustParseAddr("255.255.255.255")
		}
		return netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
	case int:
		return 65535
	}
	return v
}
