package policies

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Options are the variable values given from outside the policy. Precedence,
// weakest first: a variable's default, Vars (--var), VarFiles (--var-file),
// then PORTWARDEN_VAR_<name> from Environ.
type Options struct {
	Vars     map[string]string
	VarFiles []string
	Environ  []string
	// MaxValues and MaxEvalTime bound evaluation (bounds.go); zero takes
	// PORTWARDEN_MAX_VALUES / PORTWARDEN_MAX_EVAL_TIME or the defaults.
	MaxValues   int
	MaxEvalTime time.Duration
	// Trust decides what happens to files others could have written
	// (trust.go).
	Trust FileTrust
	// Now is the instant deadlines (expires) are judged at; zero means
	// the time of loading.
	Now time.Time
}

// EnvPrefix starts the environment variables that set policy variables.
const EnvPrefix = "PORTWARDEN_VAR_"

// DefaultMaxFileBytes is the largest policy or variables file read, unless
// PORTWARDEN_MAX_POLICY_BYTES says otherwise: parsing costs memory in
// proportion to the text, and a policy that large is almost always a
// mistake (a wrong path, a generated file run away) or a long address list,
// which belongs in a list file.
const DefaultMaxFileBytes = 8 << 20

// MaxFileBytes is the limit in force.
func MaxFileBytes() int64 {
	if v, err := strconv.ParseInt(os.Getenv("PORTWARDEN_MAX_POLICY_BYTES"), 10, 64); err == nil && v > 0 {
		return v
	}
	return DefaultMaxFileBytes
}

// Load loads a policy file, or every *.hcl and *.hcl.json file of a
// directory as one policy. The Policy is returned even with errors, with
// whatever could be decoded, and Files filled for rendering diagnostics.
func Load(p string, opts Options) (*Policy, hcl.Diagnostics) {
	info, err := os.Stat(p)
	if err != nil {
		return &Policy{Files: map[string]*hcl.File{}}, hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Cannot read policy",
			Detail: fmt.Sprintf("%s: %v. Pass the policy file or directory with --policy.", p, unwrapPathErr(err)),
		}}
	}
	dir, name := p, "."
	if !info.IsDir() {
		dir, name = filepath.Dir(p), filepath.Base(p)
	}
	// Diagnostics name files as the user wrote the path.
	display := func(n string) string {
		if n == "." {
			return p
		}
		return filepath.Join(dir, filepath.FromSlash(n))
	}
	trust, varFiles := checkTrust(p, opts)
	if trust.HasErrors() {
		return &Policy{Files: map[string]*hcl.File{}}, trust
	}
	if testHookTrustChecked != nil {
		testHookTrustChecked(p)
	}
	pol, diags := loadFS(os.DirFS(dir), name, opts, display, osListReader, varFiles)
	return pol, append(trust, diags...)
}

// LoadFS is Load over a file system: tests and the fuzzer need no files.
// name is a file or a directory in fsys.
func LoadFS(fsys fs.FS, name string, opts Options) (*Policy, hcl.Diagnostics) {
	return loadFS(fsys, name, opts, func(n string) string { return n }, fsListReader(fsys), nil)
}

// loadFS loads a policy; judged holds the variables files a trust check
// judged (checkTrust), nil if none was checked.
func loadFS(fsys fs.FS, name string, opts Options, display func(string) string, readList listReader, judged map[string]fs.FileInfo) (*Policy, hcl.Diagnostics) {
	pol := &Policy{Files: map[string]*hcl.File{}, LoadedAt: opts.Now}
	if pol.LoadedAt.IsZero() {
		pol.LoadedAt = time.Now()
	}
	pol.LoadedAt = pol.LoadedAt.UTC()
	names, diags := policyFiles(fsys, name, display)
	if diags.HasErrors() {
		return pol, diags
	}
	parser := hclparse.NewParser()
	var bodies []*hcl.File
	for _, n := range names {
		f, d := parseFile(parser, fsys, n, display(n))
		diags = append(diags, d...)
		if f != nil {
			pol.Files[display(n)] = f
			guardForExpressions(f)
			bodies = append(bodies, f)
		}
	}
	varFiles, d := loadVarFiles(parser, opts.VarFiles, judged)
	diags = append(diags, d...)
	for n, f := range parser.Files() {
		if _, ok := pol.Files[n]; !ok && f != nil {
			pol.Files[n] = f
		}
	}
	if diags.HasErrors() {
		return pol, diags
	}
	d = decode(pol, bodies, opts, varFiles, readList)
	return pol, append(diags, retitleLimitDiagnostics(d)...)
}

