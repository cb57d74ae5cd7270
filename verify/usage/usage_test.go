package usage

import (
	"net/netip"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/rules"
)

var now = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func a(s string) netip.Addr { return netip.MustParseAddr(s) }

func p(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		if pr, err := netip.ParsePrefix(s); err == nil {
			out = append(out, pr)
		} else {
			out = append(out, netip.PrefixFrom(a(s), a(s).BitLen()))
		}
	}
	return out
}

func allowBlock(line int, comment string, sources ...string) rules.Origin {
	return rules.Origin{Kind: rules.OriginAllow, Comment: comment, Prefixes: p(sources...),
		Range: hcl.Range{Filename: "policy.hcl", Start: hcl.Pos{Line: line, Column: 3}}}
}

// rulesets are the kernel's (have) and the policy's (desired, with the
// blocks) for one exposure.
func rulesets(origins ...rules.Origin) (have, desired *rules.Ruleset) {
	var all []netip.Prefix
	for _, o := range origins {
		all = append(all, o.Prefixes...)
	}
	e := rules.Exposure{Name: "nscp", Protocol: rules.TCP, Allow: rules.NewPrefixes(all...)}
	have = &rules.Ruleset{Exposures: []rules.Exposure{e}}
	e.Origins = append(origins, rules.Origin{Kind: rules.OriginDefault})
	desired = &rules.Ruleset{Exposures: []rules.Exposure{e}}
	return have, desired
}

func el(first, last string, packets uint64) backends.ElementUse {
	return backends.ElementUse{Exposure: "nscp", First: a(first), Last: a(last), Packets: packets, Bytes: packets * 60}
}

func seen(src string, ago time.Duration) backends.SeenSource {
	return backends.SeenSource{Exposure: "nscp", Source: a(src), LastSeen: now.Add(-ago)}
}

func entries(r *Report) map[string]Entry {
	out := map[string]Entry{}
	for _, x := range r.Exposures {
		for _, b := range x.Blocks {
			for _, e := range b.Entries {
				out[b.Where()+" "+e.Source] = e
			}
		}
	}
	return out
}

// TestTwoOfThree is the case: two of three allowed sources
// connected; with --unused-since 0s exactly the third is unused.
func TestTwoOfThree(t *testing.T) {
	have, desired := rulesets(allowBlock(4, "ops", "198.18.0.2", "198.18.0.4", "198.18.0.6"))
	u := &backends.Usage{LastSeenKnown: true,
		Elements: []backends.ElementUse{el("198.18.0.2", "198.18.0.2", 7), el("198.18.0.4", "198.18.0.4", 3), el("198.18.0.6", "198.18.0.6", 0)},
		Seen:     []backends.SeenSource{seen("198.18.0.2", time.Minute), seen("198.18.0.4", 40*24*time.Hour)}}
	r := Build(have, desired, u, Options{Now: now})
	got := entries(r)
	if r.Unused != 1 || !got["policy.hcl:4 198.18.0.6"].Unused || got["policy.hcl:4 198.18.0.2"].Unused || got["policy.hcl:4 198.18.0.4"].Unused {
		t.Fatalf("unused since 0s: want only 198.18.0.6, got %+v", got)
	}
	if e := got["policy.hcl:4 198.18.0.2"]; e.Packets != 7 || e.PacketsShared || e.LastSeen == nil || !e.LastSeen.Equal(now.Add(-time.Minute)) {
		t.Errorf("198.18.0.2: %+v", e)
	}
	if b := r.Exposures[0].Blocks[0]; b.Packets != 10 || b.PacketsShared || b.Where() != "policy.hcl:4" || b.Comment != "ops" {
		t.Errorf("block: %+v", b)
	}
	// With 30 days, the source last seen 40 days ago is unused too.
	r = Build(have, desired, u, Options{Now: now, UnusedSince: 30 * 24 * time.Hour})
	if got := entries(r); r.Unused != 2 || !got["policy.hcl:4 198.18.0.4"].Unused {
		t.Errorf("unused since 30d: %+v", got)
	}
}

// TestMergedElement: touching entries merge into one kernel element; its
// packets go to the one entry seen, and are shared when that is unclear.
func TestMergedElement(t *testing.T) {
	have, desired := rulesets(allowBlock(4, "", "198.18.0.2"), allowBlock(8, "", "198.18.0.3", "198.18.0.4"))
	elems := []backends.ElementUse{el("198.18.0.2", "198.18.0.4", 10)}
	for _, c := range []struct {
		name           string
		seen           []backends.SeenSource
		known          bool
		two, three     uint64
		shared, blocks bool
	}{
		{"only .3 seen", []backends.SeenSource{seen("198.18.0.3", time.Hour)}, true, 0, 10, false, false},
		{"both seen", []backends.SeenSource{seen("198.18.0.2", time.Hour), seen("198.18.0.3", time.Hour)}, true, 10, 10, true, true},
		{"none seen", nil, true, 10, 10, true, true},
		{"last-seen unknown", nil, false, 10, 10, true, true},
	} {
		r := Build(have, desired, &backends.Usage{LastSeenKnown: c.known, Elements: elems, Seen: c.seen}, Options{Now: now})
		got := entries(r)
		two, three := got["policy.hcl:4 198.18.0.2"], got["policy.hcl:8 198.18.0.3"]
		four := got["policy.hcl:8 198.18.0.4"]
		if two.Packets != c.two || three.Packets != c.three || three.PacketsShared != c.shared || r.Exposures[0].Blocks[1].PacketsShared != c.blocks {
			t.Errorf("%s: .2 %+v, .3 %+v, blocks %+v", c.name, two, three, r.Exposures[0].Blocks)
		}
		// .4 was never seen: when another was, the packets are not its.
		if c.known && len(c.seen) > 0 && (four.Packets != 0 || !four.Unused) {
			t.Errorf("%s: the unseen .4 %+v", c.name, four)
		}
	}
}

