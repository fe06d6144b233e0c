package rules

import (
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
)

// MaxConditionCost bounds what one evaluation of a condition may cost, in
// CEL cost units (about one per operation, more for string and regex work
// in proportion to their sizes). A condition is evaluated for every active
// key every interval, so one rule that walks comms or labels in nested
// loops would stall the whole engine: conditions whose worst case, as
// estimated at load time from the bounds below, is over the limit are
// rejected, and an evaluation that passes it at run time (a pod with more
// labels than assumed) stops there and counts as an evaluation error.
// The count-only rules of the default pack cost under 20; the rules over
// records loop once over at most maxEvalRecords records with a regexp or a
// list test of each path (up to about 130 000). The limit leaves room for
// one comprehension over records, syscalls or comms with string work in
// it, not for nested ones.
const MaxConditionCost = 250_000

// varSizes are the largest sizes the cost estimate assumes for the
// variables: list and map entries, and string lengths (path "@items",
// "@keys", "@values" for elements). Where nothing bounds a value hard (pod
// labels), the size is a generous typical one and the runtime limit
// catches the rest.
var varSizes = map[string]uint64{
	varComms:                          64,   // 4x the default MaxProcesses
	varComms + ".@items":              16,   // TASK_COMM_LEN
	varSyscalls:                       1024, // native and compat syscall tables
	varSyscalls + ".@keys":            32,
	varErrnos:                         256,
	varErrnos + ".@keys":              32,
	varDuration:                       uint64(len(durationKeys)),
	varDuration + ".@keys":            8,
	varLabels:                         64,
	varLabels + ".@keys":              317, // prefix (253) + "/" + name (63)
	varLabels + ".@values":            63,
	varRecords:                        maxEvalRecords,
	varRecords + ".@items.path":       256, // sensor.PathMax
	varRecords + ".@items.path2":      256,
	varRecords + ".@items.name":       255,
	varRecords + ".@items.comm":       16,
	varRecords + ".@items.addr":       108, // a unix socket path
	varRecords + ".@items.args":       6,   // six argument registers
	varRecords + ".@items.args.@keys": 32,
	varNamespace:                      63,
	varPod:                            253,
	varContainer:                      63,
	varComm:                           16,
	varNode:                           253,
}

// Sizes assumed for variables (and their fields) without an entry in
// varSizes, so that a variable added to the environment without one is
// bounded rather than taken as unbounded, which would reject every
// condition that reads it. They allow one loop with string work in it;
// give a new variable its own entries when it can be larger.
const (
	defaultCollectionSize = 64
	defaultStringSize     = 256
)

// sizeEstimator tells the CEL cost estimator how large variables get.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	path := n.Path()
	if len(path) == 0 {
		return nil
	}
	key := path[0]
	for _, p := range path[1:] {
		key += "." + p
	}
	if size, ok := varSizes[key]; ok {
		return &checker.SizeEstimate{Min: 0, Max: size}
	}
	switch n.Type().Kind() {
	case types.ListKind, types.MapKind:
		return &checker.SizeEstimate{Min: 0, Max: defaultCollectionSize}
	case types.StringKind, types.BytesKind:
		return &checker.SizeEstimate{Min: 0, Max: defaultStringSize}
	}
	return nil
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// checkCost rejects a condition whose estimated worst case is over
// MaxConditionCost.
func checkCost(env *cel.Env, checked *cel.Ast) *condError {
	est, err := env.EstimateCost(checked, sizeEstimator{})
	if err != nil {
		return &condError{1, 0, fmt.Sprintf("estimate cost: %v", err)}
	}
	if est.Max > MaxConditionCost {
		line, col := outerLoop(checked)
		return &condError{line, col, fmt.Sprintf("%s, over the limit of %d: "+
			"avoid nested loops (exists, all, map, filter) over comms, syscalls, errnos or labels", costString(est.Max), MaxConditionCost)}
	}
	return nil
}

// outerLoop locates the first outermost comprehension (exists, all, map,
// filter), where the cost of nested loops starts; or the condition's start.
func outerLoop(checked *cel.Ast) (line, col int) {
	native := checked.NativeRep()
	line = 1
	found := false
	ast.PreOrderVisit(native.Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		if found || e.Kind() != ast.ComprehensionKind {
			return
		}
		found = true
		loc := native.SourceInfo().GetStartLocation(e.ID())
		if loc.Line() > 0 {
			line, col = loc.Line(), loc.Column()
		}
	}))
	return line, col
}

// costString says what a cost estimate is; the estimator's sums saturate
// at the largest uint64 when a size is unknown.
func costString(c uint64) string {
	if c >= 1<<63 {
		return "its cost per evaluation has no bound"
	}
	return fmt.Sprintf("it may cost up to %d per evaluation", c)
}

// costLimit is the program option that stops an evaluation past the limit.
func costLimit() cel.ProgramOption { return cel.CostLimit(MaxConditionCost) }
