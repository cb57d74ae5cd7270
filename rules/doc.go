// Package rules is the backend-neutral model between the policy language and
// the kernel: Compile turns a policies.Policy into a normalised Ruleset,
// Decide tells what a Ruleset does with a packet, and Diff compares two
// Rulesets (the desired one and the one a backend read from the kernel).
//
// Be aware:
//   - Prefix sets are always normalised (merged, sorted, per family); code
//     that builds an Exposure by hand must call Normalize before comparing.
//   - Origins are provenance for people; Diff and Fingerprint ignore them.
package rules
