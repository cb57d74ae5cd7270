// Package pathtrust holds what the two StrictModes-like path checks share:
// the policy loader's (policies/trust.go), which judges policy, variables
// and list files and yields diagnostics, and the state root's
// (backends/safeapply/trust.go), which refuses with an error. Both walk a
// path one name at a time from /, as the kernel resolves it, and ask of
// each step who owns it and who else can write it.
//
// The walks themselves stay with their callers: the loader judges the
// directory holding each name in a role the name decides (passed
// through, holding the file, sticky enough or not), judges where a
// missing name would be created, and reports every step; the state check
// judges each directory it enters, stops at the first refusal, and is
// repeated after the root is made. Whom each trusts differs too: the
// loader also trusts the real user and SUDO_UID (an administrator's own
// policy checkout), the state check only root and the effective user.
package pathtrust
