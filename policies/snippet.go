package policies

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// maxSnippet is how much of one source line a diagnostic quotes. A
// machine-written policy can be one line of megabytes; people need the
// part around the error, not all of it.
const maxSnippet = 200

// snippetLead is how much of a long line is shown before the error.
const snippetLead = 60

// clipDiagnostic returns a file and diagnostic that quote at most
// maxSnippet characters of each source line the diagnostic shows: the
// window around the subject, marked with "…" where the line was cut. Line
// numbers stay as they were. A diagnostic whose lines are short comes
// back unchanged.
func clipDiagnostic(file *hcl.File, d *hcl.Diagnostic) (*hcl.File, *hcl.Diagnostic) {
	if file == nil || d.Subject == nil {
		return file, d
	}
	src, subj := file.Bytes, *d.Subject
	if subj.Start.Byte < 0 || subj.End.Byte > len(src) || subj.Start.Byte > subj.End.Byte {
		return file, d
	}
	first := bytes.LastIndexByte(src[:subj.Start.Byte], '\n') + 1
	long := false
	type window struct{ ls, ws, we, le int }
	var lines []window
	for ls := first; ls <= len(src) && (ls <= subj.End.Byte || len(lines) == 0); {
		le := bytes.IndexByte(src[ls:], '\n')
		next := ls + le + 1
		if le < 0 {
			le, next = len(src)-ls, len(src)+1
		}
		le += ls
		end := le
		if end > ls && src[end-1] == '\r' {
			end--
		}
		w := window{ls, ls, end, end}
		if utf8.RuneCount(src[ls:end]) > maxSnippet {
			long = true
			anchor := ls
			if subj.Start.Byte > ls {
				anchor = subj.Start.Byte
			}
			w.ws = max(ls, anchor-snippetLead)
			for w.ws > ls && !utf8.RuneStart(src[w.ws]) {
				w.ws--
			}
			w.we = w.ws
			for n := 0; n < maxSnippet && w.we < end; n++ {
				_, size := utf8.DecodeRune(src[w.we:])
				w.we += size
			}
		}
		lines = append(lines, w)
		ls = next
	}
	if !long {
		return file, d
	}
	var b strings.Builder
	b.WriteString(strings.Repeat("\n", subj.Start.Line-1))
	newStart, newEnd := -1, -1
	at := func(off int, w window, base, lead int) int {
		off = min(max(off, w.ws), w.we)
		return base + lead + off - w.ws
	}
	for _, w := range lines {
		base, lead := b.Len(), 0
		if w.ws > w.ls {
			b.WriteString("…")
			lead = len("…")
		}
		b.Write(src[w.ws:w.we])
		if w.we < w.le {
			b.WriteString("…")
		}
		b.WriteByte('\n')
		if subj.Start.Byte >= w.ls && subj.Start.Byte <= w.le && newStart < 0 {
			newStart = at(subj.Start.Byte, w, base, lead)
		}
		if subj.End.Byte >= w.ls && subj.End.Byte <= w.le {
			newEnd = at(subj.End.Byte, w, base, lead)
		}
	}
	if newStart < 0 || newEnd < newStart {
		return file, d
	}
	clipped := *d
	clipped.Context = nil
	s := subj
	s.Start.Byte, s.End.Byte = newStart, newEnd
	clipped.Subject = &s
	return &hcl.File{Bytes: []byte(b.String())}, &clipped
}
