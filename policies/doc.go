// Package policies is portwarden's policy language: HCL native (*.hcl) and
// JSON (*.hcl.json) files with variable, locals, address_group, service,
// expose and test blocks.
//
// Load parses every file, decodes every block, resolves references and
// validates the result, accumulating hcl.Diagnostics so that all errors of a
// run are reported together, each with file:line:col. A partial Policy is
// returned even when there are errors.
//
// An address_group may also take members from a list file (members_file,
// relative to the policy file that names it): one address, CIDR prefix or
// first-last range a line, # comments. It is parsed without HCL (listfile.go)
// because lexing a 2 MB list as HCL took seconds; each member keeps its
// file and line (Address.Listed) so explain can name the line that decides.
// Be aware: group values become cty lists only when an expression other
// than a plain address_group.NAME reference needs them (groupContext), as a
// million cty strings would cost seconds.
package policies
