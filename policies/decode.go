package policies

import (
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
)

var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "address_group", LabelNames: []string{"name"}},
		{Type: "service", LabelNames: []string{"name"}},
		{Type: "expose", LabelNames: []string{"name"}},
		{Type: "test", LabelNames: []string{"name"}},
	},
}

var variableSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "type"}, {Name: "default"}, {Name: "description"}}}

var groupSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "members"}, {Name: "members_file"}, {Name: "description"}}}

var serviceSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "protocol", Required: true}, {Name: "ports", Required: true}, {Name: "description"}}}

var exposeSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "service"}, {Name: "protocol"}, {Name: "ports"}, {Name: "interfaces"}, {Name: "destinations"},
		{Name: "default"}, {Name: "reject_with"}, {Name: "log"}, {Name: "loopback"}, {Name: "description"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: KindAllow}, {Type: KindDeny}},
}

var sourceRuleSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "from", Required: true}, {Name: "comment"}, {Name: "expires"}}}

var testSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "from", Required: true}, {Name: "to", Required: true}, {Name: "expect", Required: true},
	{Name: "port"}, {Name: "protocol"}, {Name: "interface"},
}}

// decoder holds what is known while decoding one policy.
type decoder struct {
	pol   *Policy
	opts  Options
	ctx   *hcl.EvalContext
	names map[string]map[string]hcl.Range // block type → name → declaration

	readList listReader // reads members_file; nil: list files cannot be read
	// groups are the address groups decoded so far; groupVals caches their
	// values as cty lists, built only for the groups an expression other
	// than a plain reference uses: a list of a million addresses costs
	// seconds as cty strings, and a plain reference copies Members instead.
	groups    map[string]*AddressGroup
	groupVals map[string]cty.Value
	// budget bounds evaluation; literalCtx has only its guard, for
	// expressions that may not refer to anything (variable defaults).
	budget     *budget
	literalCtx *hcl.EvalContext
}

type namedBlock struct {
	name  string
	block *hcl.Block
}

func decode(pol *Policy, files []*hcl.File, opts Options, varFiles []*hcl.File, readList listReader) hcl.Diagnostics {
	d := &decoder{pol: pol, opts: opts, names: map[string]map[string]hcl.Range{}, readList: readList,
		groups: map[string]*AddressGroup{}, groupVals: map[string]cty.Value{}}
	var diags hcl.Diagnostics
	byType := map[string][]*hcl.Block{}
	for _, f := range files {
		content, cd := f.Body.Content(rootSchema)
		diags = append(diags, cd...)
		for _, b := range content.Blocks {
			byType[b.Type] = append(byType[b.Type], b)
		}
	}
	// Names first, so references can be checked before anything is evaluated.
	for _, typ := range []string{"variable", "address_group", "service", "expose", "test"} {
		d.names[typ] = map[string]hcl.Range{}
		for _, b := range byType[typ] {
			diags = append(diags, d.declare(typ, b.Labels[0], b.LabelRanges[0], b.DefRange)...)
		}
	}
	localAttrs := map[string]*hcl.Attribute{}
	d.names["local"] = map[string]hcl.Range{}
	for _, b := range byType["locals"] {
		attrs, ad := b.Body.JustAttributes()
		diags = append(diags, ad...)
		for _, a := range sortedAttrs(attrs) {
			if dd := d.declare("local", a.Name, a.NameRange, a.Range); dd.HasErrors() {
				diags = append(diags, dd...)
				continue
			}
			localAttrs[a.Name] = a
		}
	}

	limitsFromEnv(&d.opts)
	d.budget = &budget{max: d.opts.MaxValues, maxTime: d.opts.MaxEvalTime, start: time.Now()}
	fns := functions()
	for name, f := range fns {
		fns[name] = d.budget.bounded(name, f)
	}
	fns[guardFunction] = d.budget.guard()
	d.ctx = &hcl.EvalContext{Variables: map[string]cty.Value{}, Functions: fns}
	d.literalCtx = &hcl.EvalContext{Functions: map[string]function.Function{guardFunction: fns[guardFunction]}}
	diags = append(diags, d.decodeVariables(byType["variable"], varFiles)...)
	diags = append(diags, d.decodeLocals(localAttrs)...)
	diags = append(diags, d.decodeGroups(byType["address_group"])...)
	for _, b := range byType["service"] {
		s, sd := d.decodeService(b)
		diags = append(diags, sd...)
		if s != nil {
			pol.Services = append(pol.Services, s)
		}
	}
	d.ctx.Variables["service"] = d.serviceObject()
	exposeNames := map[string]cty.Value{}
	for name := range d.names["expose"] {
		exposeNames[name] = cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(name)})
	}
	d.ctx.Variables["expose"] = objectOrEmpty(exposeNames)
	for _, b := range byType["expose"] {
		e, ed := d.decodeExpose(b)
		diags = append(diags, ed...)
		if e != nil {
			pol.Exposes = append(pol.Exposes, e)
		}
	}
	for _, b := range byType["test"] {
		t, td := d.decodeTest(b)
		diags = append(diags, td...)
		if t != nil {
			pol.Tests = append(pol.Tests, t)
		}
	}
	sort.Slice(pol.Variables, func(i, j int) bool { return pol.Variables[i].Name < pol.Variables[j].Name })
	sort.Slice(pol.AddressGroups, func(i, j int) bool { return pol.AddressGroups[i].Name < pol.AddressGroups[j].Name })
	sort.Slice(pol.Services, func(i, j int) bool { return pol.Services[i].Name < pol.Services[j].Name })
	sort.Slice(pol.Exposes, func(i, j int) bool { return pol.Exposes[i].Name < pol.Exposes[j].Name })
	if len(byType["expose"]) == 0 && !diags.HasErrors() && len(files) > 0 {
		// Applying it would remove every exposure portwarden manages: say so.
		start := hcl.Pos{Line: 1, Column: 1}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "The policy manages nothing",
			Detail:  "There is no expose block, so no port is managed: applying this policy removes every rule portwarden installed. Add an expose block for each port to manage.",
			Subject: &hcl.Range{Filename: files[0].Body.MissingItemRange().Filename, Start: start, End: start}})
	}
	return diags
}

