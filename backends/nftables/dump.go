package nftables

import (
	"encoding/binary"
	"runtime"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/portwarden/portwarden/internal/nfgen"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Netlink attributes x/sys/unix does not name (linux/netfilter/nf_tables.h).
const (
	nftaSetExpr            = 17 // NFTA_SET_EXPR: a set's one expression
	nftaSetExpressions     = 18 // NFTA_SET_EXPRESSIONS: a set's expressions
	nftaSetElemExpressions = 11 // NFTA_SET_ELEM_EXPRESSIONS
)

// elem is one set element as a dump gives it: its key, and whether it
// ends an interval.
type elem struct {
	key []byte
	// until is a grant element's deadline (Unix seconds) from its
	// comment, 0 when it has none.
	until int64
	end   bool
	// timeoutOff: the time the kernel has left for the element does not
	// end within a second of until (the element was re-added by hand with
	// another timeout, or has none).
	timeoutOff bool
}

// dumpSet reads every element of an owned set in one netlink dump over a
// socket of its own, decoding each 32 KiB answer as it arrives.
//
// Why not nftables.Conn.GetSetElements: it gathers the whole answer as
// netlink messages, then as SetElements of about 200 bytes each, and with
// 100,000 sources growing those slices cost as much as the kernel's walk
// itself. Here only the keys are kept, copied into shared blocks.
func (b *Backend) dumpSet(set *nftables.Set) ([]elem, error) {
	var out []elem
	var arena []byte
	err := b.dump(getSetElemRequest(set), func(data []byte) (err error) {
		out, arena, err = decodeElems(data, out, arena, nil)
		return err
	})
	return out, err
}

// dumpSets dumps the named sets, several at a time: the kernel walks a
// set from its start again for every message of a dump, so a large set
// costs kernel time that grows with the square of its size, and the IPv4
// and IPv6 sets of an exposure are walked on two processors at once.
func (b *Backend) dumpSets(sets map[string]*nftables.Set, names []string) ([][]elem, error) {
	out := make([][]elem, len(names))
	var g errgroup.Group
	g.SetLimit(max(1, min(runtime.GOMAXPROCS(0), 4)))
	for i, name := range names {
		g.Go(func() (err error) {
			out[i], err = b.dumpSet(sets[name])
			return kernelErr("read set "+name, err)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// elemUse is what the kernel recorded on one element: its counter (sets
// with per-element counters) and, for sets with a timeout, how long it has
// left and its timeout when it differs from the set's.
type elemUse struct {
	packets, bytes   uint64
	expires, timeout time.Duration
}

// dumpSetUse is dumpSet with what each element recorded, uses[i] being
// that of elems[i]. Only Usage asks for it: the plain read skips those
// attributes.
func (b *Backend) dumpSetUse(set *nftables.Set) (elems []elem, uses []elemUse, err error) {
	var arena []byte
	err = b.dump(getSetElemRequest(set), func(data []byte) (err error) {
		elems, arena, err = decodeElems(data, elems, arena, &uses)
		return err
	})
	return elems, uses, err
}

// setsWithCounters names the sets of table that carry per-element
// counters. google/nftables' GetSets does not decode a set's expressions,
// so without this an old allow set (no counters) looks like a new one.
func (b *Backend) setsWithCounters(table string) (map[string]bool, error) {
	out := map[string]bool{}
	err := b.dump(getSetsRequest(table), func(data []byte) error {
		var name string
		counter := false
		err := nfgen.EachAttr(data, func(typ uint16, data []byte) error {
			switch typ {
			case unix.NFTA_SET_NAME:
				name = strings.TrimRight(string(data), "\x00")
			case nftaSetExpr:
				counter = counter || exprNamed(data, "counter")
			case nftaSetExpressions:
				return nfgen.EachAttr(data, func(typ uint16, data []byte) error {
					counter = counter || exprNamed(data, "counter")
					return nil
				})
			}
			return nil
		})
		if counter {
			out[name] = true
		}
		return err
	})
	return out, err
}

// exprNamed reports whether the nested expression b is called name.
func exprNamed(b []byte, name string) bool {
	found := false
	nfgen.EachAttr(b, func(typ uint16, data []byte) error {
		if typ == unix.NFTA_EXPR_NAME && strings.TrimRight(string(data), "\x00") == name {
			found = true
		}
		return nil
	})
	return found
}

// dump sends one netlink dump request over a socket of its own in the
// backend's namespace and calls fn with each answer's attributes (after
// struct nfgenmsg) as it arrives.
func (b *Backend) dump(req []byte, fn func(data []byte) error) error {
	return nfgen.Exchange(b.netns, req, func(_ uint16, _ byte, data []byte) error { return fn(data) })
}

// elemComment is the comment in an element's user data (libnftnl's
// type-length-value records; the comment is type 0, NUL-terminated).
func elemComment(ud []byte) string {
	for len(ud) >= 2 {
		typ, l := ud[0], int(ud[1])
		if 2+l > len(ud) {
			return ""
		}
		if typ == 0 { // NFTNL_UDATA_SET_ELEM_COMMENT
			return strings.TrimRight(string(ud[2:2+l]), "\x00")
		}
		ud = ud[2+l:]
	}
	return ""
}

func getSetElemRequest(set *nftables.Set) []byte {
	req := nfgen.Request(unix.NFT_MSG_GETSETELEM, unix.NLM_F_DUMP, byte(set.Table.Family))
	req = nfgen.AppendAttr(req, unix.NFTA_SET_ELEM_LIST_TABLE, set.Table.Name)
	return nfgen.AppendAttr(req, unix.NFTA_SET_ELEM_LIST_SET, set.Name)
}

func getSetsRequest(table string) []byte {
	req := nfgen.Request(unix.NFT_MSG_GETSET, unix.NLM_F_DUMP, byte(nftables.TableFamilyINet))
	return nfgen.AppendAttr(req, unix.NFTA_SET_TABLE, table)
}

// decodeElems appends the elements of one NFT_MSG_NEWSETELEM answer;
// keys are copied into arena, which grows in blocks. With uses non-nil it
// appends what each element recorded there too (counters, expiry).
func decodeElems(b []byte, out []elem, arena []byte, uses *[]elemUse) ([]elem, []byte, error) {
	err := nfgen.EachAttr(b, func(typ uint16, data []byte) error {
		if typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			return nil
		}
		return nfgen.EachAttr(data, func(typ uint16, data []byte) error {
			if typ != unix.NFTA_LIST_ELEM {
				return nil
			}
			var e elem
			var u elemUse
			expires := int64(-1)
			err := nfgen.EachAttr(data, func(typ uint16, data []byte) error {
				if uses != nil {
					decodeUse(typ, data, &u)
				}
				switch typ {
				case unix.NFTA_SET_ELEM_KEY:
					return nfgen.EachAttr(data, func(typ uint16, data []byte) error {
						if typ == unix.NFTA_DATA_VALUE {
							if cap(arena)-len(arena) < len(data) {
								arena = make([]byte, 0, 64<<10)
							}
							arena = append(arena, data...)
							e.key = arena[len(arena)-len(data) : len(arena) : len(arena)]
						}
						return nil
					})
				case unix.NFTA_SET_ELEM_FLAGS:
					if len(data) >= 4 {
						e.end = binary.BigEndian.Uint32(data)&unix.NFT_SET_ELEM_INTERVAL_END != 0
					}
				case unix.NFTA_SET_ELEM_EXPIRATION:
					if len(data) >= 8 {
						expires = int64(binary.BigEndian.Uint64(data))
					}
				case unix.NFTA_SET_ELEM_USERDATA:
					e.until, _ = parseUntilComment(elemComment(data))
				}
				return nil
			})
			if e.until != 0 {
				// The deadline the kernel keeps, from the milliseconds it has
				// left, must agree with the one the comment records.
				left := time.Until(time.Unix(e.until, 0)).Milliseconds()
				e.timeoutOff = expires < 0 || max(expires-left, left-expires) > 1000
			}
			if err == nil && e.key != nil {
				out = append(out, e)
				if uses != nil {
					*uses = append(*uses, u)
				}
			}
			return err
		})
	})
	return out, arena, err
}

// decodeUse reads the element attributes Usage needs into u.
func decodeUse(typ uint16, data []byte, u *elemUse) {
	ms := func(b []byte) time.Duration {
		if len(b) < 8 {
			return 0
		}
		return time.Duration(binary.BigEndian.Uint64(b)) * time.Millisecond
	}
	switch typ {
	case unix.NFTA_SET_ELEM_EXPIRATION:
		u.expires = ms(data)
	case unix.NFTA_SET_ELEM_TIMEOUT:
		u.timeout = ms(data)
	case unix.NFTA_SET_ELEM_EXPR:
		decodeCounter(data, u)
	case nftaSetElemExpressions:
		nfgen.EachAttr(data, func(typ uint16, data []byte) error {
			decodeCounter(data, u)
			return nil
		})
	}
}

// decodeCounter reads a counter expression's packets and bytes.
func decodeCounter(b []byte, u *elemUse) {
	if !exprNamed(b, "counter") {
		return
	}
	nfgen.EachAttr(b, func(typ uint16, data []byte) error {
		if typ != unix.NFTA_EXPR_DATA {
			return nil
		}
		return nfgen.EachAttr(data, func(typ uint16, data []byte) error {
			if len(data) < 8 {
				return nil
			}
			switch typ {
			case unix.NFTA_COUNTER_PACKETS:
				u.packets = binary.BigEndian.Uint64(data)
			case unix.NFTA_COUNTER_BYTES:
				u.bytes = binary.BigEndian.Uint64(data)
			}
			return nil
		})
	})
}
