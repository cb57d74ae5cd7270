package iptables

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go4.org/netipx"

	"github.com/portwarden/portwarden/internal/nfgen"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/rules"
)

// Option adjusts the backend.
type Option func(*options)

type options struct {
	variant  Variant
	wrap     func(runner) runner
	wrapSets func(setRunner) setRunner
}

// WithVariant chooses the binaries instead of detecting them.
func WithVariant(v Variant) Option { return func(o *options) { o.variant = v } }

// withRunner lets tests observe or fake the binaries.
func withRunner(wrap func(runner) runner) Option { return func(o *options) { o.wrap = wrap } }

// withSetRunner lets tests observe the ipset writes.
func withSetRunner(wrap func(setRunner) setRunner) Option {
	return func(o *options) { o.wrapSets = wrap }
}

// Backend is the iptables backend. Use New.
type Backend struct {
	variant Variant
	reason  string
	run     runner
	sets    setRunner
	nsPath  string

	// last is the most recent read of iptables-nft rules together with the
	// nf_tables generation it was read at; Apply reuses it instead of
	// reading again when the generation has not moved.
	mu   sync.Mutex
	last *snapshot
	// first is what choosing the variant read (iptables-save -c of both
	// families): with iptables-nft the first read takes it instead of
	// running the binaries again while the nf_tables generation has not
	// moved since, so a command starts two processes fewer.
	first *variantContents
}

type snapshot struct {
	gen   uint32
	owned [2]ownedFamily
}

// New returns the iptables backend working in cfg.NetNS, with the variant
// (nft or legacy) chosen as doc.go describes.
func New(cfg backends.Config, opts ...Option) (backends.Backend, error) {
	return newBackend(context.Background(), cfg, opts...)
}

func newBackend(ctx context.Context, cfg backends.Config, opts ...Option) (*Backend, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.variant != "" && o.variant != NFT && o.variant != Legacy {
		return nil, fmt.Errorf("iptables variant %q: use nft or legacy", o.variant)
	}
	if cfg.NetNS != "" {
		if _, err := os.Stat(cfg.NetNS); err != nil {
			return nil, fmt.Errorf("network namespace %s: %w", cfg.NetNS, err)
		}
	}
	v, reason, seen, err := chooseVariantContents(ctx, o.variant, cfg.NetNS)
	if err != nil {
		return nil, fmt.Errorf("iptables backend: %w", err)
	}
	var r runner = execRunner{variant: v, nsPath: cfg.NetNS}
	if o.wrap != nil {
		r = o.wrap(r)
	}
	var sr setRunner = netlinkSets{nsPath: cfg.NetNS}
	if o.wrapSets != nil {
		sr = o.wrapSets(sr)
	}
	return &Backend{variant: v, reason: reason, run: r, sets: sr, nsPath: cfg.NetNS, first: seen}, nil
}

// Name is "iptables".
func (b *Backend) Name() string { return "iptables" }

// Variant is the binaries in use.
func (b *Backend) Variant() Variant { return b.variant }

// Reason says why this variant was chosen, for plan output.
func (b *Backend) Reason() string { return b.reason }

// read takes both families' owned objects from the kernel: the chains
// (iptables-save) and the sets (netlink), at the same time.
func (b *Backend) read(ctx context.Context) ([2]ownedFamily, error) {
	var sets [2]map[string]*ownedSet
	var setErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sets, setErr = b.sets.sets()
	}()
	owned, err := b.readRules(ctx)
	<-done
	if err != nil {
		return owned, err
	}
	if setErr != nil {
		return owned, setErr
	}
	for _, fam := range families {
		owned[fam].sets = sets[fam]
	}
	return owned, nil
}

// readRules reads the chains, remembering them with the nf_tables
// generation (iptables-nft) so a reread can skip iptables-save.
func (b *Backend) readRules(ctx context.Context) ([2]ownedFamily, error) {
	b.mu.Lock()
	first := b.first
	b.first = nil
	b.mu.Unlock()
	if b.variant != NFT {
		return b.readTables(ctx)
	}
	if first != nil && first.genOK {
		// Still true only while nothing was written to nf_tables since.
		owned, err := parseFamilies(first.saved)
		if gen, gerr := nfgen.Generation(b.nsPath); err == nil && gerr == nil && gen == first.gen {
			b.mu.Lock()
			b.last = &snapshot{gen: gen, owned: owned}
			b.mu.Unlock()
			return owned, nil
		}
	}
	before, err := nfgen.Generation(b.nsPath)
	if err != nil {
		return b.readTables(ctx)
	}
	owned, err := b.readTables(ctx)
	if err != nil {
		return owned, err
	}
	after, err := nfgen.Generation(b.nsPath)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last = nil
	if err == nil && after == before {
		b.last = &snapshot{gen: after, owned: owned}
	}
	return owned, nil
}

