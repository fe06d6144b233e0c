package rules

import (
	"fmt"
	"strings"
)

// Error is one problem in a rule file, located so that an editor can jump to
// it: "rules/default.yaml:12:18: rule scan: unknown errno "ECONREFUSED" (did
// you mean "ECONNREFUSED"?)".
type Error struct {
	File   string
	Line   int // 1-based; 0 when the problem is the whole file
	Column int // 1-based; 0 when unknown
	Rule   string
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %s: ", e.Rule)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem Load found, in file and line order. Load collects
// them all rather than stopping at the first, so one run of
// `errnowatch rules validate` shows everything to fix.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find an individual *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