// TestLastSeenUnknown: without last-seen, unused means no packets, and no
// entry claims a last-seen time.
func TestLastSeenUnknown(t *testing.T) {
	have, desired := rulesets(allowBlock(4, "", "198.18.0.0/30", "2001:2::2", "198.18.0.9"))
	u := &backends.Usage{LastSeenWhy: "iptables keeps no per-source record",
		Elements: []backends.ElementUse{el("198.18.0.0", "198.18.0.3", 5), el("2001:2::2", "2001:2::2", 0)}}
	r := Build(have, desired, u, Options{Now: now})
	got := entries(r)
	if r.LastSeenKnown || r.LastSeenWhy == "" || r.Unused != 1 || !got["policy.hcl:4 2001:2::2"].Unused || got["policy.hcl:4 198.18.0.0/30"].Unused {
		t.Fatalf("%+v", got)
	}
	// No element covers .9 (a grant iptables admits by a rule): no record,
	// and not called unused.
	if e := got["policy.hcl:4 198.18.0.9"]; !e.NoRecord || e.Unused {
		t.Errorf("uncovered entry: %+v", e)
	}
	for k, e := range got {
		if e.LastSeen != nil {
			t.Errorf("%s claims a last-seen time without a record", k)
		}
	}
}

// TestListFileLines: an entry read from a members_file names its line;
// an entry split by a deny hole sums the elements it covers.
func TestListFileLines(t *testing.T) {
	o := allowBlock(4, "", "198.18.0.1", "198.18.1.0/24")
	o.ListFiles = []string{"lists/ops.txt"}
	o.Lines = []rules.ListLine{{}, {File: 0, Line: 7}}
	have, desired := rulesets(o)
	u := &backends.Usage{LastSeenKnown: true, Elements: []backends.ElementUse{
		el("198.18.0.1", "198.18.0.1", 1), el("198.18.1.0", "198.18.1.9", 2), el("198.18.1.11", "198.18.1.255", 3)},
		Seen: []backends.SeenSource{seen("198.18.1.5", time.Hour), seen("198.18.1.200", time.Minute)}}
	got := entries(Build(have, desired, u, Options{Now: now}))
	e := got["policy.hcl:4 198.18.1.0/24"]
	if e.ListFile != "lists/ops.txt" || e.ListLine != 7 || e.Packets != 5 || e.PacketsShared || e.LastSeen == nil || !e.LastSeen.Equal(now.Add(-time.Minute)) {
		t.Errorf("list entry: %+v", e)
	}
	if e := got["policy.hcl:4 198.18.0.1"]; e.ListFile != "" || e.Packets != 1 || !e.Unused {
		t.Errorf("policy entry: %+v", e)
	}
}

// TestWithoutPolicy: with no policy matching the kernel, the kernel's
// sources (permanent and expiring) are the entries, in one block without
// a place.
func TestWithoutPolicy(t *testing.T) {
	have, _ := rulesets(allowBlock(4, "", "198.18.0.2", "198.18.0.4"))
	have.Exposures[0].Expiring = []rules.Grant{{Source: netip.MustParsePrefix("198.18.0.9/32"), Until: now.Add(time.Hour)}}
	u := &backends.Usage{LastSeenKnown: true, Elements: []backends.ElementUse{el("198.18.0.2", "198.18.0.2", 1), el("198.18.0.4", "198.18.0.4", 0), el("198.18.0.9", "198.18.0.9", 4)},
		Seen: []backends.SeenSource{seen("198.18.0.2", time.Second), seen("198.18.0.9", time.Second)}}
	r := Build(have, nil, u, Options{Now: now})
	got := entries(r)
	if r.PolicyKnown || len(got) != 3 || got[" 198.18.0.2"].Packets != 1 || !got[" 198.18.0.4"].Unused || got[" 198.18.0.9"].Packets != 4 || got[" 198.18.0.9"].Unused {
		t.Errorf("%+v", got)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "0s": 0, "36h": 36 * time.Hour, "0d": 0,
		"3d": 72 * time.Hour, "1d12h": 36 * time.Hour, "2d0s": 48 * time.Hour, "1d30m": 24*time.Hour + 30*time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%s: %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "-1h", "1.5d", "d", "30 days", "3days", "1d-2h", "1d+2h", "1d2", "1dd"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
	if FormatDuration(30*24*time.Hour) != "30d" || FormatDuration(0) != "0s" {
		t.Error("FormatDuration")
	}
}
