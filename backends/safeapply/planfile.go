package safeapply

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/nfgen"
)

// PlanFormatVersion is the version of the saved plan file. It stayed 1
// when plans began to name their binary, namespace and boot: a binary
// from before verifies the signature over fewer fields and so refuses
// these plans, and this one refuses plans without them (see readPlan).
const PlanFormatVersion = 1

// MaxPlanBytes bounds a saved plan file. A source is written up to eight
// times, about 60 bytes each for IPv6 (the current and desired rulesets,
// the desired ruleset's origins, the diff's before and after, and the
// added or removed list): a plan replacing 1,000,000 IPv6 sources by
// 1,000,000 others measured 500 MB, one adding 1,000,000 313 MB. Twice
// the larger leaves room; /dev/zero or a runaway file stops here.
const MaxPlanBytes = 1 << 30

// planFile is a saved plan as written to disk. The plan stays readable
// JSON for review, and is signed: Signature is an HMAC-SHA256, under a key
// only root can read on this host, of the plan's exact bytes and of every
// other field, so apply runs only what portwarden itself wrote, with the
// binary that wrote it, in the namespace and boot it was made for.
type planFile struct {
	FormatVersion int             `json:"format_version"`
	Plan          json.RawMessage `json:"plan"`
	// PolicyDigest identifies the policy files the plan was made from, and
	// PolicyPath where they were (absolute).
	PolicyDigest string `json:"policy_digest"`
	PolicyPath   string `json:"policy_path,omitempty"`
	// PlanDigest is the SHA-256 of Plan's bytes: what apply will write.
	PlanDigest string `json:"plan_digest"`
	// WrittenBy is the portwarden build that wrote the plan; no other
	// applies it. Plans written before it was recorded have none.
	WrittenBy *Binary `json:"written_by,omitempty"`
	// NetNSCookie is the network namespace the plan was made for (its
	// cookie, which the kernel gives no other namespace in one boot), and
	// BootID the boot of the kernel it was made in.
	NetNSCookie uint64 `json:"netns_cookie,omitempty"`
	BootID      string `json:"boot_id,omitempty"`
	Signature   string `json:"signature"`
}

// ErrPlanTampered: a saved plan is not as portwarden wrote it.
var ErrPlanTampered = errors.New("the saved plan was changed after portwarden wrote it")

// ErrPlanNotHere: a saved plan is as portwarden wrote it, but for another
// binary, network namespace or boot, so it is not applied here. It is
// also ErrPlanTampered (errors.Is), whose JSON kind (tampered_plan) and
// remedy, plan again, it shares.
var ErrPlanNotHere = errors.New("the saved plan cannot be applied here")

// NotHereError says why a saved plan cannot be applied here.
type NotHereError struct {
	// Reason is "binary" (another portwarden build wrote it), "boot" (made
	// before the kernel last booted) or "netns" (made for another network
	// namespace).
	Reason string
	Path   string
	// Detail says what differs ("was made for another network namespace
	// (cookie 5; this one is 3)"), Fix what to do.
	Detail, Fix string
}

func (e *NotHereError) Error() string {
	return fmt.Sprintf("this plan (%s) %s: %s; nothing was applied", e.Path, e.Detail, e.Fix)
}

func (e *NotHereError) Is(target error) bool {
	return target == ErrPlanNotHere || target == ErrPlanTampered
}

// SavedPlan is a plan read back from a file, with what it was made from.
type SavedPlan struct {
	*backends.Plan
	PolicyDigest string
	PolicyPath   string
	PlanDigest   string
	// WrittenBy is the binary that wrote it (nil: one from before plans
	// named it); NetNSCookie and BootID the namespace and boot it was
	// made for.
	WrittenBy   *Binary
	NetNSCookie uint64
	BootID      string
	// NotHere says why the plan cannot be applied here (ReadPlan only;
	// LoadPlan returns it as its error): nil when it can.
	NotHere *NotHereError
}

