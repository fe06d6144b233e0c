package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

func TestConditionOverTheCostLimitIsRejected(t *testing.T) {
	const file = `rules:
  - id: one-loop
    severity: low
    condition: count >= 1 && comms.exists(c, c.startsWith("nc"))
  - id: nested-loops
    severity: low
    condition: count >= 1 && comms.exists(a, comms.exists(b, labels.exists(k, labels[k].matches(a + b))))
`
	rs, err := Parse("cost.yaml", []byte(file))
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 {
		t.Fatalf("parse returned %v (%d errors), want one error", err, len(es))
	}
	// The error points at the outer loop: the "(" of comms.exists( on line 7.
	if got := es[0].Error(); !strings.HasPrefix(got, "cost.yaml:7:42: rule nested-loops: condition: it may cost up to ") ||
		!strings.Contains(got, fmt.Sprintf("over the limit of %d", MaxConditionCost)) {
		t.Fatalf("error = %q", got)
	}
	if rs != nil {
		t.Fatalf("a rule set with an error was returned")
	}
	if _, err := Parse("cost.yaml", []byte(strings.Split(file, "  - id: nested-loops")[0])); err != nil {
		t.Fatalf("one loop over comms is within the limit: %v", err)
	}
}

// Every shipped rule is under the limit with room to spare: the count-only
// ones cost under 100, the ones over records under two thirds of it.
func TestShippedRulesCost(t *testing.T) {
	rs, err := Load("../../rules/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env, err := celEnv()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs.Rules {
		checked, iss := env.Compile(r.Condition)
		if iss.Err() != nil {
			t.Fatal(iss.Err())
		}
		est, err := env.EstimateCost(checked, sizeEstimator{})
		if err != nil {
			t.Fatal(err)
		}
		limit := uint64(100)
		if r.cond.usesRecords {
			limit = MaxConditionCost * 2 / 3
		}
		if est.Max > limit {
			t.Errorf("rule %s (%s) may cost %d", r.ID, r.Condition, est.Max)
		}
	}
}

func TestEvalErrorsRaiseOneAlertPerRule(t *testing.T) {
	e := newEngine(t, `
rules:
  - id: team-only
    severity: low
    condition: count >= 1 && labels["team"] == "red"
  - id: fine
    severity: low
    condition: count >= 1
`)
	a := src{pod("default", "a", "c", 1, map[string]string{"app": "a"}), 1}
	b := src{pod("default", "b", "c", 2, map[string]string{"app": "b"}), 2}
	var reports []alert.Alert
	for n := 1; n <= 3; n++ {
		out := e.Process(newBatch(t, n).count(a, "openat", "EACCES", 1).count(b, "openat", "EACCES", 1).get())
		for _, al := range out {
			if al.RuleID == EvalErrorRuleID {
				reports = append(reports, al)
			}
		}
	}
	if len(reports) != 1 {
		t.Fatalf("%d error reports over 3 intervals, want 1 (cooldown 5m): %v", len(reports), ruleIDs(reports))
	}
	r := reports[0]
	if r.Revision != 1 || r.Total != 2 || r.Node != "node-1" || !r.Host || r.FirstSeen != at(1) ||
		!strings.Contains(r.Message, "rule team-only (test.yaml:3) failed 2 evaluations") ||
		!strings.Contains(r.Message, "no such key: team") {
		t.Fatalf("first report: %+v", r)
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.EvalErrors != 6 {
		t.Fatalf("stats count %d evaluation errors, want 6", s.EvalErrors)
	}
	if got := e.EvalErrorsByRule(); len(got) != 1 || got["team-only"] != 6 {
		t.Fatalf("errors by rule: %v", got)
	}
	var flushed []alert.Alert
	for _, al := range e.Flush() {
		if al.RuleID == EvalErrorRuleID {
			flushed = append(flushed, al)
		}
	}
	if len(flushed) != 1 || flushed[0].ID != r.ID || flushed[0].Revision != 2 || flushed[0].Total != 6 ||
		flushed[0].LastSeen != at(3) {
		t.Fatalf("flush emitted %+v, want the same report at revision 2 with 6 errors", flushed)
	}
}

// A pod with more labels than the estimate assumed makes an evaluation
// pass the limit at run time: it stops and counts as an error.
func TestRuntimeCostLimitStopsEvaluation(t *testing.T) {
	e := newEngine(t, `
rules:
  - id: label-scan
    severity: low
    condition: count >= 1 && labels.exists(k, labels[k].contains("zzz"))
`)
	// contains costs a tenth of the string's length: 500 labels of 10 000
	// characters cost about 500 000.
	labels := map[string]string{}
	long := strings.Repeat("v", 10_000)
	for i := range 500 {
		labels[fmt.Sprint("k", i)] = long
	}
	s := src{pod("default", "many-labels", "c", 1, labels), 1}
	out := e.Process(newBatch(t, 1).count(s, "openat", "EACCES", 1).get())
	if len(out) != 1 || out[0].RuleID != EvalErrorRuleID || !strings.Contains(out[0].Message, "cost limit") {
		t.Fatalf("alerts %+v, want one error report for the cost limit", out)
	}
	if got := e.EvalErrorsByRule()["label-scan"]; got != 1 {
		t.Fatalf("label-scan errors: %d", got)
	}
}

// A variable without an entry in varSizes (one added to the environment
// later) gets the default sizes: one loop over it is allowed.
func TestDefaultSizesAllowOneLoop(t *testing.T) {
	env, err := celEnv()
	if err != nil {
		t.Fatal(err)
	}
	env, err = env.Extend(cel.Variable("things", cel.ListType(cel.MapType(cel.StringType, cel.StringType))))
	if err != nil {
		t.Fatal(err)
	}
	for cond, ok := range map[string]bool{
		`things.exists(t, t["name"].contains("x"))`:                                   true,
		`things.exists(t, things.exists(u, t["name"].matches(u["name"] + t["arg"])))`: false,
	} {
		checked, iss := env.Compile(cond)
		if iss.Err() != nil {
			t.Fatal(iss.Err())
		}
		if got := checkCost(env, checked) == nil; got != ok {
			t.Errorf("%s: accepted %v, want %v", cond, got, ok)
		}
	}
}