func sortedAttrs(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Range.Filename != out[j].Range.Filename {
			return out[i].Range.Filename < out[j].Range.Filename
		}
		return out[i].Range.Start.Byte < out[j].Range.Start.Byte
	})
	return out
}

func (d *decoder) declare(typ, name string, nameRange, def hcl.Range) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if typ != "test" && !hclsyntax.ValidIdentifier(name) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Invalid name",
			Detail:  fmt.Sprintf("%q is not a valid %s name: use letters, digits, underscores and dashes, starting with a letter.", name, typ),
			Subject: nameRange.Ptr(),
		})
	}
	if prev, ok := d.names[typ][name]; ok {
		return append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Duplicate " + strings.ReplaceAll(typ, "_", " ") + " name",
			Detail:  fmt.Sprintf("A %s named %q was already declared at %s. Names must be unique; rename or remove one of them.", typ, name, prev),
			Subject: nameRange.Ptr(),
		})
	}
	d.names[typ][name] = def
	return diags
}

// checkRefs reports every reference in expr to something not declared.
// allowed lists the roots the expression may use.
func (d *decoder) checkRefs(expr hcl.Expression, allowed ...string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, tr := range expr.Variables() {
		root := tr.RootName()
		rng := tr.SourceRange()
		typ := map[string]string{"var": "variable", "local": "local", "address_group": "address_group", "service": "service", "expose": "expose"}[root]
		if typ == "" || !slices.Contains(allowed, root) {
			detail := fmt.Sprintf("%q is not something a policy can refer to here.", root)
			if len(allowed) > 0 {
				detail += " Use one of: " + strings.Join(allowed, ", ") + "."
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown reference", Detail: detail, Subject: &rng})
			continue
		}
		if len(tr) < 2 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Incomplete reference",
				Detail: fmt.Sprintf("Refer to one %s by name, as %s.NAME.", typ, root), Subject: &rng})
			continue
		}
		attr, ok := tr[1].(hcl.TraverseAttr)
		if !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid reference",
				Detail: fmt.Sprintf("Refer to %s %s as %s.NAME.", article(typ), strings.ReplaceAll(typ, "_", " "), root), Subject: &rng})
			continue
		}
		if _, ok := d.names[typ][attr.Name]; !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown reference",
				Detail:  fmt.Sprintf("There is no %s named %q.%s", strings.ReplaceAll(typ, "_", " "), attr.Name, suggest(attr.Name, d.names[typ])),
				Subject: &rng})
		}
	}
	return diags
}

func suggest(name string, known map[string]hcl.Range) string {
	var names []string
	for n := range known {
		names = append(names, n)
	}
	if len(names) == 0 {
		return " None is declared."
	}
	sort.Strings(names)
	return " Declared: " + strings.Join(names, ", ") + "."
}

func (d *decoder) decodeVariables(blocks []*hcl.Block, varFiles []*hcl.File) hcl.Diagnostics {
	var diags hcl.Diagnostics
	// Values from --var-file, by name.
	fileValues := map[string]*hcl.Attribute{}
	for _, f := range varFiles {
		attrs, ad := f.Body.JustAttributes()
		diags = append(diags, ad...)
		for name, a := range attrs {
			if _, ok := d.names["variable"][name]; !ok {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Value for undeclared variable",
					Detail: fmt.Sprintf("The variables file sets %q, but the policy declares no such variable.", name), Subject: a.NameRange.Ptr()})
				continue
			}
			fileValues[name] = a
		}
	}
	for name := range d.opts.Vars {
		if _, ok := d.names["variable"][name]; !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Value for undeclared variable",
				Detail: fmt.Sprintf("--var sets %q, but the policy declares no such variable.", name)})
		}
	}
	env := map[string]string{}
	for _, kv := range d.opts.Environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			env[strings.TrimPrefix(k, EnvPrefix)] = v
		}
	}
	values := map[string]cty.Value{}
	for _, b := range blocks {
		name := b.Labels[0]
		content, cd := b.Body.Content(variableSchema)
		diags = append(diags, cd...)
		v := &Variable{Name: name, Type: cty.DynamicPseudoType, Default: cty.NilVal, DeclRange: b.DefRange}
		if a, ok := content.Attributes["type"]; ok {
			ty, td := typeexpr.TypeConstraint(a.Expr)
			diags = append(diags, td...)
			if !td.HasErrors() {
				v.Type = ty
			}
		}
		if a, ok := content.Attributes["description"]; ok {
			diags = append(diags, decodeString(a, nil, &v.Description)...)
		}
		if a, ok := content.Attributes["default"]; ok {
			diags = append(diags, d.checkRefs(a.Expr)...)
			val, vd := a.Expr.Value(d.literalCtx)
			diags = append(diags, vd...)
			if !vd.HasErrors() {
				v.Default, vd = convertValue(val, v.Type, a.Expr.Range(), "default of variable "+name)
				diags = append(diags, vd...)
			}
		}
		v.Value = v.Default
		if raw, ok := d.opts.Vars[name]; ok {
			val, vd := parseRawValue(raw, v.Type, "--var "+name)
			diags = append(diags, vd...)
			v.Value = val
		}
		if a, ok := fileValues[name]; ok {
			val, vd := a.Expr.Value(nil)
			diags = append(diags, vd...)
			if !vd.HasErrors() {
				val, vd = convertValue(val, v.Type, a.Expr.Range(), "variable "+name)
				diags = append(diags, vd...)
				v.Value = val
			}
		}
		if raw, ok := env[name]; ok {
			val, vd := parseRawValue(raw, v.Type, EnvPrefix+name)
			diags = append(diags, vd...)
			v.Value = val
		}
		if v.Value == cty.NilVal {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No value for required variable",
				Detail: fmt.Sprintf("The variable %q has no default and was given no value. Set it with --var %s=VALUE, --var-file, or %s%s.",
					name, name, EnvPrefix, name),
				Subject: b.DefRange.Ptr()})
			v.Value = cty.DynamicVal
		}
		values[name] = v.Value
		d.pol.Variables = append(d.pol.Variables, v)
	}
	d.ctx.Variables["var"] = objectOrEmpty(values)
	return diags
}

