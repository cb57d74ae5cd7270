package policies

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/hashicorp/hcl/v2"
	"github.com/portwarden/portwarden/internal/hugepages"
	"go4.org/netipx"
)

// listReader reads the list file member, named in the policy file
// policyFile (as diagnostics name it), relative to that file. shown is the
// list file's name for diagnostics and origins; trust holds what the trust
// checks found (warnings, or the errors for which it was not read).
type listReader func(policyFile, member string, opts Options) (data []byte, shown string, trust hcl.Diagnostics, err error)

// osListReader reads list files from the operating system: Load names
// policy files by their real paths, so a list path is joined to the
// policy file's directory (and may use .. or be absolute). It judges the
// file, every directory on the way to it and every link followed before
// it opens the file (trust.go), and opens only the file it judged, and
// only a regular file, without ever blocking (a named pipe would hang the
// load).
func osListReader(policyFile, member string, opts Options) ([]byte, string, hcl.Diagnostics, error) {
	shown := member
	if !filepath.IsAbs(member) {
		shown = filepath.Join(filepath.Dir(policyFile), filepath.FromSlash(member))
	}
	trust, judged := checkListFile(shown, opts)
	if trust.HasErrors() {
		return nil, shown, trust, nil
	}
	if testHookTrustChecked != nil {
		testHookTrustChecked(shown)
	}
	open := openJudged // only the file judged: none if the walk reached none
	if effectiveTrust(opts) == TrustOff {
		open = openRegular
	}
	f, err := open(shown, MaxListBytes, judged)
	if err != nil {
		return nil, shown, trust, err
	}
	defer f.Close()
	data, err := readAdmitted(f, MaxListBytes)
	return data, shown, trust, err
}

// MaxListBytes bounds a list file: far above the 1,000,000 addresses
// (about 16 MB) portwarden is measured with, far below what would exhaust
// a host.
const MaxListBytes = 256 << 20

// fsListReader reads list files from fsys, whose names LoadFS uses as
// they are. It looks before it opens: a named pipe in an os.DirFS would
// otherwise block the open.
func fsListReader(fsys fs.FS) listReader {
	return func(policyFile, member string, _ Options) ([]byte, string, hcl.Diagnostics, error) {
		shown := path.Join(path.Dir(policyFile), member)
		info, err := fs.Stat(fsys, shown)
		if err != nil {
			return nil, shown, nil, err
		}
		if r := admit(info, MaxListBytes); r != nil {
			return nil, shown, nil, r
		}
		f, err := fsys.Open(shown)
		if err != nil {
			return nil, shown, nil, err
		}
		defer f.Close()
		data, err := readAdmitted(f, MaxListBytes)
		return data, shown, nil, err
	}
}

// listReadError says why a list file could not be read, and what to do.
func listReadError(shown string, err error) string {
	if r, ok := err.(*fileRefusal); ok {
		if r.Kind != "" {
			return fmt.Sprintf("%s is not a regular file: it is %s. members_file names a regular file of addresses, one a line, relative to the policy file that names it.", shown, r.Kind)
		}
		return fmt.Sprintf("%s is %v for a list file.", shown, r)
	}
	return fmt.Sprintf("%s: %v. members_file is relative to the policy file that names it.", shown, unwrapPathErr(err))
}

// maxListErrors bounds the diagnostics of one list file: a file of another
// format would otherwise print a million of them.
const maxListErrors = 20

// parseList reads a list file in the netset format FireHOL and ipset users
// keep: one address, CIDR prefix or first-last range a line; blank lines
// and everything after a # are ignored. Every address keeps its file and
// line so explain can say which line decides. It works on the bytes
// directly, without HCL, so a million lines load in a fraction of a
// second.
func parseList(data []byte, shown string) ([]Address, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	bad := 0
	out := make([]Address, 0, bytes.Count(data, []byte{'\n'})+1)
	hugepages.Slice(out)
	// One string for the whole file: lines are substrings of it, so a
	// line costs no allocation. It shares data's bytes rather than copying
	// them (16 MB for a million lines): data is never written after it was
	// read.
	rest := unsafe.String(unsafe.SliceData(data), len(data))
	line, offset := 0, 0
	for len(rest) > 0 {
		line++
		raw := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			raw, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		start := offset
		offset += len(raw) + 1
		text := raw
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		// By hand: strings.TrimLeft with a cutset builds the set on every
		// call, a tenth of the load of a million lines.
		lead := 0
		for lead < len(text) && (text[lead] == ' ' || text[lead] == '\t' || text[lead] == '\r') {
			lead++
		}
		text = strings.TrimSpace(text)
		if len(text) == 0 {
			continue
		}
		rng := hcl.Range{
			Filename: shown,
			Start:    hcl.Pos{Line: line, Column: lead + 1, Byte: start + lead},
			End:      hcl.Pos{Line: line, Column: lead + len(text) + 1, Byte: start + lead + len(text)},
		}
		n := len(out)
		entry, expires, err := cutExpires(text)
		if err == "" {
			out, err = appendListEntry(out, entry)
		}
		if err == "" {
			for i := n; i < len(out); i++ {
				out[i].Range, out[i].Listed, out[i].Expires = rng, true, expires
			}
			continue
		}
		bad++
		if bad <= maxListErrors {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid list file entry",
				Detail: fmt.Sprintf("%s:%d: %q %s. A list file holds one address (198.51.100.7), CIDR prefix (198.51.100.0/24) or range (198.51.100.10-198.51.100.20) a line, optionally followed by expires=2026-12-01T00:00:00Z; # starts a comment.",
					shown, line, text, err),
				Subject: rng.Ptr()})
		}
	}
	if bad > maxListErrors {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid list file",
			Detail:  fmt.Sprintf("%s has %d invalid lines; only the first %d are shown. Is it a list of addresses, one a line?", shown, bad, maxListErrors),
			Subject: &hcl.Range{Filename: shown, Start: hcl.InitialPos, End: hcl.InitialPos}})
	}
	return slices.Clip(out), diags
}

