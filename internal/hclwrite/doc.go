// Copyright IBM Corp. 2014, 2025
// SPDX-License-Identifier: MPL-2.0

// Package hclwrite deals with the problem of generating HCL configuration
// and of making specific surgical changes to existing HCL configurations.
//
// It operates at a different level of abstraction than the main HCL parser
// and AST, since details such as the placement of comments and newlines
// are preserved when unchanged.
//
// The hclwrite API follows a similar principle to XML/HTML DOM, allowing nodes
// to be read out, created and inserted, etc. Nodes represent syntax constructs
// rather than semantic concepts.
//
// This is a copy of github.com/hashicorp/hcl/v2/hclwrite at v2.25.0
// (MPL-2.0, see LICENSE), changed in two places: the unused node.Equal is
// gone, and with it the import of github.com/google/go-cmp; and tokens.go
// calls a copy of the grapheme counter of hcl's internal/unicodeutil,
// which Go forbids importing (grapheme_count.go, graphemes_v*.go). go-cmp
// compiles Unicode regular expressions when a program starts, which cost
// every portwarden command, whether or not it formats anything, about 90
// of the 470 page faults of its start and 1-2 ms. TestFormatMatchesUpstream,
// TestBuilderMatchesUpstream and FuzzFormatMatchesUpstream hold the copy to
// upstream's output; when upgrading hcl, copy the package again and make
// the same two changes.
package hclwrite
