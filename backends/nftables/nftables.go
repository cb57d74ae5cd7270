package nftables

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/rules"
	"golang.org/x/sys/unix"
)

// Backend keeps portwarden's rules in one nftables table over netlink.
type Backend struct {
	netns    string
	stateDir string // Config.StateDir: where the cache file lives (cache.go)
	later    func(func())
	// last is the owned state this backend last read or wrote, valid while
	// the namespace (cookie) and its nf_tables generation are unchanged:
	// the kernel dumps large interval sets slowly (about 1.7s for 100,000
	// elements), and an unchanged generation proves nobody wrote anything.
	mu   sync.Mutex
	last *snapshot
	// saveMu orders cache saves; saved is the generation last saved.
	saveMu sync.Mutex
	saved  struct {
		cookie uint64
		gen    uint32
	}
}

// New returns the nftables backend working in cfg.NetNS.
func New(cfg backends.Config) (backends.Backend, error) {
	// The cache says what the kernel holds, and a command that trusts it
	// reads no set: one in a state root someone else could write would let
	// them make plan see what is not there. The root is not checked here
	// but each time the cache is read or written (safeapply.OpenCache,
	// ReplaceCache): a check now would say nothing about a root made,
	// removed or replaced by the time the save, in the background, runs.
	return &Backend{netns: cfg.NetNS, stateDir: cfg.StateDir, later: cfg.Later}, nil
}

// Name is "nftables".
func (b *Backend) Name() string { return "nftables" }

// link is the backend's netlink connection for one operation: dialled on
// first use (a read the memo or the cache answers needs none) and kept for
// the rest of it, since every request through google/nftables otherwise
// dials a socket of its own.
type link struct {
	b  *Backend
	c  *nftables.Conn
	ns *os.File
}

func (b *Backend) link() *link { return &link{b: b} }

// conn dials the connection in the backend's namespace, once.
func (l *link) conn() (*nftables.Conn, error) {
	if l.c != nil {
		return l.c, nil
	}
	opts := []nftables.ConnOption{nftables.AsLasting()}
	what := "open netlink"
	if l.b.netns != "" {
		f, err := os.Open(l.b.netns)
		if err != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", l.b.netns, err)
		}
		l.ns = f
		opts = append(opts, nftables.WithNetNSFd(int(f.Fd())))
		what = "open netlink in " + l.b.netns
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, kernelErr(what, err)
	}
	l.c = c
	return c, nil
}

// close closes what conn opened.
func (l *link) close() {
	if l.c != nil {
		l.c.CloseLasting()
	}
	if l.ns != nil {
		l.ns.Close()
	}
}