func objectOrEmpty(m map[string]cty.Value) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(m)
}

// parseRawValue reads a value given on the command line or in the
// environment: as it is for string variables, as an HCL expression else.
func parseRawValue(raw string, ty cty.Type, where string) (cty.Value, hcl.Diagnostics) {
	if ty == cty.String {
		return cty.StringVal(raw), nil
	}
	expr, diags := hclsyntax.ParseExpression([]byte(raw), where, hcl.InitialPos)
	if diags.HasErrors() {
		if ty == cty.DynamicPseudoType {
			return cty.StringVal(raw), nil
		}
		return cty.DynamicVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid variable value",
			Detail: fmt.Sprintf("%s: %q is not a valid HCL value of type %s.", where, raw, typeexpr.TypeString(ty))}}
	}
	val, diags := expr.Value(nil)
	if diags.HasErrors() {
		return cty.DynamicVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid variable value",
			Detail: fmt.Sprintf("%s: %q must be a literal value of type %s (references and functions are not allowed here).", where, raw, typeexpr.TypeString(ty))}}
	}
	return convertValue(val, ty, hcl.Range{}, where)
}

func convertValue(val cty.Value, ty cty.Type, rng hcl.Range, what string) (cty.Value, hcl.Diagnostics) {
	out, err := convert.Convert(val, ty)
	if err != nil {
		d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid variable value",
			Detail: fmt.Sprintf("The value for %s is not a %s: %s.", what, typeexpr.TypeString(ty), err)}
		if rng.Filename != "" {
			d.Subject = rng.Ptr()
		}
		return cty.DynamicVal, hcl.Diagnostics{d}
	}
	return out, nil
}

func (d *decoder) decodeLocals(attrs map[string]*hcl.Attribute) hcl.Diagnostics {
	var diags hcl.Diagnostics
	values := map[string]cty.Value{}
	pending := map[string]*hcl.Attribute{}
	for name, a := range attrs {
		if rd := d.checkRefs(a.Expr, "var", "local"); rd.HasErrors() {
			diags = append(diags, rd...)
			values[name] = cty.DynamicVal
			continue
		}
		pending[name] = a
	}
	// Evaluate in dependency order; what never becomes ready is a cycle.
	for progress := true; progress && len(pending) > 0; {
		progress = false
		for _, name := range sortedKeys(pending) {
			a := pending[name]
			ready := true
			for _, tr := range a.Expr.Variables() {
				if tr.RootName() == "local" {
					if _, ok := values[tr[1].(hcl.TraverseAttr).Name]; !ok {
						ready = false
					}
				}
			}
			if !ready {
				continue
			}
			d.ctx.Variables["local"] = objectOrEmpty(values)
			val, vd := a.Expr.Value(d.ctx)
			diags = append(diags, vd...)
			if !vd.HasErrors() {
				if err := d.budget.checkSize(val, "local."+name); err != nil {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Policy too large to evaluate",
						Detail: err.Error(), Subject: a.Expr.Range().Ptr()})
					val = cty.DynamicVal
				}
			}
			values[name] = val
			delete(pending, name)
			progress = true
		}
	}
	for _, name := range sortedKeys(pending) {
		a := pending[name]
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cycle in locals",
			Detail: fmt.Sprintf("local.%s depends on itself through other locals. Break the cycle.", name), Subject: a.Range.Ptr()})
		values[name] = cty.DynamicVal
	}
	d.ctx.Variables["local"] = objectOrEmpty(values)
	return diags
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (d *decoder) decodeGroups(blocks []*hcl.Block) hcl.Diagnostics {
	var diags hcl.Diagnostics
	type groupDecl struct {
		block   *hcl.Block
		members *hcl.Attribute
		file    *hcl.Attribute
		deps    []string
	}
	decls := map[string]*groupDecl{}
	for _, b := range blocks {
		if _, dup := decls[b.Labels[0]]; dup {
			continue
		}
		content, cd := b.Body.Content(groupSchema)
		diags = append(diags, cd...)
		g := &groupDecl{block: b, members: content.Attributes["members"], file: content.Attributes["members_file"]}
		if g.members == nil && g.file == nil && !cd.HasErrors() {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing group members",
				Detail:  fmt.Sprintf("Address group %q needs members, members_file (a list file, one address a line), or both.", b.Labels[0]),
				Subject: b.DefRange.Ptr()})
		}
		if g.file != nil {
			diags = append(diags, d.checkRefs(g.file.Expr, "var", "local")...)
		}
		if g.members != nil {
			rd := d.checkRefs(g.members.Expr, "var", "local", "address_group")
			diags = append(diags, rd...)
			if rd.HasErrors() {
				g.members = nil
			} else {
				for _, tr := range g.members.Expr.Variables() {
					if tr.RootName() == "address_group" {
						g.deps = append(g.deps, tr[1].(hcl.TraverseAttr).Name)
					}
				}
			}
		}
		decls[b.Labels[0]] = g
	}
	// Depth-first in name order; a group met again while on the stack is a cycle.
	state := map[string]int{} // 0 new, 1 visiting, 2 done
	var visit func(name string, stack []string)
	visit = func(name string, stack []string) {
		g := decls[name]
		if g == nil || state[name] == 2 {
			return
		}
		if state[name] == 1 {
			i := slices.Index(stack, name)
			cycle := append(slices.Clone(stack[i:]), name)
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Address group cycle",
				Detail:  fmt.Sprintf("Address groups include each other in a cycle: %s. A group may not contain itself, directly or through other groups.", strings.Join(cycle, " → ")),
				Subject: g.block.LabelRanges[0].Ptr()})
			return
		}
		state[name] = 1
		for _, dep := range g.deps {
			visit(dep, append(stack, name))
		}
		state[name] = 2
		grp := &AddressGroup{Name: name, DeclRange: g.block.DefRange}
		decoded := true
		if g.members != nil {
			for _, dep := range g.deps {
				if d.groups[dep] == nil {
					decoded = false // in a cycle, or itself broken
				}
			}
			if decoded {
				members, md := d.addressList(g.members.Expr, "members")
				diags = append(diags, md...)
				grp.Members = members
			}
		}
		if g.file != nil {
			listed, ld := d.readMembersFile(g.file)
			diags = append(diags, ld...)
			if len(listed) > 0 {
				grp.MembersFile = listed[0].Range.Filename
			}
			if len(grp.Members) == 0 {
				grp.Members = listed // no copy of a million addresses
			} else {
				grp.Members = append(grp.Members, listed...)
			}
		}
		if decoded {
			d.groups[name] = grp
		}
		d.pol.AddressGroups = append(d.pol.AddressGroups, grp)
	}
	for _, name := range sortedKeys(decls) {
		visit(name, nil)
	}
	return diags
}

