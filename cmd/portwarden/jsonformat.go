package main

// formatVersion is the "format_version" of the JSON that plan, status,
// verify and explain print with --json (docs/json.md). Integrations (the
// Ansible collection, Salt, Puppet, CI) check it: it changes only when a
// field is removed or changes meaning. New fields do not change it.
const formatVersion = 1