// SavePlan writes plan to path, signed. policyDigest and policyPath name
// the policy it came from (policies.Policy.Digest, and where it is). The
// plan is bound to this binary, the caller's network namespace and this
// boot.
func SavePlan(path string, plan *backends.Plan, policyDigest, policyPath string) error {
	if err := checkPlanPath(path); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(plan, "  ", "  ")
	if err != nil {
		return err
	}
	key, err := planKey(true)
	if err != nil {
		return fmt.Errorf("save the plan: %w", err)
	}
	cookie, err := nfgen.Cookie("")
	if err != nil {
		return fmt.Errorf("save the plan: %w", err)
	}
	sum := sha256.Sum256(raw)
	if abs, err := filepath.Abs(policyPath); err == nil {
		policyPath = abs
	}
	f := planFile{FormatVersion: PlanFormatVersion, Plan: raw, PolicyDigest: policyDigest, PolicyPath: policyPath,
		PlanDigest: "sha256:" + hex.EncodeToString(sum[:]), WrittenBy: thisBinary(), NetNSCookie: cookie, BootID: bootID()}
	f.Signature = f.sign(key)
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if len(data) >= MaxPlanBytes {
		return fmt.Errorf("save the plan: it is %d bytes, more than apply reads (%d MiB)", len(data), MaxPlanBytes>>20)
	}
	// Replaced, not written through: an old file's wider mode does not
	// stay (checkPlanPath refused anything but a file).
	if err := replaceFile(path, append(data, '\n')); err != nil {
		return fmt.Errorf("save the plan: %w", err)
	}
	return nil
}

// checkPlanPath refuses a --out path that is neither a regular file nor a
// new name in an existing directory. The plan replaces what is at the
// path, and replacing a link (/dev/stdout, /dev/fd/N) or a device is never
// what was meant; writing through one would follow a link someone else may
// have planted.
func checkPlanPath(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(path)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return fmt.Errorf("save the plan to %s: the directory %s does not exist: make it, or give another path", path, dir)
		}
		return nil
	case err != nil:
		return fmt.Errorf("save the plan to %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("save the plan to %s: it is %s, not a regular file: give the path of a file (a saved plan is applied from a file, and replaces what is at its path)", path, fileKind(fi.Mode()))
	}
	return nil
}

// LoadPlan reads a plan SavePlan wrote and refuses one that was edited,
// truncated or signed on another host (or under another state directory),
// or that another portwarden binary wrote, or that was made for another
// network namespace or before the kernel last booted.
func LoadPlan(path string) (*SavedPlan, error) {
	saved, err := readPlan(path, false)
	if err != nil {
		return nil, err
	}
	if saved.NotHere != nil {
		return nil, saved.NotHere
	}
	return saved, nil
}

// ReadPlan reads a plan as LoadPlan does, for showing it: one that is as
// a portwarden wrote it but cannot be applied here (another binary,
// namespace or boot) is returned all the same, with NotHere saying why.
func ReadPlan(path string) (*SavedPlan, error) { return readPlan(path, true) }

func readPlan(path string, anyBinary bool) (*SavedPlan, error) {
	data, err := readPlanFile(path)
	if err != nil {
		return nil, err
	}
	var f planFile
	err = json.Unmarshal(data, &f)
	if err != nil || len(f.Plan) == 0 && f.Signature == "" && f.PlanDigest == "" {
		if startsLikePlan(data) {
			if err == nil {
				err = errors.New("it has no plan and no signature")
			}
			return nil, damagedPlan(path, data, err)
		}
		if err == nil {
			err = errors.New("no format_version or plan")
		}
		return nil, fmt.Errorf("%s is not a portwarden plan (%v): make one with portwarden plan --out FILE", path, err)
	}
	if f.FormatVersion > PlanFormatVersion {
		return nil, fmt.Errorf("%s is a plan of format %d, newer than this portwarden understands (%d): apply it with the portwarden that made it", path, f.FormatVersion, PlanFormatVersion)
	}
	if f.FormatVersion < 1 || len(f.Plan) == 0 || f.Signature == "" {
		return nil, damagedPlan(path, data, errors.New("its format_version, plan or signature is missing"))
	}
	// Another build may read the same plan as other rules: refused before
	// anything else, on the file's word (a refusal needs no proof).
	this := thisBinary()
	var foreign *NotHereError
	if !f.WrittenBy.equal(this) {
		foreign = &NotHereError{Reason: "binary", Path: path,
			Detail: fmt.Sprintf("was written by %s; this is %s", f.WrittenBy.short(this), this.short(f.WrittenBy)),
			Fix:    "make a new plan with this binary (portwarden plan --out FILE)"}
		if !anyBinary {
			return nil, foreign
		}
	}
	key, err := planKey(false)
	if err != nil {
		return nil, fmt.Errorf("check the plan %s: %w", path, err)
	}
	sum := sha256.Sum256(f.Plan)
	if !hmac.Equal([]byte(f.sign(key)), []byte(f.Signature)) || f.PlanDigest != "sha256:"+hex.EncodeToString(sum[:]) {
		if foreign != nil {
			foreign.Detail += ", and its signature does not verify for this binary either, so it may also have been edited"
			return nil, foreign
		}
		return nil, fmt.Errorf("%w: %s does not carry the signature of a plan made on this host, so it was edited, or made on another host or with another PORTWARDEN_STATE_DIR; nothing was applied. Make a new plan with portwarden plan --out FILE", ErrPlanTampered, path)
	}
	saved := &SavedPlan{PolicyDigest: f.PolicyDigest, PolicyPath: f.PolicyPath, PlanDigest: f.PlanDigest,
		WrittenBy: f.WrittenBy, NetNSCookie: f.NetNSCookie, BootID: f.BootID, NotHere: foreign}
	if foreign == nil {
		if saved.NotHere, err = notHere(path, &f); err != nil {
			return nil, err
		}
	}
	var p backends.Plan
	if err := json.Unmarshal(f.Plan, &p); err != nil {
		return nil, fmt.Errorf("%s is not a portwarden plan (%v): make one with portwarden plan --out FILE", path, err)
	}
	if p.Desired == nil || p.Current == nil || p.Backend == "" {
		return nil, fmt.Errorf("%s is not a complete portwarden plan: make one with portwarden plan --out FILE", path)
	}
	saved.Plan = &p
	return saved, nil
}