// kernelErr says what failed, and turns the kernel's permission refusal
// into backends.ErrPermission.
func kernelErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || strings.Contains(err.Error(), "operation not permitted") {
		return fmt.Errorf("%s: %w", what, backends.ErrPermission)
	}
	if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.ENOENT) && what == "open netlink" {
		return fmt.Errorf("%s: nf_tables is not available in this kernel (%v): %w", what, err, backends.ErrUnsupported)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Current reads the owned table.
func (b *Backend) Current(ctx context.Context) (*backends.State, error) {
	s, err := b.snapshot()
	if err != nil {
		return nil, err
	}
	return s.state(), nil
}

func (b *Backend) snapshot() (*snapshot, error) {
	l := b.link()
	defer l.close()
	return b.read(l)
}

func (s *snapshot) state() *backends.State {
	s.once.Do(func() {
		h := sha256.New()
		s.rulesetFP = s.ruleset.Fingerprint()
		h.Write([]byte(s.rulesetFP))
		for _, d := range s.drift {
			h.Write([]byte("\n" + d))
		}
		s.fingerprint = hex.EncodeToString(h.Sum(nil))
	})
	return &backends.State{Installed: s.table != nil, Ruleset: s.ruleset, Drift: s.drift, Fingerprint: s.fingerprint}
}

// Plan diffs the desired Ruleset against the kernel.
func (b *Backend) Plan(ctx context.Context, desired *rules.Ruleset) (*backends.Plan, error) {
	want := desired.Canonical()
	for i := range want.Exposures {
		if err := checkName(&want.Exposures[i]); err != nil {
			return nil, err
		}
	}
	st, err := b.Current(ctx)
	if err != nil {
		return nil, err
	}
	return &backends.Plan{
		Backend: b.Name(), Current: st, Desired: want,
		Diff: rules.Compare(st.Ruleset, want), Created: time.Now().UTC(),
	}, nil
}

// Apply makes the kernel match plan.Desired in one netlink batch.
func (b *Backend) Apply(ctx context.Context, plan *backends.Plan) error {
	if plan == nil || plan.Desired == nil || plan.Current == nil {
		return errors.New("apply: the plan is incomplete; make a new one with portwarden plan")
	}
	l := b.link()
	defer l.close()
	now, err := b.read(l)
	if err != nil {
		return err
	}
	if now.state().Fingerprint != plan.Current.Fingerprint {
		return fmt.Errorf("apply: %w", backends.ErrStalePlan)
	}
	if plan.Empty() {
		return nil
	}
	want := plan.Desired.Canonical()
	bt := newBatch(batchSize(now, want))
	// Diffed again rather than trusting plan.Diff, which may come from a file.
	content, err := writeTransition(bt, now, want, rules.Compare(now.ruleset, want))
	if err != nil {
		return err
	}
	sent, gen, err := bt.send(b.netns)
	if err != nil {
		b.forget()
		return kernelErr("apply the nftables transaction", err)
	}
	// One batch moves the generation by one: if it moved by exactly that,
	// the kernel now holds what was written, and the next read need not
	// dump the sets again. If it did not move, the kernel took nothing,
	// though it refused nothing either (it drops a malformed batch
	// without a word): the change is not in. gen is 0 (unknown) when the
	// batch was not sent or the generation could not be read.
	if sent && gen != 0 && now.gen != 0 && gen == now.gen {
		b.forget()
		return errors.New("apply the nftables transaction: the kernel took none of it (its ruleset generation did not move), so nothing was applied; " +
			"run portwarden plan to see the change, and report it with the output of nft --version and uname -r")
	}
	if sent && gen != 0 && now.cookie != 0 && gen == now.gen+1 {
		s := written(now, want, content, gen)
		// Sets left alone keep what they held: canonical only if they were.
		s.canonical = now.canonical || now.table == nil
		b.remember(s)
		b.saveCacheLater(s)
	} else {
		b.forget()
	}
	return nil
}

// batchSize is the buffer a batch starts with: where the owned table is
// made anew every prefix becomes elements (a start and an end: 40 bytes
// for IPv4, 64 for IPv6); otherwise the change is whatever the diff is,
// and the buffer grows.
func batchSize(now *snapshot, want *rules.Ruleset) int {
	if now.table != nil {
		return 0
	}
	n := 0
	for i := range want.Exposures {
		for _, list := range prefixLists(&want.Exposures[i]) {
			n += len(*list)
		}
	}
	return 64<<10 + 64*n
}

// written is the snapshot a read would give right after want was applied:
// exactly what the batch wrote, with no drift. Sets missing from content
// hold what want gives (lazy).
func written(before *snapshot, want *rules.Ruleset, content map[string][]interval, gen uint32) *snapshot {
	// Only the exposures are copied, for writtenOwned to drop their
	// Origins: the prefix sets are never changed in place, so they are
	// shared (see rules.Ruleset.Canonical).
	return writtenOwned(before, &rules.Ruleset{Exposures: slices.Clone(want.Exposures)}, content, gen)
}

// writtenOwned is written for a want nobody else holds: it becomes the
// snapshot's ruleset without a copy.
func writtenOwned(before *snapshot, want *rules.Ruleset, content map[string][]interval, gen uint32) *snapshot {
	if content == nil {
		content = map[string][]interval{}
	}
	s := &snapshot{
		table:   &nftables.Table{Name: tableName, Family: nftables.TableFamilyINet},
		sets:    map[string]*nftables.Set{},
		content: content,
		chains:  map[string]*nftables.Chain{baseChainName: {Name: baseChainName}},
		rules:   map[string][]*nftables.Rule{},
		ruleset: want, rebuild: map[string]bool{}, damagedSets: map[string]bool{},
		cookie: before.cookie, gen: gen, lazy: true,
	}
	if before.table != nil {
		s.table = before.table
	}
	s.sets[markerSetName] = &nftables.Set{Table: s.table, Name: markerSetName}
	for i := range s.ruleset.Exposures {
		e := &s.ruleset.Exposures[i]
		e.Origins = nil
		s.chains[chainName(e.Name)] = &nftables.Chain{Name: chainName(e.Name), Table: s.table}
		for _, set := range newExposureSets(s.table, e.Name) {
			s.sets[set.Name] = set
		}
	}
	return s
}

// Destroy deletes the owned table, and nothing else.
func (b *Backend) Destroy(ctx context.Context) error {
	l := b.link()
	defer l.close()
	s, err := b.read(l)
	if err != nil || s.table == nil {
		return err
	}
	c, err := l.conn()
	if err != nil {
		return err
	}
	c.DelTable(s.table)
	b.forget()
	return kernelErr("delete table inet "+tableName, c.Flush())
}

// Counters reads the counter of every owned rule. Counters move without
// moving the generation, so this always asks the kernel.
func (b *Backend) Counters(ctx context.Context) ([]backends.Counter, error) {
	l := b.link()
	defer l.close()
	c, err := l.conn()
	if err != nil {
		return nil, err
	}
	table, err := c.ListTableOfFamily(tableName, nftables.TableFamilyINet)
	if err != nil || table == nil {
		return nil, nil // nothing installed, nothing counted
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, kernelErr("list chains", err)
	}
	slices.SortFunc(chains, func(a, b *nftables.Chain) int {
		// The base chain first, then exposures by name.
		if (a.Name == baseChainName) != (b.Name == baseChainName) {
			if a.Name == baseChainName {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	var out []backends.Counter
	for _, ch := range chains {
		if ch.Table.Name != tableName {
			continue
		}
		rs, err := c.GetRules(table, ch)
		if err != nil {
			return nil, kernelErr("list rules of chain "+ch.Name, err)
		}
		for _, r := range rs {
			exposure, kind, _, ok := parseComment(commentOf(r.UserData))
			if !ok {
				continue
			}
			cnt := backends.Counter{Exposure: exposure, Rule: kind}
			for _, e := range r.Exprs {
				if ce := asCounter(e); ce != nil {
					cnt.Packets, cnt.Bytes = ce.Packets, ce.Bytes
				}
			}
			out = append(out, cnt)
		}
	}
	return out, nil
}