// groupContext makes the groups expr refers to available to it as cty
// values; a group not decoded (in a cycle, or broken) is unknown, which
// evaluates without further errors.
func (d *decoder) groupContext(expr hcl.Expression) {
	vals := map[string]cty.Value{}
	for name := range d.names["address_group"] {
		vals[name] = cty.DynamicVal
	}
	for _, g := range d.referencedGroups(expr) {
		if _, ok := d.groupVals[g.Name]; !ok {
			d.groupVals[g.Name] = addressesValue(g.Members)
		}
	}
	for name, v := range d.groupVals {
		vals[name] = v
	}
	d.ctx.Variables["address_group"] = objectOrEmpty(vals)
}

// referencedGroups are the decoded groups expr refers to.
func (d *decoder) referencedGroups(expr hcl.Expression) []*AddressGroup {
	var out []*AddressGroup
	for _, tr := range expr.Variables() {
		if tr.RootName() != "address_group" || len(tr) < 2 {
			continue
		}
		if attr, ok := tr[1].(hcl.TraverseAttr); ok && d.groups[attr.Name] != nil {
			out = append(out, d.groups[attr.Name])
		}
	}
	return out
}

// checkExpiringGroups refuses an expression that computes with a group
// whose list file lines carry deadlines: a computed value is plain
// strings, and the deadlines would be lost, turning access meant to end
// into access for good.
func (d *decoder) checkExpiringGroups(expr hcl.Expression) *hcl.Diagnostic {
	for _, g := range d.referencedGroups(expr) {
		if slices.ContainsFunc(g.Members, func(a Address) bool { return !a.Expires.IsZero() }) {
			return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Expiring addresses in an expression",
				Detail: fmt.Sprintf("address_group %q has list file lines with expires=, and their deadlines would be lost in a computed value. "+
					"Refer to the group directly, as an element of the list: from = [address_group.%s, ...].", g.Name, g.Name),
				Subject: expr.Range().Ptr()}
		}
	}
	return nil
}

// groupReference returns the members of the group el names when el is
// nothing but a reference to a decoded group. Addresses written inline
// take el's range, as if they were written there; lines of a list file
// keep theirs, so explain names the line that decides.
func (d *decoder) groupReference(el hcl.Expression) ([]Address, bool) {
	st, ok := el.(*hclsyntax.ScopeTraversalExpr)
	if !ok || len(st.Traversal) != 2 || st.Traversal.RootName() != "address_group" {
		return nil, false
	}
	attr, ok := st.Traversal[1].(hcl.TraverseAttr)
	if !ok {
		return nil, false
	}
	g := d.groups[attr.Name]
	if g == nil {
		return nil, false
	}
	if !slices.ContainsFunc(g.Members, func(a Address) bool { return !a.Listed }) {
		// Members are never changed once decoded, so they can be shared.
		return slices.Clip(g.Members), true
	}
	out := make([]Address, len(g.Members))
	for i, a := range g.Members {
		if !a.Listed {
			a.Range = el.Range()
		}
		out[i] = a
	}
	return out, true
}