// reread is read, but takes the chains from the last read when nothing
// in nf_tables changed since and the result has fingerprint fp. Sets are
// always read: ipset writes do not move the nf_tables generation.
func (b *Backend) reread(ctx context.Context, fp string) ([2]ownedFamily, error) {
	b.mu.Lock()
	last := b.last
	b.mu.Unlock()
	if last != nil {
		if gen, err := nfgen.Generation(b.nsPath); err == nil && gen == last.gen {
			sets, err := b.sets.sets()
			if err != nil {
				return [2]ownedFamily{}, err
			}
			owned := last.owned
			for _, fam := range families {
				owned[fam].sets = sets[fam]
			}
			if fingerprint(owned) == fp {
				return owned, nil
			}
		}
	}
	return b.read(ctx)
}

// readTables reads both families at once: they are separate tables and
// separate binaries, and with large rule sets the reads dominate a plan.
func (b *Backend) readTables(ctx context.Context) ([2]ownedFamily, error) {
	var owned [2]ownedFamily
	var errs [2]error
	var wg sync.WaitGroup
	for _, fam := range families {
		wg.Add(1)
		go func() {
			defer wg.Done()
			text, err := b.run.save(ctx, fam)
			if err != nil {
				errs[fam] = err
				return
			}
			t, err := parseSave(text)
			if err != nil {
				errs[fam] = fmt.Errorf("read the %s filter table: %w", fam, err)
				return
			}
			owned[fam] = ownedOf(fam, t)
		}()
	}
	wg.Wait()
	return owned, errors.Join(errs[:]...)
}

// parseFamilies takes both families' owned objects from iptables-save
// output.
func parseFamilies(saved [2]string) ([2]ownedFamily, error) {
	var owned [2]ownedFamily
	for _, fam := range families {
		t, err := parseSave(saved[fam])
		if err != nil {
			return owned, fmt.Errorf("read the %s filter table: %w", fam, err)
		}
		owned[fam] = ownedOf(fam, t)
	}
	return owned, nil
}

// Current decodes the owned chains back into the model.
func (b *Backend) Current(ctx context.Context) (*backends.State, error) {
	owned, err := b.read(ctx)
	if err != nil {
		return nil, err
	}
	return decode(owned), nil
}

// Plan diffs desired against the kernel, in the model.
func (b *Backend) Plan(ctx context.Context, desired *rules.Ruleset) (*backends.Plan, error) {
	if desired == nil {
		desired = &rules.Ruleset{}
	}
	// A hand-built Ruleset may not be canonical; the kernel's is read back
	// canonical, so compare like with like.
	desired = desired.Clone()
	desired.Normalize()
	if err := validate(desired); err != nil {
		return nil, fmt.Errorf("iptables backend cannot express the policy: %w", err)
	}
	cur, err := b.Current(ctx)
	if err != nil {
		return nil, err
	}
	return &backends.Plan{
		Backend: b.Name(),
		Current: cur,
		Desired: desired,
		Diff:    rules.Compare(cur.Ruleset, desired),
		Created: time.Now().UTC(),
	}, nil
}

// Apply loads the transition with iptables-restore --noflush, one commit
// per family and phase (see applyPhased).
func (b *Backend) Apply(ctx context.Context, plan *backends.Plan) error {
	if plan == nil || plan.Current == nil || plan.Desired == nil {
		return errors.New("apply: the plan is incomplete; make it with Plan")
	}
	owned, err := b.reread(ctx, plan.Current.Fingerprint)
	if err != nil {
		return err
	}
	if now := fingerprint(owned); now != plan.Current.Fingerprint {
		return fmt.Errorf("iptables: %w", backends.ErrStalePlan)
	}
	if plan.Empty() {
		return nil
	}
	return b.applyPhased(ctx, owned, plan)
}

