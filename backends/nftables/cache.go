package nftables

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"slices"

	"github.com/portwarden/portwarden/backends/safeapply"
	"github.com/portwarden/portwarden/internal/nfgen"
	"github.com/portwarden/portwarden/rules"
)

// The cache file lets a fresh process skip reading the kernel: it holds
// what the owned table held at one nf_tables generation of one namespace,
// and is trusted only while the kernel still reports that generation, for
// that namespace cookie, in this boot. Any write by anyone moves the
// generation, so a hand edit is never hidden: the next command reads the
// kernel again. Only a state without drift is cached; with drift the
// kernel's own objects are needed to repair it.
//
// Layout: a magic line; a 4-byte length and a small JSON key (boot,
// namespace cookie, generation, fingerprints); a 4-byte length and the
// Ruleset as JSON with its prefix sets left empty; the prefix sets packed
// (address bytes and length); a CRC-32 of everything before it. The key
// comes first and alone so that a command asking whether the cache still
// holds (Holds), or finding the generation moved, decodes a few fields
// and not the Ruleset. A million prefixes
// decode in milliseconds, where JSON took seconds. Grants (few, with
// their deadlines) stay in the header; a cache holding a grant whose
// deadline has passed is not trusted, since the kernel drops expired
// elements without moving the generation.

// v4: the key apart from the Ruleset; v3 added per-element counters and
// seen sets, v2 grant sets. An older file is not trusted: it may describe
// a table an older portwarden wrote, which apply must upgrade.
const cacheMagic = "portwarden nftables cache v4\n"

// cacheFileName is the file in the namespace's state directory.
const cacheFileName = "nftables.cache"

type cacheKey struct {
	BootID      string `json:"boot_id"`
	Cookie      uint64 `json:"cookie"`
	Generation  uint32 `json:"generation"`
	Fingerprint string `json:"fingerprint"`         // of the state, as State() reports it
	Ruleset     string `json:"ruleset_fingerprint"` // rules.Ruleset.Fingerprint of what the table holds
}

// current reports whether the cache was written at this generation of
// this namespace in this boot.
func (k *cacheKey) current(cookie uint64, gen uint32) bool {
	return k.Cookie == cookie && k.Generation == gen && k.BootID == safeapply.BootID()
}

type cacheHeader struct {
	cacheKey
	Bare *rules.Ruleset // prefix sets empty; they follow packed
}

// openCache opens the cache of the namespace cookie to read, through
// safeapply.OpenCache: the state root and the namespace's directory are
// checked now, on every read, not only when the backend was opened, and
// the file must be one nobody else could have written (not a link, not a
// FIFO). nil when there is none or it may not be trusted: the caller
// reads the kernel instead.
func (b *Backend) openCache(cookie uint64) (*os.File, fs.FileInfo) {
	if b.stateDir == "" || cookie == 0 {
		return nil, nil
	}
	f, fi, err := safeapply.OpenCache(b.stateDir, cookie, cacheFileName)
	if err != nil {
		return nil, nil
	}
	return f, fi
}

// prefixLists are the prefix sets of an exposure in the cache's order.
func prefixLists(e *rules.Exposure) []*[]netip.Prefix {
	return []*[]netip.Prefix{&e.Destinations.V4, &e.Destinations.V6, &e.Deny.V4, &e.Deny.V6, &e.Allow.V4, &e.Allow.V6}
}

// saveCacheLater writes the cache beside the rest of the command when the
// caller asked for that (Config.Later): the command itself has what it
// read already, and the file only spares the next one a read.
func (b *Backend) saveCacheLater(s *snapshot) {
	if b.later == nil {
		b.saveCache(s)
		return
	}
	b.later(func() { b.saveCache(s) })
}

// saveCache records s, read or written at generation s.gen, for later
// processes. Failing to write it costs only speed, so errors are dropped.
//
// The backend never makes the state root or the namespace's directory:
// safeapply.ReplaceCache writes only into a directory that exists and
// passes the state directory's checks at the moment of writing (a command
// that writes state made it, through safeapply.Open). A save runs in the
// background of commands that only read, long after New, and os.MkdirAll
// of a root missing then follows whatever link someone planted in its
// place meanwhile (in /tmp, say), and made the root for a read-only
// command, which safeapply.OpenExisting promises never to do.
func (b *Backend) saveCache(s *snapshot) {
	if b.stateDir == "" || s.cookie == 0 || s.table == nil || len(s.drift) > 0 || !s.canonical {
		return
	}
	st := s.state()
	// The exposures alone are copied to blank their prefix sets, and the
	// file is built in one buffer: with 100,000 prefixes a Clone and the
	// copies cost a fresh process more than the encoding.
	bare := &rules.Ruleset{Exposures: slices.Clone(s.ruleset.Exposures)}
	size := 0
	for i := range bare.Exposures {
		e := &bare.Exposures[i]
		e.Origins = nil
		for _, list := range prefixLists(e) {
			size += binary.MaxVarintLen64 + 17*len(*list)
			*list = nil
		}
	}
	key, err := json.Marshal(cacheKey{BootID: safeapply.BootID(), Cookie: s.cookie, Generation: s.gen, Fingerprint: st.Fingerprint, Ruleset: s.rulesetFP})
	if err != nil {
		return
	}
	header, err := json.Marshal(bare)
	if err != nil {
		return
	}
	out := make([]byte, 0, len(cacheMagic)+4+len(key)+4+len(header)+size+4)
	out = append(out, cacheMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(key)))
	out = append(out, key...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(header)))
	out = append(out, header...)
	for i := range s.ruleset.Exposures {
		for _, list := range prefixLists(&s.ruleset.Exposures[i]) {
			out = binary.AppendUvarint(out, uint64(len(*list)))
			for _, p := range *list {
				if a := p.Addr(); a.Is4() {
					b := a.As4()
					out = append(out, b[:]...)
				} else {
					b := a.As16()
					out = append(out, b[:]...)
				}
				out = append(out, byte(p.Bits()))
			}
		}
	}
	out = binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out))
	// Saves run beside the command (saveCacheLater), so a plan's read and
	// the apply after it may both be saving: one at a time, and never the
	// older over the newer.
	b.saveMu.Lock()
	defer b.saveMu.Unlock()
	if b.saved.cookie == s.cookie && int32(s.gen-b.saved.gen) < 0 {
		return
	}
	// Replaced by rename: readers see the old or the new file.
	if safeapply.ReplaceCache(b.stateDir, s.cookie, cacheFileName, out) != nil {
		return
	}
	b.saved.cookie, b.saved.gen = s.cookie, s.gen
}