func addressesValue(as []Address) cty.Value {
	if len(as) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	vals := make([]cty.Value, len(as))
	for i, a := range as {
		vals[i] = cty.StringVal(addressString(a.Prefix))
	}
	return cty.ListVal(vals)
}

func addressString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// addressList evaluates a list of addresses: literals, CIDRs and
// references, nested lists flattened. Each address keeps the range of the
// list element it came from.
func (d *decoder) addressList(expr hcl.Expression, what string) ([]Address, hcl.Diagnostics) {
	elems, diags := hcl.ExprList(expr)
	if diags.HasErrors() {
		// Not a literal list (a function call, a reference): evaluate it whole.
		elems, diags = []hcl.Expression{expr}, nil
	}
	var out []Address
	for _, el := range elems {
		if rd := d.checkRefs(el, "var", "local", "address_group"); rd.HasErrors() {
			diags = append(diags, rd...)
			continue
		}
		if members, ok := d.groupReference(el); ok {
			if len(elems) == 1 {
				return members, diags
			}
			out = append(out, members...)
			continue
		}
		if gd := d.checkExpiringGroups(el); gd != nil {
			diags = append(diags, gd)
			continue
		}
		d.groupContext(el)
		val, vd := el.Value(d.ctx)
		diags = append(diags, vd...)
		if vd.HasErrors() {
			continue
		}
		strs, ok := flattenStrings(val)
		if !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid address list",
				Detail:  fmt.Sprintf("Each element of %s must be an address, a CIDR prefix, or a list of them; this is a %s.", what, val.Type().FriendlyName()),
				Subject: el.Range().Ptr()})
			continue
		}
		for _, s := range strs {
			a, ad := parseAddress(s, el.Range())
			diags = append(diags, ad...)
			if !ad.HasErrors() {
				out = append(out, a)
			}
		}
	}
	return out, diags
}

// flattenStrings returns the strings of a string or arbitrarily nested
// list, tuple or set of strings; unknown values yield nothing.
func flattenStrings(v cty.Value) ([]string, bool) {
	if !v.IsKnown() {
		return nil, true
	}
	if v.IsNull() {
		return nil, false
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		return []string{v.AsString()}, true
	case ty.IsListType() || ty.IsTupleType() || ty.IsSetType():
		var out []string
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			s, ok := flattenStrings(ev)
			if !ok {
				return nil, false
			}
			out = append(out, s...)
		}
		return out, true
	}
	return nil, false
}

func parseAddress(s string, rng hcl.Range) (Address, hcl.Diagnostics) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Address{}, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid CIDR prefix",
				Detail:  fmt.Sprintf("%q is not an IPv4 or IPv6 prefix (%v). Write it like 198.51.100.0/24 or 2001:db8::/64.", s, err),
				Subject: rng.Ptr()}}
		}
		if p.Addr().Zone() != "" {
			return Address{}, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid CIDR prefix",
				Detail: fmt.Sprintf("%q has an IPv6 zone; zones are not allowed in a policy.", s), Subject: rng.Ptr()}}
		}
		if p != p.Masked() {
			return Address{}, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Host bits set in CIDR prefix",
				Detail:  fmt.Sprintf("%q has bits set after the first %d; did you mean %s? Write the network address, or a single address without a prefix length.", s, p.Bits(), p.Masked()),
				Subject: rng.Ptr()}}
		}
		return Address{Prefix: netip.PrefixFrom(p.Addr().Unmap(), unmapBits(p)), Range: rng}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return Address{}, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid IP address",
			Detail:  fmt.Sprintf("%q is not an IPv4 or IPv6 address. Write it like 198.51.100.7 or 2001:db8::7, or a prefix like 198.51.100.0/24.", s),
			Subject: rng.Ptr()}}
	}
	a = a.Unmap()
	return Address{Prefix: netip.PrefixFrom(a, a.BitLen()), Range: rng}, nil
}

func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

func (d *decoder) serviceObject() cty.Value {
	m := map[string]cty.Value{}
	for _, s := range d.pol.Services {
		m[s.Name] = cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(s.Name), "protocol": cty.StringVal(s.Protocol)})
	}
	for name := range d.names["service"] {
		if _, ok := m[name]; !ok {
			m[name] = cty.DynamicVal
		}
	}
	return objectOrEmpty(m)
}

func (d *decoder) decodeService(b *hcl.Block) (*Service, hcl.Diagnostics) {
	content, diags := b.Body.Content(serviceSchema)
	s := &Service{Name: b.Labels[0], DeclRange: b.DefRange}
	if a := content.Attributes["protocol"]; a != nil {
		diags = append(diags, d.decodeProtocol(a, &s.Protocol)...)
	}
	if a := content.Attributes["ports"]; a != nil {
		ports, pd := d.decodePorts(a)
		diags = append(diags, pd...)
		s.Ports = ports
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return s, diags
}

func (d *decoder) decodeProtocol(a *hcl.Attribute, out *string) hcl.Diagnostics {
	diags := decodeString(a, d.ctx, out)
	if diags.HasErrors() {
		return diags
	}
	*out = strings.ToLower(*out)
	if *out != "tcp" && *out != "udp" {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unknown protocol",
			Detail: fmt.Sprintf("Protocol %q is not supported: use \"tcp\" or \"udp\".", *out), Subject: a.Expr.Range().Ptr()}}
	}
	return nil
}

func decodeString(a *hcl.Attribute, ctx *hcl.EvalContext, out *string) hcl.Diagnostics {
	val, diags := a.Expr.Value(ctx)
	if diags.HasErrors() {
		return diags
	}
	val, err := convert.Convert(val, cty.String)
	if err != nil || val.IsNull() || !val.IsKnown() {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value",
			Detail: fmt.Sprintf("%s must be a string.", a.Name), Subject: a.Expr.Range().Ptr()}}
	}
	*out = val.AsString()
	return nil
}

