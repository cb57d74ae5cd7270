// Package rules is the backend-neutral model between the policy language and
// the kernel:
//   - Compile turns a policies.Policy into a normalised, deterministic
//     Ruleset, one Exposure per expose block, with Origins that point back at
//     the policy's allow, deny and expose blocks;
//   - Ruleset.Decide tells what a Ruleset does with a packet (the order is
//     documented on Exposure) and which block decided it; Ruleset.Explain
//     asks it for every port the Ruleset manages, ExplainRange for every
//     source of a prefix too;
//   - Compare diffs two Rulesets (the one a backend read from the kernel and
//     the desired one) down to single ports and set elements, Fingerprint
//     identifies the rules a Ruleset puts in a kernel;
//   - RunTests evaluates a policy's test blocks offline, and BoundarySources
//     lists the source addresses where a verdict can change, for probing.
//
// Be aware:
//   - Prefix sets are always normalised (merged, sorted, per family, IPv4-mapped
//     addresses as IPv4); code that builds an Exposure by hand must call
//     Normalize before comparing.
//   - Deny beats allow without subtraction: an address in both sets stays in
//     both, as the kernel checks the deny set first.
//   - Origins are provenance for people; Compare and Fingerprint ignore them,
//     and a Ruleset read from a kernel has none, so its Decisions carry no
//     Origin. Compile indexes Origins for Decide; change them only by
//     compiling again (a changed length makes Decide scan them instead).
//   - A test block that expects "allow" also passes when no exposure manages
//     its packet (Pass): the kernel then lets it through untouched.
package rules
