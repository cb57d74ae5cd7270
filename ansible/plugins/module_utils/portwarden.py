# -*- coding: utf-8 -*-
"""Shared code of the portwarden modules: find the binary, build the global
flags, run a command and read its JSON (the contract in docs/json.md)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

# The format_version of portwarden's --json output these modules read.
FORMAT_VERSION = 1

EXTRA_BIN_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/sbin"]


def common_argument_spec():
    return dict(
        policy=dict(type="path"),
        vars=dict(type="dict", default={}),
        var_files=dict(type="list", elements="path", default=[]),
        binary=dict(type="path", default="portwarden"),
        state_dir=dict(type="path"),
    )


class Portwarden(object):
    """Runs the portwarden binary for a module."""

    def __init__(self, module):
        self.module = module
        p = module.params
        binary = p["binary"]
        if os.path.isabs(binary):
            if not os.access(binary, os.X_OK):
                module.fail_json(msg="portwarden binary %s is missing or not executable: install it (the role "
                                     "portwarden.firewall.server does) or set binary" % binary)
            self.binary = binary
        else:
            self.binary = module.get_bin_path(binary, required=True, opt_dirs=EXTRA_BIN_DIRS)
        self.env = {"NO_COLOR": "1"}
        if p.get("state_dir"):
            self.env["PORTWARDEN_STATE_DIR"] = p["state_dir"]

    def global_args(self):
        p = self.module.params
        args = [self.binary, "--no-color"]
        if p.get("policy"):
            args += ["--policy", p["policy"]]
        if p.get("backend"):
            args += ["--backend", p["backend"]]
        for name in sorted(p.get("vars") or {}):
            args += ["--var", "%s=%s" % (name, var_value(p["vars"][name]))]
        for f in p.get("var_files") or []:
            args += ["--var-file", f]
        return args

    def run(self, args, check_rc=False):
        return self.module.run_command(self.global_args() + args, environ_update=self.env, check_rc=check_rc)

    def run_json(self, args, ok_codes=(0,), what=None):
        """Runs a --json command; fails the module on an exit code not in
        ok_codes or on JSON of an unknown format_version."""
        rc, out, err = self.run(args + ["--json"])
        if rc not in ok_codes:
            self.fail(what or "portwarden %s failed" % args[0], rc, out, err)
        try:
            doc = json.loads(out)
        except ValueError as e:
            self.fail("portwarden %s printed no JSON (%s)" % (args[0], e), rc, out, err)
        check_format(self.module, doc, args[0])
        return rc, doc, err

    def fail(self, what, rc, out, err, **extra):
        """Fails with what went wrong and portwarden's own words; an invalid
        policy's diagnostics come first as file:line: lines."""
        detail = (err or "").strip() or (out or "").strip()
        msg = what
        diags = short_diagnostics(err)
        if diags:
            msg += ":\n" + "\n".join(diags) + "\n\n" + detail
            extra["diagnostics"] = diags
        elif detail:
            msg += ":\n" + detail
        self.module.fail_json(msg=msg, rc=rc, stdout=out, stderr=err, **extra)


# One diagnostic of portwarden's text output (HCL's, with file:line:col;
# binaries before 2026-12 wrote "FILE line N"):
#   Error: Port out of range
#
#     on /etc/portwarden/policy/policy.hcl:4:15, in expose "nscp":
#      4:   ports    = [70000]
#
#   Port 70000 is outside 1..65535.
_DIAG = re.compile(r"^(Error|Warning): (.+)\n\n  on (.+?)(?::(\d+):(\d+)| line (\d+))(?:, in [^\n]*)?:\n(?:.*\n)*?\n(.*)$", re.M)


def short_diagnostics(text):
    """portwarden's diagnostics as "file:line[:col]: severity: summary; detail"."""
    out = []
    for m in _DIAG.finditer(text or ""):
        sev, summary, path, line, col, old_line, detail = m.groups()
        where = "%s:%s:%s" % (path, line, col) if line else "%s:%s" % (path, old_line)
        out.append("%s: %s: %s; %s" % (where, sev.lower(), summary, detail.strip()))
    return out


def var_value(v):
    """--var takes strings as they are and other types as HCL expressions,
    which JSON lists, numbers and booleans are."""
    if isinstance(v, str):
        return v
    return json.dumps(v)


def check_format(module, doc, command):
    v = doc.get("format_version") if isinstance(doc, dict) else None
    if v != FORMAT_VERSION:
        module.fail_json(msg="portwarden %s --json has format_version %r; this collection reads %d: "
                             "install the collection that matches the binary" % (command, v, FORMAT_VERSION))


def _ports(e):
    out = []
    for p in e.get("ports") or []:
        out.append(str(p["first"]) if p["first"] == p["last"] else "%d-%d" % (p["first"], p["last"]))
    return ",".join(out)


def _prefixes(ps):
    ps = ps or {}
    return (ps.get("v4") or []) + (ps.get("v6") or [])


def render_ruleset(ruleset, drift=None):
    """The owned rules as a reviewer reads them: one line per exposure, one
    per source, so a diff shows sources added and removed per exposure."""
    lines = []
    for d in drift or []:
        lines.append("# drift: %s" % d)
    for e in (ruleset or {}).get("exposures") or []:
        head = 'expose "%s" %s/%s default=%s' % (e["name"], e["protocol"], _ports(e), e.get("default"))
        if e.get("interfaces"):
            head += " interfaces=%s" % ",".join(e["interfaces"])
        if e.get("log"):
            head += " log"
        if not e.get("loopback", True):
            head += " no-loopback"
        lines.append(head)
        for p in _prefixes(e.get("destinations")):
            lines.append('  destination %s' % p)
        for p in _prefixes(e.get("deny")):
            lines.append('  deny  %s' % p)
        for p in _prefixes(e.get("allow")):
            lines.append('  allow %s' % p)
    return "\n".join(lines) + "\n" if lines else ""


def summarize_diff(diff):
    """The plan's diff without the full before/after exposures."""
    out = []
    for x in (diff or {}).get("exposures") or []:
        s = {"name": x["name"], "action": x["action"]}
        for k in ("allow", "deny", "destinations", "ports"):
            v = x.get(k) or {}
            if v.get("added") or v.get("removed"):
                s[k] = {"added": v.get("added") or [], "removed": v.get("removed") or []}
        if x.get("attributes"):
            s["attributes"] = x["attributes"]
        out.append(s)
    return out