// loadCache returns the cached snapshot when it was taken at exactly this
// generation of this namespace in this boot, else nil.
func (b *Backend) loadCache(cookie uint64, gen uint32) *snapshot {
	f, info := b.openCache(cookie)
	if f == nil {
		return nil
	}
	defer f.Close()
	// The key first: a cache written at another generation is told from
	// it, without reading the prefixes (17 MB at a million).
	head, k, ok := readCacheKey(f)
	if !ok || !k.current(cookie, gen) {
		return nil
	}
	if info.Size() < int64(len(head)) || info.Size() > maxCacheBytes {
		return nil
	}
	data := make([]byte, info.Size())
	copy(data, head)
	if _, err := io.ReadFull(f, data[len(head):]); err != nil {
		return nil
	}
	h, err := decodeCache(data, len(head), k)
	if err != nil {
		return nil
	}
	if grantExpired(h.Bare) {
		return nil
	}
	s := writtenOwned(&snapshot{cookie: cookie}, h.Bare, nil, gen)
	s.once.Do(func() { s.fingerprint, s.rulesetFP = h.Fingerprint, h.Ruleset })
	s.canonical = true
	return s
}

var errBadCache = errors.New("damaged cache file")

// decodeCache decodes the rest of a cache file whose first keyEnd bytes
// are the magic and key, already read (readCacheKey) and found current.
func decodeCache(data []byte, keyEnd int, key cacheKey) (*cacheHeader, error) {
	if len(data) < keyEnd+8 {
		return nil, errBadCache
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, errBadCache
	}
	h := cacheHeader{cacheKey: key}
	bareJSON, rest, ok := cut32(body[keyEnd:])
	if !ok || json.Unmarshal(bareJSON, &h.Bare) != nil || h.Bare == nil {
		return nil, errBadCache
	}
	for i := range h.Bare.Exposures {
		for j, list := range prefixLists(&h.Bare.Exposures[i]) {
			count, k := binary.Uvarint(rest)
			if k <= 0 {
				return nil, errBadCache
			}
			rest = rest[k:]
			size := 5 // IPv4 address and length; IPv6 in the odd lists
			if j%2 == 1 {
				size = 17
			}
			if count > uint64(len(rest)/size) {
				return nil, errBadCache
			}
			ps := make([]netip.Prefix, count)
			for x := range ps {
				addr, _ := netip.AddrFromSlice(rest[:size-1])
				p := netip.PrefixFrom(addr, int(rest[size-1]))
				if !p.IsValid() || p != p.Masked() {
					return nil, errBadCache
				}
				ps[x] = p
				rest = rest[size:]
			}
			*list = ps
		}
	}
	if len(rest) != 0 {
		return nil, errBadCache
	}
	return &h, nil
}

// Holds reports whether the cache proves that the kernel holds a Ruleset
// with this fingerprint: the cache was written at the namespace's current
// generation, in this boot. Only the file's key is read.
func (b *Backend) Holds(fingerprint string) bool {
	cookie, err := nfgen.Cookie(b.netns)
	if err != nil {
		return false
	}
	gen, err := nfgen.Generation(b.netns)
	if err != nil {
		return false
	}
	f, _ := b.openCache(cookie)
	if f == nil {
		return false
	}
	defer f.Close()
	_, k, ok := readCacheKey(f)
	return ok && k.current(cookie, gen) && k.Ruleset == fingerprint
}

// maxCacheBytes bounds the cache file read: a million IPv6 prefixes take
// 17 MB.
const maxCacheBytes = 1 << 30

// readCacheKey reads a cache file's magic and key; head is every byte
// read, for the checksum.
func readCacheKey(f *os.File) (head []byte, k cacheKey, ok bool) {
	head = make([]byte, len(cacheMagic)+4, 512)
	if _, err := io.ReadFull(f, head); err != nil || string(head[:len(cacheMagic)]) != cacheMagic {
		return nil, k, false
	}
	n := int(binary.BigEndian.Uint32(head[len(cacheMagic):]))
	if n > 64<<10 {
		return nil, k, false
	}
	head = slices.Grow(head, n)[:len(head)+n]
	if _, err := io.ReadFull(f, head[len(cacheMagic)+4:]); err != nil || json.Unmarshal(head[len(cacheMagic)+4:], &k) != nil {
		return nil, k, false
	}
	return head, k, true
}

// cut32 splits off a part prefixed with its 4-byte length.
func cut32(b []byte) (part, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint32(b))
	if n > len(b)-4 {
		return nil, nil, false
	}
	return b[4 : 4+n], b[4+n:], true
}