func decodeBool(a *hcl.Attribute, ctx *hcl.EvalContext, out *bool) hcl.Diagnostics {
	val, diags := a.Expr.Value(ctx)
	if diags.HasErrors() {
		return diags
	}
	val, err := convert.Convert(val, cty.Bool)
	if err != nil || val.IsNull() || !val.IsKnown() {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value",
			Detail: fmt.Sprintf("%s must be true or false.", a.Name), Subject: a.Expr.Range().Ptr()}}
	}
	*out = val.True()
	return nil
}

func (d *decoder) decodePorts(a *hcl.Attribute) ([]PortRange, hcl.Diagnostics) {
	diags := d.checkRefs(a.Expr, "var", "local")
	if diags.HasErrors() {
		return nil, diags
	}
	elems, ed := hcl.ExprList(a.Expr)
	if ed.HasErrors() {
		elems = []hcl.Expression{a.Expr}
	}
	var out []PortRange
	for _, el := range elems {
		val, vd := el.Value(d.ctx)
		diags = append(diags, vd...)
		if vd.HasErrors() || !val.IsKnown() {
			continue
		}
		var items []cty.Value
		if ty := val.Type(); ty.IsListType() || ty.IsTupleType() || ty.IsSetType() {
			for it := val.ElementIterator(); it.Next(); {
				_, ev := it.Element()
				items = append(items, ev)
			}
		} else {
			items = []cty.Value{val}
		}
		for _, item := range items {
			pr, pd := parsePort(item, el.Range())
			diags = append(diags, pd...)
			if !pd.HasErrors() {
				out = append(out, pr)
			}
		}
	}
	if len(out) == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No ports",
			Detail: "ports must list at least one port, like [27] or [\"8000-8080\"].", Subject: a.Expr.Range().Ptr()})
	}
	return out, diags
}

func parsePort(v cty.Value, rng hcl.Range) (PortRange, hcl.Diagnostics) {
	bad := func(summary, detail string) (PortRange, hcl.Diagnostics) {
		return PortRange{}, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()}}
	}
	if v.IsNull() {
		return bad("Invalid port", "A port must be a number from 1 to 65535 or a \"from-to\" range.")
	}
	switch v.Type() {
	case cty.Number:
		n, ok := portNumber(v.AsBigFloat())
		if !ok {
			return bad("Port out of range", fmt.Sprintf("Port %s is outside 1..65535.", v.AsBigFloat().Text('f', -1)))
		}
		return PortRange{n, n}, nil
	case cty.String:
		s := strings.TrimSpace(v.AsString())
		first, last, isRange := strings.Cut(s, "-")
		lo, err1 := strconv.Atoi(strings.TrimSpace(first))
		hi, err2 := lo, error(nil)
		if isRange {
			hi, err2 = strconv.Atoi(strings.TrimSpace(last))
		}
		if err1 != nil || err2 != nil {
			return bad("Invalid port", fmt.Sprintf("%q is not a port or a \"from-to\" range like \"8000-8080\".", s))
		}
		if lo < 1 || lo > 65535 || hi < 1 || hi > 65535 {
			return bad("Port out of range", fmt.Sprintf("%q is outside 1..65535.", s))
		}
		if lo > hi {
			return bad("Reversed port range", fmt.Sprintf("%q starts after it ends; write \"%d-%d\".", s, hi, lo))
		}
		return PortRange{uint16(lo), uint16(hi)}, nil
	}
	return bad("Invalid port", fmt.Sprintf("A port must be a number or a \"from-to\" string, not a %s.", v.Type().FriendlyName()))
}

func portNumber(f *big.Float) (uint16, bool) {
	if !f.IsInt() {
		return 0, false
	}
	n, acc := f.Int64()
	if acc != big.Exact || n < 1 || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// refName reads a reference like service.nscp (native syntax), the string
// "service.nscp" (JSON syntax) or the template "${service.nscp}" (either
// syntax; Terraform users write both) and returns the name.
func (d *decoder) refName(a *hcl.Attribute, root string) (string, hcl.Diagnostics) {
	typ := map[string]string{"service": "service", "expose": "expose"}[root]
	invalid := hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid reference",
		Detail: fmt.Sprintf("%s must refer to %s %s, like %s.NAME.", a.Name, article(typ), typ, root), Subject: a.Expr.Range().Ptr()}}
	tr, diags := hcl.AbsTraversalForExpr(a.Expr)
	if diags.HasErrors() {
		tr = templateReference(a.Expr, root)
	}
	if len(tr) != 2 || tr.RootName() != root {
		return "", invalid
	}
	attr, ok := tr[1].(hcl.TraverseAttr)
	if !ok {
		return "", invalid
	}
	if _, ok := d.names[typ][attr.Name]; !ok {
		summary := "Unknown reference"
		if root == "expose" {
			summary = "Test refers to a missing expose"
		}
		return "", hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary,
			Detail: fmt.Sprintf("There is no %s named %q.%s", typ, attr.Name, suggest(attr.Name, d.names[typ])), Subject: a.Expr.Range().Ptr()}}
	}
	return attr.Name, nil
}

