package nftables

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/rules"
	"golang.org/x/sys/unix"
)

// Backend keeps portwarden's rules in one nftables table over netlink.
type Backend struct {
	netns string
}

// New returns the nftables backend working in cfg.NetNS.
func New(cfg backends.Config) (backends.Backend, error) {
	return &Backend{netns: cfg.NetNS}, nil
}

// Name is "nftables".
func (b *Backend) Name() string { return "nftables" }

// conn opens a netlink connection in the backend's namespace; close runs
// when the caller is done with it.
func (b *Backend) conn() (c *nftables.Conn, closeFn func(), err error) {
	if b.netns == "" {
		c, err = nftables.New()
		return c, func() {}, kernelErr("open netlink", err)
	}
	f, err := os.Open(b.netns)
	if err != nil {
		return nil, nil, fmt.Errorf("open network namespace %s: %w", b.netns, err)
	}
	c, err = nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		f.Close()
		return nil, nil, kernelErr("open netlink in "+b.netns, err)
	}
	return c, func() { f.Close() }, nil
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
	c, done, err := b.conn()
	if err != nil {
		return nil, err
	}
	defer done()
	return b.read(c)
}

func (s *snapshot) state() *backends.State {
	st := &backends.State{Installed: s.table != nil, Ruleset: s.ruleset, Drift: s.drift}
	h := sha256.New()
	h.Write([]byte(s.ruleset.Fingerprint()))
	for _, d := range s.drift {
		h.Write([]byte("\n" + d))
	}
	st.Fingerprint = hex.EncodeToString(h.Sum(nil))
	return st
}

// Plan diffs the desired Ruleset against the kernel.
func (b *Backend) Plan(ctx context.Context, desired *rules.Ruleset) (*backends.Plan, error) {
	want := desired.Clone()
	want.Normalize()
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
	c, done, err := b.conn()
	if err != nil {
		return err
	}
	defer done()
	now, err := b.read(c)
	if err != nil {
		return err
	}
	if now.state().Fingerprint != plan.Current.Fingerprint {
		return fmt.Errorf("apply: %w", backends.ErrStalePlan)
	}
	if plan.Empty() {
		return nil
	}
	want := plan.Desired.Clone()
	want.Normalize()
	if err := writeTransition(c, now, want); err != nil {
		return err
	}
	return kernelErr("apply the nftables transaction", c.Flush())
}

// Destroy deletes the owned table, and nothing else.
func (b *Backend) Destroy(ctx context.Context) error {
	c, done, err := b.conn()
	if err != nil {
		return err
	}
	defer done()
	s, err := b.read(c)
	if err != nil {
		return err
	}
	if s.table == nil {
		return nil
	}
	c.DelTable(s.table)
	return kernelErr("delete table inet "+tableName, c.Flush())
}

// Counters reads the counter of every owned rule.
func (b *Backend) Counters(ctx context.Context) ([]backends.Counter, error) {
	s, err := b.snapshot()
	if err != nil {
		return nil, err
	}
	var out []backends.Counter
	for _, chain := range sortedChainNames(s) {
		for _, r := range s.rules[chain] {
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
