package alertfmt

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sanitize makes a string that came from a watched process (a comm, a
// path, an alert message built from them) safe to print in a terminal
// table: control characters (escape sequences, newlines, tabs, DEL, C1),
// bidirectional overrides and bytes that are not UTF-8 are written as Go
// escapes (\x1b, \n, \u202e, \xff). A process chooses its own comm and
// paths; printed raw, "\x1b[2J" would clear the reader's screen, a newline
// would forge a table row and a tab would shift the columns. JSON output
// needs none of this: the encoder escapes them already.
func Sanitize(s string) string {
	i := strings.IndexFunc(s, needsEscape)
	if i < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case needsEscape(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case needsEscape(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}

// needsEscape is true for runes a terminal acts on rather than shows, or
// that reorder the text around them.
func needsEscape(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) ||
		r == '\u2028' || r == '\u2029' // line and paragraph separators
}