func policyFiles(fsys fs.FS, name string, display func(string) string) ([]string, hcl.Diagnostics) {
	name = path.Clean(name)
	info, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Cannot read policy",
			Detail: fmt.Sprintf("%s: %v. Pass the policy file or directory with --policy.", display(name), unwrapPathErr(err)),
		}}
	}
	if !info.IsDir() {
		if d := checkRegular(info, display(name), "policy"); d != nil {
			return nil, hcl.Diagnostics{d}
		}
		return []string{name}, nil
	}
	entries, err := fs.ReadDir(fsys, name)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read policy directory", Detail: err.Error()}}
	}
	var out []string
	var diags hcl.Diagnostics
	for _, e := range entries {
		if e.IsDir() || !IsPolicyFile(e.Name()) {
			continue
		}
		n := path.Join(name, e.Name())
		if info, err := fs.Stat(fsys, n); err == nil {
			if d := checkRegular(info, display(n), "policy"); d != nil {
				diags = append(diags, d)
				continue
			}
		}
		out = append(out, n)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	if len(out) == 0 {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "No policy files",
			Detail: fmt.Sprintf("The directory %s has no *.hcl or *.hcl.json file. Pass a policy file or directory with --policy.", display(name)),
		}}
	}
	sort.Strings(out)
	return out, nil
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// IsPolicyFile reports whether a directory entry, by its name, is part of
// the policy the directory holds: a *.hcl or *.hcl.json file, unless its
// name starts with "." or "#" or ends with "~", as Terraform ignores
// them. Editors keep such files beside the ones being edited (Emacs's
// lock file .#policy.hcl, a dangling symbolic link; swap and backup
// copies such as .policy.swp.hcl), and loading them would define
// everything twice or fail on a file that is not there. Every place that
// lists a policy directory (Load, its trust check, InputDigest, fmt) asks
// this. A file named on its own (--policy .hidden.hcl) is loaded anyway.
func IsPolicyFile(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "#") || strings.HasSuffix(name, "~") {
		return false
	}
	return strings.HasSuffix(name, ".hcl") || strings.HasSuffix(name, ".hcl.json")
}

// checkRegular refuses what is not a regular file (a device such as
// /dev/zero, a FIFO, a socket) and files over MaxFileBytes, before reading
// a byte of them.
func checkRegular(info fs.FileInfo, shown, what string) *hcl.Diagnostic {
	if r := admit(info, MaxFileBytes()); r != nil {
		return refusalDiagnostic(r, shown, what)
	}
	return nil
}

// refusalDiagnostic says why a policy or variables file was not read, and
// what to do.
func refusalDiagnostic(r *fileRefusal, shown, what string) *hcl.Diagnostic {
	switch {
	case r.Kind != "":
		return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Not a regular file",
			Detail: fmt.Sprintf("%s is %s, not a regular file: portwarden reads %s files only from regular files (a policy may also be a directory of them).", shown, r.Kind, what)}
	case r.Size < 0:
		return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "File too large", Detail: fmt.Sprintf("%s grew over the limit of %d bytes while being read.", shown, r.Limit)}
	}
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "File too large",
		Detail: fmt.Sprintf("%s is %d bytes, over the limit of %d bytes for a %s file: split it into several files of a policy directory, "+
			"or keep long address lists in list files (address_group's members_file). PORTWARDEN_MAX_POLICY_BYTES raises the limit.", shown, r.Size, r.Limit, what)}
}

// readLimited reads a policy or variables file within MaxFileBytes.
func readLimited(f fs.File, shown, what string) ([]byte, *hcl.Diagnostic) {
	src, err := readAdmitted(f, MaxFileBytes())
	if r, ok := err.(*fileRefusal); ok {
		return nil, refusalDiagnostic(r, shown, what)
	}
	if err != nil {
		return nil, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read " + what + " file", Detail: fmt.Sprintf("%s: %v.", shown, unwrapPathErr(err))}
	}
	return src, nil
}

func parseFile(parser *hclparse.Parser, fsys fs.FS, name, shown string) (*hcl.File, hcl.Diagnostics) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read policy file", Detail: fmt.Sprintf("%s: %v.", shown, unwrapPathErr(err))}}
	}
	defer f.Close()
	src, d := readLimited(f, shown, "policy")
	if d != nil {
		return nil, hcl.Diagnostics{d}
	}
	if strings.HasSuffix(name, ".json") {
		return parser.ParseJSON(src, shown)
	}
	return parser.ParseHCL(src, shown)
}

// loadVarFiles reads the variables files names. judged, if not nil, holds
// what their trust check judged: only those files are read.
func loadVarFiles(parser *hclparse.Parser, names []string, judged map[string]fs.FileInfo) ([]*hcl.File, hcl.Diagnostics) {
	var files []*hcl.File
	var diags hcl.Diagnostics
	for _, n := range names {
		// Looked at before it is opened: a named pipe would block the open.
		var fh *os.File
		var err error
		if judged != nil {
			fh, err = openJudged(n, MaxFileBytes(), judged[n])
		} else {
			fh, err = openRegular(n, MaxFileBytes(), nil)
		}
		if r, ok := err.(*fileRefusal); ok {
			diags = append(diags, refusalDiagnostic(r, n, "variables"))
			continue
		}
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read variables file", Detail: fmt.Sprintf("%s: %v. Check the --var-file path.", n, unwrapPathErr(err))})
			continue
		}
		src, rd := readLimited(fh, n, "variables")
		fh.Close()
		if rd != nil {
			diags = append(diags, rd)
			continue
		}
		var f *hcl.File
		var d hcl.Diagnostics
		if strings.HasSuffix(n, ".json") {
			f, d = parser.ParseJSON(src, n)
		} else {
			f, d = parser.ParseHCL(src, n)
		}
		diags = append(diags, d...)
		if f != nil {
			files = append(files, f)
		}
	}
	return files, diags
}
