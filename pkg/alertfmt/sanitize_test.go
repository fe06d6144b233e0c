package alertfmt

import (
	"bytes"
	"strings"
	"testing"
	"unicode"

	"google.golang.org/protobuf/types/known/timestamppb"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                 "nginx",
		"":                      "",
		"\x1b[2J":               `\x1b[2J`,
		"evil\nLAST SEEN":       `evil\nLAST SEEN`,
		"a\tb\rc":               `a\tb\rc`,
		"bell\x07del\x7f":       `bell\x07del\x7f`,
		"c1\u0085\u009b31m":     `c1\x85\x9b31m`,
		"über/日本":               "über/日本",
		"abc\u202egnp.exe":      `abc\u202egnp.exe`,
		"line\u2028sep":         `line\u2028sep`,
		"bad\xffutf8\xc3":       `bad\xffutf8\xc3`,
		"/var/lib/x\x00hidden":  `/var/lib/x\x00hidden`,
		`already\x1b escaped`:   `already\x1b escaped`,
		"\x1b]0;title\x07rest":  `\x1b]0;title\x07rest`,
		"emoji 🙂 ok":            "emoji 🙂 ok",
		"zero\u200bwidth space": "zero\u200bwidth space",
	} {
		if got := Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzSanitize checks that nothing a terminal acts on survives, whatever
// the bytes.
func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"\x1b[2J", "a\nb", "\xff\xfe", "\u202e", "plain"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Sanitize(s)
		for i, r := range out {
			if r == unicode.ReplacementChar && !strings.ContainsRune(s, unicode.ReplacementChar) {
				t.Fatalf("Sanitize(%q) = %q has invalid UTF-8 at %d", s, out, i)
			}
			if needsEscape(r) {
				t.Fatalf("Sanitize(%q) = %q keeps %U at %d", s, out, r, i)
			}
		}
		if Sanitize(out) != out {
			t.Fatalf("Sanitize is not idempotent on %q", s)
		}
	})
}

// A watched process names itself "\x1b[2J" and puts a newline in a path:
// the table still has one row per alert and no escape byte.
func TestListEscapesHostileStrings(t *testing.T) {
	as := storetest.Alerts(storetest.DefaultShape, base, 0, 2)
	as[1].Message = "process \x1b[2J\x1b[31mkthreadd opened /tmp/x\nLAST SEEN forged row"
	as[1].Container = "app\tshifted"
	as[1].Processes = nil
	var st []*errnowatchv1.StoredAlert
	for i := range as {
		st = append(st, &errnowatchv1.StoredAlert{Sequence: uint64(i), StoredTime: timestamppb.New(base), Alert: alertpb.ToProto(&as[i])})
	}
	for _, f := range []ListFormat{ListTable, ListWide} {
		var b bytes.Buffer
		if err := WriteList(&b, f, st, now); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if strings.ContainsAny(out, "\x1b\t\r") || strings.Count(out, "\n") != 3 {
			t.Fatalf("%s output keeps control characters or has %d lines:\n%q", f, strings.Count(out, "\n"), out)
		}
		if !strings.Contains(out, `process \x1b[2J\x1b[31mkthreadd opened /tmp/x LAST SEEN forged row`) {
			t.Fatalf("%s output does not show the escaped message:\n%s", f, out)
		}
		if f == ListWide && !strings.Contains(out, `app\tshifted`) {
			t.Fatalf("wide output does not show the escaped container:\n%s", out)
		}
	}
}