// transition is the iptables-restore --noflush text that turns what a
// family holds into want, touching only chains whose rules differ; "" when
// nothing differs. Declaring an existing chain flushes it, and the whole
// file is one commit, so packets see the old chains or the new ones.
func transition(have ownedFamily, want familyRules, maxEdited int) string {
	var decl, del, add, tail []string
	wanted := map[string]bool{}
	for _, c := range want.chains {
		wanted[c.name] = true
		cur, exists := have.chains[c.name]
		if exists && slices.Equal(lines(cur), c.rules) {
			continue
		}
		if exists && len(cur) <= maxEdited {
			if edits, ok := editChain(c.name, lines(cur), c.rules); ok {
				add = append(add, edits...)
				continue
			}
		}
		decl = append(decl, ":"+c.name+" - [0:0]")
		add = append(add, c.rules...)
	}
	if !(len(have.jumps) == 1 && have.jumpAtTop && have.jumps[0].line == jumpRule) {
		for _, j := range have.jumps {
			del = append(del, "-D"+strings.TrimPrefix(j.line, "-A"))
		}
		add = append(add, insertJump())
	}
	for _, c := range have.chainOrder {
		if !wanted[c] {
			decl = append(decl, ":"+c+" - [0:0]")
			tail = append(tail, "-X "+c)
		}
	}
	if len(decl)+len(del)+len(add)+len(tail) == 0 {
		return ""
	}
	return commitText(decl, del, add, tail)
}

// maxEditedChain is the longest chain edited in place rather than
// rewritten. iptables-legacy rewrites the table either way, so editing
// only saves work. iptables-nft-restore must first read and translate the
// chain to find a rule position: faster than reloading the chain up to
// tens of thousands of rules (20,000: 0.06 s against 0.2 s), much slower
// beyond (50,000: 2.7 s against 1 s), so long chains are rewritten.
func (b *Backend) maxEditedChain() int {
	if b.variant == NFT {
		return 25000
	}
	return math.MaxInt
}

// editChain turns have into want by deleting and inserting rules at one
// place, when the two differ in one contiguous run (a source added or
// removed): the kernel then changes those rules only and every other
// rule keeps its counters. It declines when the run is long, and the
// chain is rewritten instead.
func editChain(chain string, have, want []string) ([]string, bool) {
	p := 0
	for p < len(have) && p < len(want) && have[p] == want[p] {
		p++
	}
	s := 0
	for s < len(have)-p && s < len(want)-p && have[len(have)-1-s] == want[len(want)-1-s] {
		s++
	}
	del, ins := len(have)-p-s, len(want)-p-s
	if del+ins > max(8, len(want)/4) {
		return nil, false
	}
	var out []string
	for range del {
		out = append(out, fmt.Sprintf("-D %s %d", chain, p+1))
	}
	for i, r := range want[p : p+ins] {
		out = append(out, fmt.Sprintf("-I %s %d %s", chain, p+1+i, strings.TrimPrefix(r, "-A "+chain+" ")))
	}
	return out, true
}

