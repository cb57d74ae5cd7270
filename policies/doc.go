// Package policies is portwarden's policy language: HCL native (*.hcl) and
// JSON (*.hcl.json) files with variable, locals, address_group, service,
// expose and test blocks.
//
// Load parses every file, decodes every block, resolves references and
// validates the result, accumulating hcl.Diagnostics so that all errors of a
// run are reported together, each with file:line:col. A partial Policy is
// returned even when there are errors.
package policies