// notHere compares the boot and namespace a verified plan was made for
// with the caller's.
func notHere(path string, f *planFile) (*NotHereError, error) {
	if boot := bootID(); f.BootID != boot {
		return &NotHereError{Reason: "boot", Path: path,
			Detail: fmt.Sprintf("was made before the kernel last booted (boot %s; this boot is %s), so the namespace and the rules it was planned against are gone", f.BootID, boot),
			Fix:    "make a new plan (portwarden plan --out FILE)"}, nil
	}
	cookie, err := nfgen.Cookie("")
	if err != nil {
		return nil, fmt.Errorf("check the plan %s: %w", path, err)
	}
	if f.NetNSCookie != cookie {
		return &NotHereError{Reason: "netns", Path: path,
			Detail: fmt.Sprintf("was made for another network namespace (cookie %d; this one is %d)", f.NetNSCookie, cookie),
			Fix:    "make a new plan in this one (portwarden plan --out FILE), or apply it in the namespace it was made for"}, nil
	}
	return nil, nil
}

// sign is the plan's signature under key. A plan that names its binary
// is signed over every field, each preceded by its length; one from
// before (WrittenBy nil) was signed over the plan, the policy digest and
// path, and is checked that way only to be shown.
func (f *planFile) sign(key []byte) string {
	m := hmac.New(sha256.New, key)
	if f.WrittenBy == nil {
		m.Write(f.Plan)
		m.Write([]byte{0})
		m.Write([]byte(f.PolicyDigest + "\x00" + f.PolicyPath))
		return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
	}
	field := func(m hash.Hash, b []byte) {
		m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		m.Write(b)
	}
	for _, s := range []string{"portwarden saved plan", strconv.Itoa(f.FormatVersion), f.PolicyDigest, f.PolicyPath, f.PlanDigest,
		f.WrittenBy.Version, f.WrittenBy.Commit, f.WrittenBy.Build, strconv.FormatUint(f.NetNSCookie, 10), f.BootID} {
		field(m, []byte(s))
	}
	field(m, f.Plan)
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}

// bootID is BootID without its newline.
func bootID() string { return strings.TrimSpace(BootID()) }

