package rules

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"

	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

// Variables a condition can use. Everything counted comes from the kernel's
// exact counts; comms and pids come from the sampled records and are a lower
// bound of what ran.
const (
	varCount            = "count"             // int: failures in the window
	varRate             = "rate"              // double: count per second of window
	varWindowSeconds    = "window_seconds"    // double: the window as evaluated (rounded up to intervals)
	varIntervals        = "intervals"         // int: intervals in the window with failures
	varDistinctSyscalls = "distinct_syscalls" // int
	varDistinctErrnos   = "distinct_errnos"   // int
	varSyscalls         = "syscalls"          // map(string, int): failures per syscall name
	varErrnos           = "errnos"            // map(string, int): failures per errno name
	varComms            = "comms"             // list(string): distinct comms in sampled records
	varDistinctComms    = "distinct_comms"    // int
	varDistinctPIDs     = "distinct_pids"     // int
	varDuration         = "duration"          // map(string, int): count, p50_ns, p90_ns, p99_ns, max_ns
	varNamespace        = "pod_namespace"     // string ("namespace" is reserved in CEL)
	varPod              = "pod"               // string
	varContainer        = "container"         // string
	varComm             = "comm"              // string: the process key's comm (group_by process)
	varNode             = "node"              // string
	varHost             = "host"              // bool: the key is outside any pod
	varLabels           = "labels"            // map(string, string): pod labels
	varRecords          = "records"           // list(Record): the window's sampled records, newest first
	fnGlob              = "glob"              // glob(string, pattern) bool
	fnHasFlag           = "has_flag"          // has_flag(value, flags) bool: every bit of flags is set (CEL has no &)
)

// durationKeys are the fields of the duration variable.
var durationKeys = []string{"count", "p50_ns", "p90_ns", "p99_ns", "max_ns"}

// recordType is the CEL type of Record, named rules.Record.
var recordType = cel.ObjectType("rules.Record")

var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	intT, strT := cel.IntType, cel.StringType
	return cel.NewEnv(
		ext.NativeTypes(reflect.TypeFor[Record](), ext.ParseStructTags(true)),
		// distinct(), so that "two different tools" is one pass, not a
		// nested loop over records.
		ext.Lists(ext.ListsVersion(2)),
		cel.Variable(varRecords, cel.ListType(recordType)),
		cel.Function(fnGlob, cel.Overload("glob_string_string", []*cel.Type{strT, strT}, cel.BoolType,
			cel.BinaryBinding(func(s, pattern ref.Val) ref.Val {
				str, ok1 := s.(types.String)
				pat, ok2 := pattern.(types.String)
				if !ok1 || !ok2 {
					return types.NewErr("glob takes two strings")
				}
				g, err := compileGlob(string(pat))
				if err != nil {
					return types.NewErr("%v", err)
				}
				return types.Bool(g.Match(string(str)))
			}))),
		cel.Function(fnHasFlag, cel.Overload("has_flag_int_int", []*cel.Type{intT, intT}, cel.BoolType,
			cel.BinaryBinding(func(v, f ref.Val) ref.Val {
				x, ok1 := v.(types.Int)
				m, ok2 := f.(types.Int)
				if !ok1 || !ok2 {
					return types.NewErr("has_flag takes two ints")
				}
				return types.Bool(x&m == m)
			}))),
		cel.CrossTypeNumericComparisons(true),
		cel.Variable(varCount, intT),
		cel.Variable(varRate, cel.DoubleType),
		cel.Variable(varWindowSeconds, cel.DoubleType),
		cel.Variable(varIntervals, intT),
		cel.Variable(varDistinctSyscalls, intT),
		cel.Variable(varDistinctErrnos, intT),
		cel.Variable(varSyscalls, cel.MapType(strT, intT)),
		cel.Variable(varErrnos, cel.MapType(strT, intT)),
		cel.Variable(varComms, cel.ListType(strT)),
		cel.Variable(varDistinctComms, intT),
		cel.Variable(varDistinctPIDs, intT),
		cel.Variable(varDuration, cel.MapType(strT, intT)),
		cel.Variable(varNamespace, strT),
		cel.Variable(varPod, strT),
		cel.Variable(varContainer, strT),
		cel.Variable(varComm, strT),
		cel.Variable(varNode, strT),
		cel.Variable(varHost, cel.BoolType),
		cel.Variable(varLabels, cel.MapType(strT, strT)),
	)
})

// bound is a necessary condition on the count found in a condition:
// variable op literal (count >= 50), or the and/or of such bounds.
type bound struct {
	op       string // ">=", ">", "==" for a leaf; "and", "or"; "" for no bound
	variable string
	value    float64
	kids     []bound
}

