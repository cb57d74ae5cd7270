package backends

import (
	"context"
	"errors"
	"time"

	"github.com/portwarden/portwarden/rules"
)

// Backend makes the kernel hold a rules.Ruleset. It takes a desired state,
// never feature verbs: every feature of the policy language is carried by
// the Ruleset, so adding one touches Compile, Decide and the backends'
// translation, not this interface.
type Backend interface {
	// Name is "nftables" or "iptables".
	Name() string

	// Current reads the objects this backend owns from the kernel and decodes
	// them back into a Ruleset. Objects it does not own are never read into
	// the result. Owned objects that do not decode cleanly are reported in
	// State.Drift, not silently dropped.
	Current(ctx context.Context) (*State, error)

	// Plan diffs desired against Current, in the model.
	Plan(ctx context.Context, desired *rules.Ruleset) (*Plan, error)

	// Apply makes the kernel match plan.Desired in one atomic transition. It
	// writes nothing when the plan is empty. It returns an error wrapping
	// ErrStalePlan, writing nothing, when the owned state no longer has
	// plan.Current.Fingerprint.
	Apply(ctx context.Context, plan *Plan) error

	// Destroy removes every owned object and nothing else. Destroying when
	// nothing is installed is not an error.
	Destroy(ctx context.Context) error

	// Render is the desired Ruleset as the text this backend's own tools load
	// (an nft script, an iptables-restore file), deterministic, for review
	// and persistence. It is output only: nothing compares it.
	Render(desired *rules.Ruleset) (string, error)

	// Counters reads the per-rule packet and byte counters of owned rules.
	Counters(ctx context.Context) ([]Counter, error)
}

// State is what a backend found in the kernel.
type State struct {
	Installed bool           `json:"installed"` // any owned object exists
	Ruleset   *rules.Ruleset `json:"ruleset"`   // decoded owned objects; empty when not installed
	// Drift lists owned objects that exist but are not as this backend
	// makes them (a rule deleted or changed by hand, a foreign rule inside
	// an owned chain). Each entry is a sentence for people.
	Drift []string `json:"drift"`
	// Fingerprint identifies the owned state exactly, drift included; a
	// saved plan applies only while it is unchanged.
	Fingerprint string `json:"fingerprint"`
}

// Plan is the transition from the kernel's current owned state to the
// desired Ruleset.
type Plan struct {
	Backend string         `json:"backend"`
	Current *State         `json:"current"`
	Desired *rules.Ruleset `json:"desired"`
	Diff    rules.Diff     `json:"diff"`
	Created time.Time      `json:"created"`
	// Warnings are backend-specific notes for people (e.g. a source list
	// long enough to cost per packet with iptables); they change nothing.
	Warnings []string `json:"warnings,omitempty"`
	// DriftOnly: the policy is the one portwarden last applied, so every
	// difference was made outside portwarden. Set by the caller, which
	// knows the last apply (the state directory); WritePlan labels the
	// changes accordingly.
	DriftOnly bool `json:"-"`
}

// Empty reports whether applying the plan would write nothing.
func (p *Plan) Empty() bool {
	return p.Diff.Empty() && len(p.Current.Drift) == 0
}

// Counter is one owned rule's counters.
type Counter struct {
	Exposure string `json:"exposure"` // empty for rules not tied to one exposure
	Rule     string `json:"rule"`     // e.g. "allow v4", "deny v6", "default", "loopback"
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
}

// Config is what every backend is constructed with.
type Config struct {
	// NetNS is the path of a network namespace (/run/netns/NAME,
	// /proc/PID/ns/net) to work in; empty means the namespace of the calling
	// process, which is also what `ip netns exec NAME portwarden ...` gives.
	// A backend works from goroutines of its own, so a caller that entered
	// another namespace on its own locked thread must name it here.
	NetNS string
	// StateDir, when set, is the state root (see safeapply.RootDir) where a
	// backend may keep what it last read or wrote, so a fresh process can
	// skip reading a kernel nobody changed. Empty: no such cache.
	StateDir string
	// Later, when set, runs work that only later commands need (writing
	// that cache) beside the rest of the command; the caller waits for it
	// before it exits (safeapply.Later and Settle). Nil runs it in line.
	Later func(func())
}

var (
	// ErrStalePlan: the owned state changed since the plan was made.
	ErrStalePlan = errors.New("the plan is stale: the firewall changed since the plan was made; run plan again")
	// ErrPermission: the kernel refused for lack of privilege.
	ErrPermission = errors.New("permission denied: managing the firewall needs CAP_NET_ADMIN (run as root)")
	// ErrUnsupported: the backend cannot work on this kernel or host.
	ErrUnsupported = errors.New("backend not supported on this host")
)
