package safeapply

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/portwarden/portwarden/backends"
)

// PlanFormatVersion is the version of the saved plan file.
const PlanFormatVersion = 1

// planFile is a saved plan as written to disk. The plan stays readable
// JSON for review, and is signed: Signature is an HMAC-SHA256, under a key
// only root can read on this host, of the plan's exact bytes and the
// policy digest, so apply runs only what portwarden itself wrote.
type planFile struct {
	FormatVersion int             `json:"format_version"`
	Plan          json.RawMessage `json:"plan"`
	// PolicyDigest identifies the policy files the plan was made from, and
	// PolicyPath where they were (absolute).
	PolicyDigest string `json:"policy_digest"`
	PolicyPath   string `json:"policy_path,omitempty"`
	// PlanDigest is the SHA-256 of Plan's bytes: what apply will write.
	PlanDigest string `json:"plan_digest"`
	Signature  string `json:"signature"`
}

// ErrPlanTampered: a saved plan is not as portwarden wrote it.
var ErrPlanTampered = errors.New("the saved plan was changed after portwarden wrote it")

// SavedPlan is a plan read back from a file, with what it was made from.
type SavedPlan struct {
	*backends.Plan
	PolicyDigest string
	PolicyPath   string
	PlanDigest   string
}

// SavePlan writes plan to path, signed. policyDigest and policyPath name
// the policy it came from (policies.Policy.Digest, and where it is).
func SavePlan(path string, plan *backends.Plan, policyDigest, policyPath string) error {
	raw, err := json.MarshalIndent(plan, "  ", "  ")
	if err != nil {
		return err
	}
	key, err := planKey(true)
	if err != nil {
		return fmt.Errorf("save the plan: %w", err)
	}
	sum := sha256.Sum256(raw)
	if abs, err := filepath.Abs(policyPath); err == nil {
		policyPath = abs
	}
	f := planFile{FormatVersion: PlanFormatVersion, Plan: raw, PolicyDigest: policyDigest, PolicyPath: policyPath,
		PlanDigest: "sha256:" + hex.EncodeToString(sum[:]), Signature: sign(key, raw, policyDigest+"\x00"+policyPath)}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save the plan: %w", err)
	}
	return nil
}

// LoadPlan reads a plan SavePlan wrote and refuses one that was edited,
// truncated or signed on another host (or under another state directory).
func LoadPlan(path string) (*SavedPlan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the plan: %w", err)
	}
	var f planFile
	if err := json.Unmarshal(data, &f); err != nil || f.FormatVersion == 0 || len(f.Plan) == 0 {
		if err == nil {
			err = errors.New("no format_version or plan")
		}
		return nil, fmt.Errorf("%s is not a portwarden plan (%v): make one with portwarden plan --out FILE", path, err)
	}
	if f.FormatVersion > PlanFormatVersion {
		return nil, fmt.Errorf("%s is a plan of format %d, newer than this portwarden understands (%d): apply it with the portwarden that made it", path, f.FormatVersion, PlanFormatVersion)
	}
	key, err := planKey(false)
	if err != nil {
		return nil, fmt.Errorf("check the plan %s: %w", path, err)
	}
	sum := sha256.Sum256(f.Plan)
	if !hmac.Equal([]byte(sign(key, f.Plan, f.PolicyDigest+"\x00"+f.PolicyPath)), []byte(f.Signature)) ||
		f.PlanDigest != "sha256:"+hex.EncodeToString(sum[:]) {
		return nil, fmt.Errorf("%w: %s does not carry the signature of a plan made on this host, so it was edited, or made on another host or with another PORTWARDEN_STATE_DIR; nothing was applied. Make a new plan with portwarden plan --out FILE", ErrPlanTampered, path)
	}
	var p backends.Plan
	if err := json.Unmarshal(f.Plan, &p); err != nil {
		return nil, fmt.Errorf("%s is not a portwarden plan (%v): make one with portwarden plan --out FILE", path, err)
	}
	if p.Desired == nil || p.Current == nil || p.Backend == "" {
		return nil, fmt.Errorf("%s is not a complete portwarden plan: make one with portwarden plan --out FILE", path)
	}
	return &SavedPlan{Plan: &p, PolicyDigest: f.PolicyDigest, PolicyPath: f.PolicyPath, PlanDigest: f.PlanDigest}, nil
}

func sign(key, plan []byte, policyDigest string) string {
	m := hmac.New(sha256.New, key)
	m.Write(plan)
	m.Write([]byte{0})
	m.Write([]byte(policyDigest))
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}

// planKey reads the host's plan-signing key from the state root, creating
// it when create is set. It lives beside the namespaces' directories, 0600
// in a 0700 directory: only root can sign, so only root's portwarden can
// have written a plan that verifies.
func planKey(create bool) ([]byte, error) {
	root := RootDir("")
	path := filepath.Join(root, "plan.key")
	key, err := os.ReadFile(path)
	if err == nil && len(key) == 32 {
		return key, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read the plan-signing key: %w", err)
	}
	if !create {
		return nil, fmt.Errorf("no plan-signing key at %s: this plan was not made on this host (or the key went with a reboot, /run is a tmpfs); make a new plan with portwarden plan --out FILE", path)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	// Write to a private temporary name and link it into place: two
	// processes making the first key at once agree on one.
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
	if key, err = os.ReadFile(path); err != nil || len(key) != 32 {
		return nil, fmt.Errorf("read the plan-signing key %s: %v", path, err)
	}
	return bytes.Clone(key), nil
}