// condition is a compiled CEL condition.
type condition struct {
	prg cel.Program
	// floor is a necessary condition that implies a minimum count; the
	// engine skips CEL entirely for keys below it, which keeps evaluation
	// cheap when most keys see a few benign failures.
	floor bound
	// sysKeys and errnoKeys are the literal map keys the condition reads
	// (syscalls["openat"]); the engine sets them to 0 when absent so that a
	// rule need not guard each lookup with "in".
	sysKeys, errnoKeys []string
	usesDuration       bool
	usesLabels         bool
	usesRecords        bool
}

type condError struct {
	line, col int // 1-based line, 0-based column in the expression
	msg       string
}

func compileCondition(src string) (*condition, []condError) {
	env, err := celEnv()
	if err != nil {
		return nil, []condError{{1, 0, fmt.Sprintf("cel environment: %v", err)}}
	}
	checked, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		var out []condError
		for _, e := range iss.Errors() {
			// The checker names its (unused) container; that only confuses.
			msg := strings.TrimSuffix(e.Message, " (in container '')")
			// Some errors (recursion limit, empty input) have no location
			// (-1): they are the whole condition's.
			out = append(out, condError{max(e.Location.Line(), 1), max(e.Location.Column(), 0), msg})
		}
		return nil, out
	}
	if !checked.OutputType().IsExactType(cel.BoolType) {
		return nil, []condError{{1, 0, fmt.Sprintf("must be a boolean expression, not %s", checked.OutputType())}}
	}
	c := &condition{}
	native := checked.NativeRep()
	info := native.SourceInfo()
	var errs []condError
	errAt := func(id int64, format string, args ...any) {
		loc := info.GetStartLocation(id)
		errs = append(errs, condError{loc.Line(), loc.Column(), fmt.Sprintf(format, args...)})
	}
	// checkKey validates a literal key of syscalls[...], errnos[...] or
	// duration[...] and records it.
	checkKey := func(id int64, mapName, key string) {
		switch mapName {
		case varSyscalls:
			arch := syscalls.Native()
			if _, ok := syscalls.Lookup(arch, key, false); ok {
				c.sysKeys = appendNew(c.sysKeys, strings.ToLower(key))
			} else if _, ok := syscalls.Lookup(arch, key, true); ok {
				c.sysKeys = appendNew(c.sysKeys, strings.ToLower(key))
			} else if knownElsewhere(key) {
				c.sysKeys = appendNew(c.sysKeys, strings.ToLower(key)) // always 0 here
			} else {
				_, err := syscalls.ParseSyscall(arch, key, false)
				errAt(id, "syscalls[%q]: %v", key, err)
			}
		case varErrnos:
			e, err := syscalls.ParseErrno(key)
			if err != nil {
				errAt(id, "errnos[%q]: %v", key, err)
				return
			}
			// The map is keyed by canonical name: EWOULDBLOCK reads EAGAIN.
			if name := syscalls.ErrnoName(e); name != key {
				errAt(id, "errnos[%q]: write the canonical name %q", key, name)
				return
			}
			c.errnoKeys = appendNew(c.errnoKeys, key)
		case varDuration:
			if !containsStr(durationKeys, key) {
				msg := fmt.Sprintf("duration has no field %q (fields: %s)", key, strings.Join(durationKeys, ", "))
				if s := syscalls.Suggest(key, durationKeys); s != "" {
					msg = fmt.Sprintf("duration has no field %q (did you mean %q?)", key, s)
				}
				errAt(id, "%s", msg)
			}
		}
	}
	ast.PreOrderVisit(native.Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		switch e.Kind() {
		case ast.IdentKind:
			switch e.AsIdent() {
			case varDuration:
				c.usesDuration = true
			case varLabels:
				c.usesLabels = true
			case varRecords:
				c.usesRecords = true
			}
		case ast.SelectKind:
			s := e.AsSelect()
			if op := s.Operand(); op.Kind() == ast.IdentKind {
				checkKey(e.ID(), op.AsIdent(), s.FieldName())
			}
		case ast.CallKind:
			call := e.AsCall()
			if call.FunctionName() == fnGlob && len(call.Args()) == 2 {
				// A literal pattern is checked now, not at the first match.
				if p := call.Args()[1]; p.Kind() == ast.LiteralKind {
					if pat, ok := p.AsLiteral().(types.String); ok {
						if _, err := compileGlob(string(pat)); err != nil {
							errAt(p.ID(), "%v", err)
						}
					}
				}
				return
			}
			if call.FunctionName() != "_[_]" || len(call.Args()) != 2 {
				return
			}
			m, k := call.Args()[0], call.Args()[1]
			if m.Kind() != ast.IdentKind || k.Kind() != ast.LiteralKind {
				return
			}
			if key, ok := k.AsLiteral().(types.String); ok {
				checkKey(k.ID(), m.AsIdent(), string(key))
			}
		}
	}))
	if len(errs) > 0 {
		return nil, errs
	}
	if ce := checkCost(env, checked); ce != nil {
		return nil, []condError{*ce}
	}
	c.floor = floorOf(native.Expr())
	prg, err := env.Program(checked, cel.EvalOptions(cel.OptOptimize), costLimit())
	if err != nil {
		return nil, []condError{{1, 0, fmt.Sprintf("program: %v", err)}}
	}
	c.prg = prg
	return c, nil
}