func commitText(parts ...[]string) string {
	var b strings.Builder
	b.WriteString("*filter\n")
	for _, p := range parts {
		for _, l := range p {
			b.WriteString(l + "\n")
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// Destroy removes the jumps and the owned chains, one commit per family,
// then the owned sets, which can only go once no rule uses them.
func (b *Backend) Destroy(ctx context.Context) error {
	owned, err := b.read(ctx)
	if err != nil {
		return err
	}
	for _, fam := range families {
		o := owned[fam]
		if len(o.jumps)+len(o.chainOrder) > 0 {
			var decl, del, tail []string
			for _, j := range o.jumps {
				del = append(del, "-D"+strings.TrimPrefix(j.line, "-A"))
			}
			for _, c := range o.chainOrder {
				decl = append(decl, ":"+c+" - [0:0]")
				tail = append(tail, "-X "+c)
			}
			if err := b.run.restore(ctx, fam, commitText(decl, del, tail)); err != nil {
				return fmt.Errorf("destroy: %w", err)
			}
		}
	}
	// The sets go after both families' chains: a set another program's
	// rule still uses cannot be destroyed, and stopping there must not
	// leave one family's chains in place and the other's gone.
	for _, fam := range families {
		var ops []setOp
		for _, name := range slices.Sorted(maps.Keys(owned[fam].sets)) {
			ops = append(ops, setOp{kind: "destroy", name: name})
		}
		if err := b.sets.write(ops); err != nil {
			return fmt.Errorf("destroy: %w (portwarden's chains are removed in both families; only sets are left, which destroy removes once nothing else uses them)", err)
		}
	}
	return nil
}

// Render is the desired Ruleset as `ipset restore` input for the sets
// and iptables-restore input for both families' chains.
func (b *Backend) Render(desired *rules.Ruleset) (string, error) {
	return Render(desired)
}

// Render is Backend.Render without a kernel (for compile): the sets, then
// both families' chains, each section headed by the command that loads
// it.
func Render(desired *rules.Ruleset) (string, error) {
	sets, err := RenderSets(desired)
	if err != nil {
		return "", err
	}
	v4, v6, err := RenderFamilies(desired)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	sb.WriteString("# portwarden ipset sets: load first, with `ipset restore`\n")
	sb.WriteString(sets)
	sb.WriteString("# portwarden IPv4: load with `iptables-restore --noflush`\n")
	sb.WriteString(v4)
	sb.WriteString("# portwarden IPv6: load with `ip6tables-restore --noflush`\n")
	sb.WriteString(v6)
	return sb.String(), nil
}

// RenderSets is the `ipset restore` input that creates the sets the
// rules of RenderFamilies use; load it first.
func RenderSets(desired *rules.Ruleset) (string, error) {
	if desired == nil {
		desired = &rules.Ruleset{}
	}
	if err := validate(desired); err != nil {
		return "", fmt.Errorf("iptables backend cannot express the policy: %w", err)
	}
	var sb strings.Builder
	for _, fam := range families {
		fr, err := renderFamily(desired, fam, false)
		if err != nil {
			return "", err
		}
		sb.WriteString(ipsetText(fr))
	}
	return sb.String(), nil
}

// RenderFamilies is the iptables-restore input for each family on its
// own, for writing /etc/iptables/rules.v4 and rules.v6-style files: one
// restore file cannot carry both families. The rules use the sets of
// RenderSets, which must be loaded first. The files are for loading at
// boot into a table without portwarden's chains: loading one again
// rebuilds the chains but inserts a second jump, which plan reports as
// drift and apply removes.
func RenderFamilies(desired *rules.Ruleset) (v4, v6 string, err error) {
	if desired == nil {
		desired = &rules.Ruleset{}
	}
	if err := validate(desired); err != nil {
		return "", "", fmt.Errorf("iptables backend cannot express the policy: %w", err)
	}
	var out [2]string
	for _, fam := range families {
		fr, err := renderFamily(desired, fam, false)
		if err != nil {
			return "", "", err
		}
		out[fam] = restoreText(fr)
	}
	return out[ipv4], out[ipv6], nil
}

// Counters reads the counters of every owned rule.
func (b *Backend) Counters(ctx context.Context) ([]backends.Counter, error) {
	owned, err := b.readRules(ctx)
	if err != nil {
		return nil, err
	}
	var out []backends.Counter
	for _, o := range owned {
		for _, j := range o.jumps {
			out = append(out, backends.Counter{Rule: "jump " + o.fam.short(), Packets: j.packets, Bytes: j.bytes})
		}
		for _, c := range o.chainOrder {
			for _, r := range o.chains[c] {
				spec, _ := parseRule(r.args)
				name, kind, ok := splitComment(spec.comment)
				if !ok {
					kind = "foreign"
				}
				label := kind + " " + o.fam.short()
				if spec.src.IsValid() {
					label += " " + spec.src.String()
				}
				out = append(out, backends.Counter{Exposure: name, Rule: label, Packets: r.packets, Bytes: r.bytes})
			}
		}
	}
	return out, nil
}

var _ backends.UsageReader = (*Backend)(nil)

// usageWhy is why the iptables backend has no last-seen times.
const usageWhy = "ipset keeps packet and byte counters per element but no time of the last match, so the iptables backend cannot tell when a source was last seen (the nftables backend can)"

// Usage reads the per-element counters of every exposure's allow sets
// (allow minus deny, as the kernel matches them).
func (b *Backend) Usage(ctx context.Context) (*backends.Usage, error) {
	owned, err := b.read(ctx)
	if err != nil {
		return nil, err
	}
	st := decode(owned)
	u := &backends.Usage{Elements: []backends.ElementUse{}, Seen: []backends.SeenSource{}, LastSeenWhy: usageWhy}
	for _, e := range st.Ruleset.Exposures {
		for _, o := range owned {
			set := o.sets[setName(e.Name, o.fam, roleAllow)]
			if set == nil {
				continue
			}
			for _, el := range set.elems {
				if el.nomatch {
					continue // it admits nobody
				}
				last := netipx.PrefixLastIP(el.prefix)
				u.Elements = append(u.Elements, backends.ElementUse{Exposure: e.Name, First: el.prefix.Masked().Addr(), Last: last,
					Packets: el.packets, Bytes: el.nbytes})
			}
		}
	}
	// A grant is a rule of its own (the time match), so its rule counter
	// is its element's.
	for _, o := range owned {
		for _, c := range o.chainOrder {
			for _, r := range o.chains[c] {
				spec, err := parseRule(r.args)
				name, kind, ok := splitComment(spec.comment)
				if err != nil || !ok || kind != kindGrant || !spec.src.IsValid() {
					continue
				}
				u.Elements = append(u.Elements, backends.ElementUse{Exposure: name, First: spec.src.Masked().Addr(),
					Last: netipx.PrefixLastIP(spec.src), Packets: r.packets, Bytes: r.bytes})
			}
		}
	}
	return u, nil
}
