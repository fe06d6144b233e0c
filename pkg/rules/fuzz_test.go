package rules

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseRules feeds arbitrary rule files to the loader. It must never
// panic, and must answer either a rule set whose every rule is compiled or
// located errors for the file it was given. Seeds (the shipped pack, files
// full of mistakes, YAML alias bombs) are in testdata/fuzz/FuzzParseRules.
func FuzzParseRules(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse("fuzz.yaml", data)
		checkParse(t, rs, err)
	})
}

// FuzzCondition feeds arbitrary CEL to the condition compiler, inside a
// rule so that the positions of its errors are mapped to the file too.
func FuzzCondition(f *testing.F) {
	f.Fuzz(func(t *testing.T, cond string) {
		c, errs := compileCondition(cond)
		if (c == nil) == (len(errs) == 0) {
			t.Fatalf("compile %q: condition %v with %d errors", cond, c != nil, len(errs))
		}
		for _, e := range errs {
			if e.line < 1 || e.col < 0 || e.msg == "" {
				t.Fatalf("compile %q: error %+v has no position or message", cond, e)
			}
		}
		file := "rules:\n  - id: fuzz\n    severity: low\n    condition: " + strconv.Quote(cond) + "\n"
		rs, err := Parse("fuzz.yaml", []byte(file))
		checkParse(t, rs, err)
	})
}

func checkParse(t *testing.T, rs *RuleSet, err error) {
	t.Helper()
	if err != nil {
		if rs != nil {
			t.Fatalf("parse returned a rule set and %v", err)
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("parse error %v is not a list of located errors", err)
		}
		for _, e := range es {
			if e.File != "fuzz.yaml" || e.Line < 0 || e.Column < 0 || e.Msg == "" ||
				!strings.HasPrefix(e.Error(), "fuzz.yaml") {
				t.Fatalf("error %+v is not located in fuzz.yaml", e)
			}
		}
		return
	}
	if rs == nil {
		t.Fatal("parse returned neither rules nor an error")
	}
	for _, r := range rs.Rules {
		if r.ID == "" || r.cond == nil || r.cond.prg == nil {
			t.Fatalf("rule %q is not compiled", r.ID)
		}
	}
}

// Found by FuzzCondition: CEL reports the recursion limit with no location
// (line -1), which put the error two lines above the condition.
func TestConditionErrorWithoutLocation(t *testing.T) {
	deep := strings.Repeat("(", 300) + "count" + strings.Repeat(")", 300) + " > 1"
	file := "rules:\n  - id: deep\n    severity: low\n    condition: " + deep + "\n"
	_, err := Parse("deep.yaml", []byte(file))
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 || es[0].Line != 4 || es[0].Column != 16 ||
		!strings.Contains(es[0].Msg, "recursion limit") {
		t.Fatalf("parse of a too deep condition: %v", err)
	}
}