// floorOf finds what an expression needs of the count. Both sides of an &&
// must hold, so the larger bound applies; one side of an || suffices, so the
// smaller; a comparison of a count-like variable with a literal is a bound;
// anything else bounds nothing.
func floorOf(e ast.Expr) bound {
	if e.Kind() != ast.CallKind {
		return bound{}
	}
	call := e.AsCall()
	args := call.Args()
	switch call.FunctionName() {
	case "_&&_", "_||_":
		op := "and"
		if call.FunctionName() == "_||_" {
			op = "or"
		}
		b := bound{op: op}
		for _, a := range args {
			b.kids = append(b.kids, floorOf(a))
		}
		return b
	}
	if len(args) != 2 {
		return bound{}
	}
	op := ""
	lhs, rhs := args[0], args[1]
	switch call.FunctionName() {
	case "_>=_":
		op = ">="
	case "_>_":
		op = ">"
	case "_==_":
		op = "=="
	case "_<=_": // literal <= x
		op, lhs, rhs = ">=", rhs, lhs
	case "_<_":
		op, lhs, rhs = ">", rhs, lhs
	default:
		return bound{}
	}
	name := countLike(lhs)
	if name == "" || rhs.Kind() != ast.LiteralKind {
		return bound{}
	}
	v, ok := number(rhs.AsLiteral())
	if !ok {
		return bound{}
	}
	return bound{op: op, variable: name, value: v}
}

// countLike names the variable an expression reads when that value can
// never exceed count: count itself, distinct syscalls/errnos and active
// intervals (each has at least one failure), one map entry, and rate.
func countLike(e ast.Expr) string {
	switch e.Kind() {
	case ast.IdentKind:
		switch n := e.AsIdent(); n {
		case varCount, varDistinctSyscalls, varDistinctErrnos, varIntervals, varRate:
			return n
		}
	case ast.CallKind:
		call := e.AsCall()
		if call.FunctionName() == "_[_]" && len(call.Args()) == 2 {
			if m := call.Args()[0]; m.Kind() == ast.IdentKind && (m.AsIdent() == varSyscalls || m.AsIdent() == varErrnos) {
				return "entry:" + m.AsIdent()
			}
		}
		// Distinct entries of one map sum to at most count.
		if call.FunctionName() == "_+_" && len(call.Args()) == 2 {
			a, b := countLike(call.Args()[0]), countLike(call.Args()[1])
			if a == b && strings.HasPrefix(a, "entry:") {
				return a
			}
		}
	case ast.SelectKind:
		if op := e.AsSelect().Operand(); op.Kind() == ast.IdentKind &&
			(op.AsIdent() == varSyscalls || op.AsIdent() == varErrnos) {
			return "entry:" + op.AsIdent()
		}
	}
	return ""
}

func number(v ref.Val) (float64, bool) {
	switch n := v.(type) {
	case types.Int:
		return float64(n), true
	case types.Uint:
		return float64(n), true
	case types.Double:
		return float64(n), true
	}
	return 0, false
}

// minCount is the smallest count for which the condition can be true, for
// a window of windowSeconds.
func (c *condition) minCount(windowSeconds float64) uint64 {
	return c.floor.min(windowSeconds)
}

func (b bound) min(windowSeconds float64) uint64 {
	switch b.op {
	case "and":
		var m uint64
		for _, k := range b.kids {
			m = max(m, k.min(windowSeconds))
		}
		return m
	case "or":
		m := uint64(math.MaxUint64)
		for _, k := range b.kids {
			m = min(m, k.min(windowSeconds))
		}
		return m
	case "":
		return 0
	}
	v := b.value
	if b.variable == varRate {
		v *= windowSeconds
	}
	var need float64
	switch b.op {
	case ">=", "==":
		need = math.Ceil(v - 1e-9)
	case ">":
		need = math.Floor(v+1e-9) + 1
	}
	if need <= 0 {
		return 0
	}
	return uint64(need)
}

func appendNew(s []string, v string) []string {
	if containsStr(s, v) {
		return s
	}
	return append(s, v)
}

func containsStr(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