// templateReference reads a reference written as a template that is
// nothing but one interpolation, "${expose.nscp}": evaluated with the
// reference standing for its own name, such a template gives exactly that
// name, and any text around the interpolation would change it.
func templateReference(expr hcl.Expression, root string) hcl.Traversal {
	vars := expr.Variables()
	if len(vars) != 1 || len(vars[0]) != 2 || vars[0].RootName() != root {
		return nil
	}
	attr, ok := vars[0][1].(hcl.TraverseAttr)
	if !ok {
		return nil
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
		root: cty.ObjectVal(map[string]cty.Value{attr.Name: cty.StringVal(attr.Name)}),
	}}
	val, diags := expr.Value(ctx)
	if diags.HasErrors() || !val.Type().Equals(cty.String) || !val.IsKnown() || val.IsNull() || val.AsString() != attr.Name {
		return nil
	}
	return vars[0]
}

// article is "an" before a vowel sound, "a" otherwise.
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

func (d *decoder) decodeExpose(b *hcl.Block) (*Expose, hcl.Diagnostics) {
	content, diags := b.Body.Content(exposeSchema)
	e := &Expose{Name: b.Labels[0], Default: "drop", Loopback: true, DeclRange: b.DefRange}
	attrs := content.Attributes
	svc, inlineProto, inlinePorts := attrs["service"], attrs["protocol"], attrs["ports"]
	switch {
	case svc != nil && (inlineProto != nil || inlinePorts != nil):
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Service given twice",
			Detail: "An expose takes either service = service.NAME or protocol and ports inline, not both. Remove one.", Subject: svc.Range.Ptr()})
	case svc != nil:
		name, sd := d.refName(svc, "service")
		diags = append(diags, sd...)
		e.ServiceName = name
		for _, s := range d.pol.Services {
			if s.Name == name {
				e.Protocol, e.Ports = s.Protocol, slices.Clone(s.Ports)
			}
		}
	case inlineProto != nil && inlinePorts != nil:
		diags = append(diags, d.decodeProtocol(inlineProto, &e.Protocol)...)
		ports, pd := d.decodePorts(inlinePorts)
		diags = append(diags, pd...)
		e.Ports = ports
	default:
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing service",
			Detail: "An expose needs service = service.NAME, or both protocol and ports.", Subject: b.DefRange.Ptr()})
	}
	if a := attrs["interfaces"]; a != nil {
		diags = append(diags, d.decodeInterfaces(a, &e.Interfaces)...)
	}
	if a := attrs["destinations"]; a != nil {
		dst, dd := d.addressList(a.Expr, "destinations")
		diags = append(diags, dd...)
		e.Destinations = dst
	}
	if a := attrs["default"]; a != nil {
		diags = append(diags, decodeDefault(a, d.ctx, &e.Default)...)
	}
	if a := attrs["reject_with"]; a != nil {
		diags = append(diags, decodeRejectWith(a, d.ctx, e)...)
	}
	if a := attrs["log"]; a != nil {
		diags = append(diags, decodeBool(a, d.ctx, &e.Log)...)
	}
	if a := attrs["loopback"]; a != nil {
		diags = append(diags, decodeBool(a, d.ctx, &e.Loopback)...)
	}
	diags = append(diags, checkRejectWith(e)...)
	for _, blk := range content.Blocks {
		rule, rd := d.decodeSourceRule(blk)
		diags = append(diags, rd...)
		if rule.Kind == KindAllow {
			e.Allow = append(e.Allow, rule)
		} else {
			e.Deny = append(e.Deny, rule)
		}
	}
	if len(e.Allow) == 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Expose allows nobody",
			Detail:  fmt.Sprintf("expose %q has no allow block, so every source is refused on its ports. Add an allow block if that is not what you want.", e.Name),
			Subject: b.DefRange.Ptr()})
	}
	return e, diags
}

func (d *decoder) decodeInterfaces(a *hcl.Attribute, out *[]string) hcl.Diagnostics {
	diags := d.checkRefs(a.Expr, "var", "local")
	if diags.HasErrors() {
		return diags
	}
	val, diags := a.Expr.Value(d.ctx)
	if diags.HasErrors() {
		return diags
	}
	names, ok := flattenStrings(val)
	if !ok {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid interfaces",
			Detail: "interfaces must be a list of interface names, like [\"eth0\"].", Subject: a.Expr.Range().Ptr()}}
	}
	for _, n := range names {
		if n == "" || len(n) > 15 || strings.ContainsAny(n, " /\t\"'") {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid interface name",
				Detail: fmt.Sprintf("%q is not a Linux interface name (1 to 15 characters, no spaces or slashes).", n), Subject: a.Expr.Range().Ptr()})
			continue
		}
		// iptables reads a trailing "+" as "every interface whose name
		// starts so", nft a "*" likewise, while the policy's own model
		// (explain, test, the lockout guard) compares names whole: the
		// guard would let through a change that cuts a session arriving
		// on eth0 when the policy says "eth+".
		if strings.ContainsAny(n, "+*") {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Interface wildcard",
				Detail: fmt.Sprintf("%q: interfaces are matched by their whole name, and a \"+\" or \"*\" would be a wildcard to iptables or nft; list each interface, like [\"eth0\", \"eth1\"].", n), Subject: a.Expr.Range().Ptr()})
			continue
		}
		*out = append(*out, n)
	}
	return diags
}