// cutExpires splits "ADDR expires=RFC3339" into the entry and its
// deadline; a line without expires= has none.
func cutExpires(text string) (string, time.Time, string) {
	i := strings.Index(text, "expires=")
	if i < 0 {
		return text, time.Time{}, ""
	}
	if i == 0 || (text[i-1] != ' ' && text[i-1] != '\t') {
		return text, time.Time{}, "has expires= without an address before it, separated by a space"
	}
	t, err := ParseExpires(text[i+len("expires="):])
	if err != nil {
		return text, time.Time{}, fmt.Sprintf("has an expires= that is not an RFC 3339 time (write expires=2026-12-01T00:00:00Z)")
	}
	return strings.TrimSpace(text[:i]), t, ""
}

// appendListEntry parses one entry of a list file and appends its
// prefixes (a range may need several), or says what is wrong with it.
func appendListEntry(out []Address, s string) ([]Address, string) {
	if first, last, ok := strings.Cut(s, "-"); ok {
		from, err1 := netip.ParseAddr(strings.TrimSpace(first))
		to, err2 := netip.ParseAddr(strings.TrimSpace(last))
		if err1 != nil || err2 != nil || from.Zone() != "" || to.Zone() != "" {
			return out, "is not a range of two IPv4 or IPv6 addresses"
		}
		from, to = from.Unmap(), to.Unmap()
		r := netipx.IPRangeFrom(from, to)
		if !r.IsValid() {
			return out, "is not a range: both ends must be of one family and the first must not come after the last"
		}
		for _, p := range r.Prefixes() {
			out = append(out, Address{Prefix: p})
		}
		return out, ""
	}
	if strings.IndexByte(s, '/') >= 0 {
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil || p.Addr().Zone() != "":
			return out, "is not an IPv4 or IPv6 prefix"
		case p != p.Masked():
			return out, fmt.Sprintf("has host bits set after the first %d (did you mean %s?)", p.Bits(), p.Masked())
		}
		return append(out, Address{Prefix: netip.PrefixFrom(p.Addr().Unmap(), unmapBits(p))}), ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return out, "is not an IPv4 or IPv6 address"
	}
	a = a.Unmap()
	return append(out, Address{Prefix: netip.PrefixFrom(a, a.BitLen())}), ""
}

// readMembersFile loads the members_file attribute of an address group.
func (d *decoder) readMembersFile(a *hcl.Attribute) ([]Address, hcl.Diagnostics) {
	var name string
	if diags := decodeString(a, d.ctx, &name); diags.HasErrors() {
		return nil, diags
	}
	if name == "" {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Empty list file name",
			Detail: "members_file names a file of addresses, relative to this policy file.", Subject: a.Expr.Range().Ptr()}}
	}
	if d.readList == nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "List files not available",
			Detail: "This policy was loaded without a file system, so members_file cannot be read.", Subject: a.Expr.Range().Ptr()}}
	}
	data, shown, trust, err := d.readList(a.Range.Filename, name, d.opts)
	for _, td := range trust {
		td.Subject = a.Expr.Range().Ptr()
	}
	if trust.HasErrors() {
		return nil, trust
	}
	if err != nil {
		return nil, append(trust, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read list file",
			Detail: listReadError(shown, err), Subject: a.Expr.Range().Ptr()})
	}
	d.pol.ListFiles = append(d.pol.ListFiles, shown)
	members, diags := parseList(data, shown)
	diags = append(trust, diags...)
	if diags.HasErrors() && d.pol.Files[shown] == nil {
		// The diagnostic writer then shows the offending line.
		d.pol.Files[shown] = &hcl.File{Body: hcl.EmptyBody(), Bytes: data}
	}
	return members, diags
}