// readPlanFile reads path, which must be a regular file (after links) of
// at most MaxPlanBytes: /dev/zero, a FIFO or a terminal are refused
// before anything is read. The open does not block (a FIFO without a
// writer would), and the checks are of the file opened.
func readPlanFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read the plan: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read the plan: %w", err)
	}
	if !fi.Mode().IsRegular() {
		what := fileKind(fi.Mode())
		if target, err := os.Readlink(path); err == nil {
			what += ", through the symbolic link to " + target
		}
		return nil, fmt.Errorf("%s is not a regular file (%s): a saved plan is the file portwarden plan --out FILE wrote; nothing was read", path, what)
	}
	tooBig := func(size int64) error {
		return fmt.Errorf("%s is %d bytes, more than a saved plan may be (%d MiB; one of 1,000,000 sources is about 500 MB): it is not a plan portwarden wrote; nothing was applied", path, size, MaxPlanBytes>>20)
	}
	if fi.Size() > MaxPlanBytes {
		return nil, tooBig(fi.Size())
	}
	buf := bytes.NewBuffer(make([]byte, 0, fi.Size()+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxPlanBytes+1)); err != nil {
		return nil, fmt.Errorf("read the plan: %w", err)
	}
	if buf.Len() > MaxPlanBytes {
		return nil, tooBig(int64(buf.Len()))
	}
	return buf.Bytes(), nil
}

// fileKind names the type of a file that is not a regular one.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "of type " + m.Type().String()
}

// startsLikePlan: data begins as SavePlan writes a plan, {"format_version":
// N, "plan": ..., as far as it goes; a file that does so but does not
// parse or verify is a damaged plan, not some other file.
func startsLikePlan(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	want := []func(json.Token) bool{
		func(t json.Token) bool { return t == json.Delim('{') },
		func(t json.Token) bool { return t == "format_version" },
		func(t json.Token) bool { _, ok := t.(float64); return ok },
		func(t json.Token) bool { return t == "plan" },
	}
	for i, w := range want {
		t, err := dec.Token()
		if err != nil {
			return i >= 2
		}
		if !w(t) {
			return false
		}
	}
	return true
}

// damagedPlan is the refusal of a file that starts as a saved plan but is
// not a whole one.
func damagedPlan(path string, data []byte, err error) error {
	why := err.Error()
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		if syn.Offset >= int64(len(data)) || strings.Contains(syn.Error(), "unexpected end") {
			why = fmt.Sprintf("it stops at byte %d, in the middle", len(data))
		} else {
			why = fmt.Sprintf("byte %d is not valid JSON (%v)", syn.Offset, syn)
		}
	}
	return fmt.Errorf("%w: %s is not a portwarden plan any more: it starts as one, but %s, so it was truncated or damaged after portwarden wrote it; nothing was applied. Make a new plan with portwarden plan --out FILE",
		ErrPlanTampered, path, why)
}

// planKey reads the host's plan-signing key from the state root, creating
// it when create is set. It lives beside the namespaces' directories, 0600
// in a 0700 directory: only root can sign, so only root's portwarden can
// have written a plan that verifies. The root and the key are trusted
// only when nobody else could have written them (checkRoot, readKey).
func planKey(create bool) ([]byte, error) {
	root, missing, err := checkRoot("")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(root, "plan.key")
	if !missing {
		key, err := readKey(path)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return key, err
		}
	}
	if !create {
		return nil, fmt.Errorf("no plan-signing key at %s: this plan was not made on this host (or the key went with a reboot, /run is a tmpfs); make a new plan with portwarden plan --out FILE", path)
	}
	if _, err := trustRoot(root); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	// Write to a private temporary name and link it into place: two
	// processes making the first key at once agree on one. Both names are
	// below root as checked: the root as written could resolve elsewhere.
	tmp, err := os.CreateTemp(root, ".plan.key.*")
	if err != nil {
		return nil, fmt.Errorf("create the plan-signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create the plan-signing key: %w", err)
	}
	tmp.Close()
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create the plan-signing key: %w", err)
	}
	return readKey(path)
}

// keyFile names the plan-signing key in openOwnFile's refusals.
var keyFile = ownFile{
	what:   "the plan-signing key",
	forge:  "saved plans (whoever can read or write it can sign them)",
	redo:   "the next plan --out makes a new key only you can read, and plans signed with the old one must be made again",
	secret: true,
}

// readKey reads the plan-signing key at path: a regular file, not a
// link, owned by root or the effective user, that group and others can
// neither read nor write (whoever reads it can sign plans), of 32 bytes.
// The checks are of the file opened.
func readKey(path string) ([]byte, error) {
	f, fi, err := openOwnFile(path, os.O_RDONLY, keyFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	key := make([]byte, 33)
	n, err := io.ReadFull(f, key)
	if n != 32 || err != io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("the plan-signing key %s is damaged (%d bytes, not 32): remove it (rm %s); the next plan makes a new key", path, fi.Size(), path)
	}
	return key[:32], nil
}