func (d *decoder) decodeSourceRule(b *hcl.Block) (*SourceRule, hcl.Diagnostics) {
	content, diags := b.Body.Content(sourceRuleSchema)
	r := &SourceRule{Kind: b.Type, DeclRange: b.DefRange}
	if a := content.Attributes["comment"]; a != nil {
		diags = append(diags, decodeString(a, d.ctx, &r.Comment)...)
	}
	if a := content.Attributes["from"]; a != nil {
		from, fd := d.addressList(a.Expr, "from")
		diags = append(diags, fd...)
		r.From = from
	}
	if a := content.Attributes["expires"]; a != nil {
		if r.Kind != KindAllow {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "expires on a deny block",
				Detail:  "Only allow blocks take expires: a deny that ended by itself would open the port to its sources unannounced. Remove expires, or delete the deny block when it should end.",
				Subject: a.Range.Ptr()})
		} else {
			diags = append(diags, d.decodeExpires(a, r)...)
		}
	}
	if r.Kind != KindAllow {
		if i := slices.IndexFunc(r.From, func(a Address) bool { return !a.Expires.IsZero() }); i >= 0 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Expiring address in a deny block",
				Detail: fmt.Sprintf("%s:%d gives %s a deadline (expires=), but only allowed sources can expire: a deny that ended by itself would open the port unannounced. Use a list file without expires= for deny blocks.",
					r.From[i].Range.Filename, r.From[i].Range.Start.Line, r.From[i].Prefix),
				Subject: r.From[i].Range.Ptr()})
		}
	}
	if r.Kind == KindAllow {
		diags = append(diags, d.expiredWarnings(r)...)
	}
	return r, diags
}

// decodeExpires reads an allow block's deadline: an RFC 3339 time, like
// "2026-12-01T00:00:00Z" (a UTC offset other than Z is allowed and kept
// as the instant it names).
func (d *decoder) decodeExpires(a *hcl.Attribute, r *SourceRule) hcl.Diagnostics {
	var s string
	if diags := decodeString(a, d.ctx, &s); diags.HasErrors() {
		return diags
	}
	t, err := ParseExpires(s)
	if err != nil {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid expires",
			Detail: fmt.Sprintf("%v. Write the instant access ends as RFC 3339, like \"2026-12-01T00:00:00Z\".", err), Subject: a.Expr.Range().Ptr()}}
	}
	r.Expires, r.ExpiresRange = t, a.Expr.Range()
	return nil
}

// ParseExpires reads a deadline as RFC 3339, to the second, in UTC.
func ParseExpires(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", s)
	}
	return t.UTC().Truncate(time.Second), nil
}

// expiredWarnings says which deadlines of an allow block have passed: the
// kernel no longer admits those sources, and plan leaves them out.
func (d *decoder) expiredWarnings(r *SourceRule) hcl.Diagnostics {
	now := d.pol.LoadedAt
	if now.IsZero() {
		return nil
	}
	if !r.Expires.IsZero() && !r.Expires.After(now) {
		return hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: "Expired allow block",
			Detail: fmt.Sprintf("This allow block expired at %s (%s ago): the kernel no longer admits its sources, and plan leaves them out. Delete the block, or move expires later to grant access again.",
				r.Expires.Format(time.RFC3339), roughly(now.Sub(r.Expires))),
			Subject: r.ExpiresRange.Ptr()}}
	}
	expired, first := 0, -1
	for i, a := range r.From {
		if !a.Expires.IsZero() && !a.Expires.After(now) && (r.Expires.IsZero() || a.Expires.Before(r.Expires)) {
			if expired == 0 {
				first = i
			}
			expired++
		}
	}
	if expired == 0 {
		return nil
	}
	f := r.From[first]
	return hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: "Expired list file lines",
		Detail: fmt.Sprintf("%d source(s) of this allow block expired, the first %s at %s:%d (expires=%s): the kernel no longer admits them, and plan leaves them out. Delete those lines.",
			expired, f.Prefix, f.Range.Filename, f.Range.Start.Line, f.Expires.Format(time.RFC3339)),
		Subject: r.DeclRange.Ptr()}}
}

func (d *decoder) decodeTest(b *hcl.Block) (*Test, hcl.Diagnostics) {
	content, diags := b.Body.Content(testSchema)
	t := &Test{Name: b.Labels[0], DeclRange: b.DefRange}
	attrs := content.Attributes
	if a := attrs["from"]; a != nil {
		var s string
		fd := decodeString(a, d.ctx, &s)
		diags = append(diags, fd...)
		if !fd.HasErrors() {
			addr, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil || addr.Zone() != "" {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid IP address",
					Detail: fmt.Sprintf("A test's from must be one address, like 198.51.100.7 or 2001:db8::7; %q is not.", s), Subject: a.Expr.Range().Ptr()})
			}
			t.From = addr.Unmap()
		}
	}
	if a := attrs["to"]; a != nil {
		name, td := d.refName(a, "expose")
		diags = append(diags, td...)
		t.To = name
	}
	if a := attrs["expect"]; a != nil {
		diags = append(diags, decodeExpect(a, d.ctx, &t.Expect)...)
	}
	if a := attrs["port"]; a != nil {
		val, pd := a.Expr.Value(d.ctx)
		diags = append(diags, pd...)
		if !pd.HasErrors() {
			pr, prd := parsePort(val, a.Expr.Range())
			diags = append(diags, prd...)
			if !prd.HasErrors() && pr.First != pr.Last {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid port",
					Detail: "A test probes one port, not a range.", Subject: a.Expr.Range().Ptr()})
			}
			t.Port = pr.First
		}
	}
	if a := attrs["protocol"]; a != nil {
		diags = append(diags, d.decodeProtocol(a, &t.Protocol)...)
	}
	if a := attrs["interface"]; a != nil {
		diags = append(diags, decodeString(a, d.ctx, &t.Interface)...)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return t, diags
}

// roughly writes a long duration in days and hours ("2526d9h"), a short
// one as Go does.
func roughly(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Second).String()
	}
	return fmt.Sprintf("%dd%dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
}
