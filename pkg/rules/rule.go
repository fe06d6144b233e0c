package rules

import (
	"crypto/sha256"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/enrich"
	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

// Defaults for fields a rule leaves out.
const (
	DefaultWindow    = 10 * time.Second
	DefaultCooldown  = 5 * time.Minute
	DefaultGroupBy   = alert.GroupByContainer
	DefaultCondition = "count >= 1"
	// MaxWindow bounds the memory a rule's windows take: one bucket per
	// interval per key.
	MaxWindow = time.Hour
)

// Target says which processes a rule looks at.
type Target string

// Targets.
const (
	TargetAll  Target = "all"  // pods and host processes
	TargetPods Target = "pods" // only processes in a pod
	TargetHost Target = "host" // only processes outside any pod
)

// Rule is one compiled failure-pattern rule.
type Rule struct {
	ID          string
	Description string
	Severity    alert.Severity
	// Tags are MITRE ATT&CK technique IDs, e.g. T1611.
	Tags      []string
	Match     Match
	Scope     Scope
	Window    time.Duration
	GroupBy   alert.GroupBy
	Cooldown  time.Duration
	Condition string

	// File and Line locate the rule's definition.
	File string
	Line int

	sys         sysMatch
	errnos      errnoSet
	scope       compiledScope
	cond        *condition
	label       string // what the message calls the matched syscalls: "file syscalls"
	fingerprint [sha256.Size]byte
}

// Match is which failures a rule counts, as written.
type Match struct {
	// Syscalls are names ("openat") or groups ("@file"); empty is all.
	Syscalls        []string
	ExcludeSyscalls []string
	// Errnos are names ("EACCES"); empty is every failure.
	Errnos        []string
	ExcludeErrnos []string
}

// Scope is which workloads a rule looks at, as written. Name lists accept
// shell globs ("kube-*").
type Scope struct {
	Namespaces        []string
	ExcludeNamespaces []string
	// PodSelector is a Kubernetes label selector: "app=web,tier!=db".
	PodSelector       string
	Containers        []string
	ExcludeContainers []string
	Comms             []string
	ExcludeComms      []string
	Target            Target
}

// sysKey is a syscall number in one table (native or 32-bit compat).
type sysKey struct {
	nr     int32
	compat bool
}

// sysMatch is the compiled syscall filter; all means no filter.
type sysMatch struct {
	all bool
	set map[sysKey]struct{}
}

func (m *sysMatch) has(k sysKey) bool {
	if m.all {
		return true
	}
	_, ok := m.set[k]
	return ok
}

// errnoSet is a bitset over 0..MaxErrno; errno 0 (success) is never in it.
type errnoSet [(syscalls.MaxErrno + 64) / 64]uint64

func (s *errnoSet) add(e uint16)      { s[e/64] |= 1 << (e % 64) }
func (s *errnoSet) del(e uint16)      { s[e/64] &^= 1 << (e % 64) }
func (s *errnoSet) has(e uint16) bool { return e <= syscalls.MaxErrno && s[e/64]&(1<<(e%64)) != 0 }

type compiledScope struct {
	any                 bool // false when the rule has no scope at all: skip checks
	namespaces, exclNS  []string
	selector            labels.Selector
	containers, exclCtr []string
	comms, exclComms    []string
	target              Target
}

// needsComm reports whether the scope filters on comm, which only the
// sampled records know.
func (s *compiledScope) needsComm() bool { return len(s.comms)+len(s.exclComms) > 0 }

// metaOK checks the parts of the scope a Meta decides. A nil Meta is an
// unenriched cgroup, treated as a host process.
func (s *compiledScope) metaOK(m *enrich.Meta) bool {
	host := m == nil || m.Host
	switch s.target {
	case TargetPods:
		if host {
			return false
		}
	case TargetHost:
		if !host {
			return false
		}
	}
	if len(s.namespaces) > 0 || len(s.exclNS) > 0 || s.selector != nil ||
		len(s.containers) > 0 || len(s.exclCtr) > 0 {
		// Pod-level scopes say nothing about host processes: they do not
		// match them.
		if host {
			return false
		}
		if !globIn(s.namespaces, m.Namespace, true) || globIn(s.exclNS, m.Namespace, false) {
			return false
		}
		if s.selector != nil && !s.selector.Matches(labels.Set(m.Labels)) {
			return false
		}
		if !globIn(s.containers, m.Container, true) || globIn(s.exclCtr, m.Container, false) {
			return false
		}
	}
	return true
}

func (s *compiledScope) commOK(comm string) bool {
	return globIn(s.comms, comm, true) && !globIn(s.exclComms, comm, false)
}

// globIn reports whether v matches any pattern; empty is ifEmpty.
func globIn(patterns []string, v string, ifEmpty bool) bool {
	if len(patterns) == 0 {
		return ifEmpty
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, v); ok {
			return true
		}
	}
	return false
}

var (
	ruleIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	mitreRe  = regexp.MustCompile(`^T[0-9]{4}(\.[0-9]{3})?$`)
)

var ruleFields = []string{"id", "description", "severity", "tags", "match", "scope",
	"window", "group_by", "cooldown", "condition", "enabled"}

// parseRule validates one rule mapping and compiles it; nil when it has
// errors (all of them recorded) or is disabled. Each field has its own
// parser; they run in this order so errors are reported in it.
func (l *loader) parseRule(file string, n *yaml.Node) *Rule {
	nerr := len(l.errs)
	r := &Rule{File: file, Line: n.Line, Window: DefaultWindow, Cooldown: DefaultCooldown,
		GroupBy: DefaultGroupBy, Condition: DefaultCondition}
	f := l.mapping(file, n, peekID(n), "rule", ruleFields)
	if f == nil {
		return nil
	}
	l.parseID(file, n, f, r)
	id := r.ID
	enabled := l.parseEnabled(file, f, id)
	if d, ok := f["description"]; ok {
		r.Description, _ = l.scalar(file, d, id)
		r.Description = strings.TrimSpace(r.Description)
	}
	l.parseSeverity(file, n, f, r)
	if t, ok := f["tags"]; ok {
		r.Tags = l.parseTags(file, t, id)
	}
	if w, ok := f["window"]; ok {
		r.Window = l.duration(file, w, id, time.Millisecond, MaxWindow)
	}
	if c, ok := f["cooldown"]; ok {
		r.Cooldown = l.duration(file, c, id, 0, 24*time.Hour)
	}
	if g, ok := f["group_by"]; ok {
		l.parseGroupBy(file, g, r)
	}
	matchAll(r)
	if m, ok := f["match"]; ok {
		l.parseMatch(file, m.value, r)
	}
	r.scope.target = TargetAll
	r.Scope.Target = TargetAll
	if s, ok := f["scope"]; ok {
		l.parseScope(file, s.value, r)
	}
	l.parseCondition(file, n, f, r)
	if len(l.errs) > nerr || !enabled {
		return nil
	}
	r.label = matchLabel(r)
	canon, _ := yaml.Marshal(n)
	r.fingerprint = sha256.Sum256(canon)
	return r
}

// parseID reads the rule's id, which every rule must have.
func (l *loader) parseID(file string, n *yaml.Node, f map[string]field, r *Rule) {
	id, ok := f["id"]
	if !ok {
		l.at(file, n, "", "rule has no id")
		return
	}
	if v, ok := l.scalar(file, id, ""); ok {
		if !ruleIDRe.MatchString(v) {
			l.at(file, id.value, "", "rule id %q must be lowercase letters, digits, '.', '_' or '-' (at most 63)", v)
		}
		r.ID = v
	}
}

// parseEnabled reads enabled (default true).
func (l *loader) parseEnabled(file string, f map[string]field, id string) bool {
	e, ok := f["enabled"]
	if !ok {
		return true
	}
	v, ok := l.scalar(file, e, id)
	if !ok {
		return true
	}
	switch strings.ToLower(v) {
	case "true", "yes", "on":
	case "false", "no", "off":
		return false
	default:
		l.at(file, e.value, id, "enabled must be true or false, not %q", v)
	}
	return true
}

// parseSeverity reads the severity, which every rule must have.
func (l *loader) parseSeverity(file string, n *yaml.Node, f map[string]field, r *Rule) {
	s, ok := f["severity"]
	if !ok {
		l.at(file, n, r.ID, "rule has no severity (want one of info, low, medium, high, critical)")
		return
	}
	if v, ok := l.scalar(file, s, r.ID); ok {
		sev, err := alert.ParseSeverity(v)
		if err != nil {
			l.at(file, s.value, r.ID, "%v", err)
		}
		r.Severity = sev
	}
}

// parseTags reads the MITRE ATT&CK technique ids of tags.
func (l *loader) parseTags(file string, t field, id string) []string {
	var tags []string
	nodes, _ := l.list(file, t, id)
	for _, tn := range nodes {
		if !mitreRe.MatchString(tn.Value) {
			l.at(file, tn, id, "tag %q is not a MITRE ATT&CK technique id like T1611 or T1548.001", tn.Value)
			continue
		}
		tags = append(tags, tn.Value)
	}
	return tags
}

// parseGroupBy reads group_by.
func (l *loader) parseGroupBy(file string, g field, r *Rule) {
	v, ok := l.scalar(file, g, r.ID)
	if !ok {
		return
	}
	switch gb := alert.GroupBy(strings.ToLower(v)); gb {
	case alert.GroupByPod, alert.GroupByContainer, alert.GroupByProcess, alert.GroupByNode:
		r.GroupBy = gb
	default:
		l.at(file, g.value, r.ID, "group_by %q is not one of pod, container, process, node", v)
	}
}

// matchAll is what a rule matches before its match field narrows it: every
// syscall and every failure errno. ERESTARTSYS and the other
// kernel-internal codes are interrupted waits, not failures user space
// sees; a rule gets them only by name.
func matchAll(r *Rule) {
	r.sys.all = true
	for i := range r.errnos {
		r.errnos[i] = ^uint64(0)
	}
	r.errnos.del(0)
	for e := uint16(1); e <= syscalls.MaxErrno; e++ {
		if syscalls.IsKernelInternal(e) {
			r.errnos.del(e)
		}
	}
}

// parseCondition reads and compiles the condition (DefaultCondition when
// unset), reporting CEL errors at their place in the file.
func (l *loader) parseCondition(file string, n *yaml.Node, f map[string]field, r *Rule) {
	id := r.ID
	condNode := n
	if c, ok := f["condition"]; ok {
		if v, ok := l.scalar(file, c, id); ok {
			r.Condition = strings.TrimSpace(v)
			condNode = c.value
		}
	}
	cond, errs := compileCondition(r.Condition)
	for _, ce := range errs {
		line, col := condPosition(condNode, ce.line, ce.col)
		l.errs = append(l.errs, &Error{File: file, Line: line, Column: col, Rule: id,
			Msg: "condition: " + ce.msg})
	}
	r.cond = cond
	if cond != nil && cond.usesDuration && (r.GroupBy == alert.GroupByProcess || r.scope.needsComm()) {
		l.at(file, condNode, id, "condition reads duration, but latency histograms are per cgroup, not per process: use group_by container, pod or node and no comm scope")
	}
}

// peekID returns the id of a rule mapping, so that errors found before the
// id field is parsed can still name the rule.
func peekID(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "id" && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}

// condPosition maps a position inside a CEL expression (1-based line,
// 0-based column) to the file. For a block scalar ("condition: |") the text
// starts on the next line at the block's indentation, which yaml reports as
// the node's column for plain scalars only; the column is then best effort.
func condPosition(n *yaml.Node, line, col int) (int, int) {
	if n == nil {
		return 0, 0
	}
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		return n.Line + line, 0
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line == 1 {
			return n.Line, n.Column + 1 + col
		}
		return n.Line + line - 1, 0
	}
	if line == 1 {
		return n.Line, n.Column + col
	}
	return n.Line + line - 1, 0
}

func (l *loader) duration(file string, f field, id string, minD, maxD time.Duration) time.Duration {
	v, ok := l.scalar(file, f, id)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		l.at(file, f.value, id, "%s %q is not a duration like 10s, 1m or 500ms", f.key.Value, v)
	case d < minD:
		l.at(file, f.value, id, "%s %s is shorter than %v", f.key.Value, v, minD)
	case d > maxD:
		l.at(file, f.value, id, "%s %s is longer than the maximum %v", f.key.Value, v, maxD)
	}
	return d
}

var matchFields = []string{"syscalls", "exclude_syscalls", "errnos", "exclude_errnos"}

func (l *loader) parseMatch(file string, n *yaml.Node, r *Rule) {
	f := l.mapping(file, n, r.ID, "match", matchFields)
	if f == nil {
		return
	}
	arch := syscalls.Native()
	resolve := func(name string) (keys []sysKey, groupName string, ok bool) {
		name = strings.TrimSpace(name)
		if g, isGroup := strings.CutPrefix(name, "@"); isGroup {
			if _, ok := syscalls.Group(g); !ok {
				msg := fmt.Sprintf("unknown syscall group %q (groups: %s)", name, strings.Join(atGroups(), ", "))
				if s := syscalls.Suggest(name, atGroups()); s != "" {
					msg = fmt.Sprintf("unknown syscall group %q (did you mean %q?)", name, s)
				}
				return nil, msg, false
			}
			for _, compat := range []bool{false, true} {
				for _, nr := range syscalls.GroupNumbers(arch, g, compat) {
					keys = append(keys, sysKey{int32(nr), compat})
				}
			}
			return keys, strings.ToLower(g), true
		}
		nr, nerr := syscalls.ParseSyscall(arch, name, false)
		if nerr == nil {
			keys = append(keys, sysKey{int32(nr), false})
		}
		if cnr, ok := syscalls.Lookup(arch, name, true); ok {
			keys = append(keys, sysKey{int32(cnr), true})
		}
		if len(keys) == 0 && knownElsewhere(name) {
			// A portable pack names syscalls of other architectures (iopl,
			// setuid32); here they simply never match.
			return nil, "", true
		}
		if len(keys) == 0 {
			if _, isGroup := syscalls.Group(name); isGroup {
				return nil, fmt.Sprintf("%q is a syscall group, not a syscall: write \"@%s\"", name, strings.ToLower(name)), false
			}
			return nil, nerr.Error(), false
		}
		return keys, "", true
	}
	if s, ok := f["syscalls"]; ok {
		nodes, _ := l.list(file, s, r.ID)
		if len(nodes) > 0 {
			r.sys = sysMatch{set: map[sysKey]struct{}{}}
		}
		for _, sn := range nodes {
			keys, msg, ok := resolve(sn.Value)
			if !ok {
				l.at(file, sn, r.ID, "%s", msg)
				continue
			}
			for _, k := range keys {
				r.sys.set[k] = struct{}{}
			}
			r.Match.Syscalls = append(r.Match.Syscalls, sn.Value)
		}
	}
	if s, ok := f["exclude_syscalls"]; ok {
		nodes, _ := l.list(file, s, r.ID)
		if len(nodes) > 0 && r.sys.all {
			// Excluding from "all" needs the full set written out.
			r.sys = sysMatch{set: map[sysKey]struct{}{}}
			for _, compat := range []bool{false, true} {
				for nr := range syscalls.MaxNr(arch, compat) {
					r.sys.set[sysKey{int32(nr), compat}] = struct{}{}
				}
			}
		}
		for _, sn := range nodes {
			keys, msg, ok := resolve(sn.Value)
			if !ok {
				l.at(file, sn, r.ID, "%s", msg)
				continue
			}
			for _, k := range keys {
				delete(r.sys.set, k)
			}
			r.Match.ExcludeSyscalls = append(r.Match.ExcludeSyscalls, sn.Value)
		}
	}
	if s, ok := f["errnos"]; ok {
		nodes, _ := l.list(file, s, r.ID)
		if len(nodes) > 0 {
			r.errnos = errnoSet{}
		}
		for _, en := range nodes {
			e, err := syscalls.ParseErrno(en.Value)
			if err != nil {
				l.at(file, en, r.ID, "%v", err)
				continue
			}
			r.errnos.add(e)
			r.Match.Errnos = append(r.Match.Errnos, en.Value)
		}
	}
	if s, ok := f["exclude_errnos"]; ok {
		nodes, _ := l.list(file, s, r.ID)
		for _, en := range nodes {
			e, err := syscalls.ParseErrno(en.Value)
			if err != nil {
				l.at(file, en, r.ID, "%v", err)
				continue
			}
			r.errnos.del(e)
			r.Match.ExcludeErrnos = append(r.Match.ExcludeErrnos, en.Value)
		}
	}
}

// knownElsewhere reports whether name is a syscall of any architecture the
// sensor supports.
func knownElsewhere(name string) bool {
	for _, a := range []syscalls.Arch{syscalls.AMD64, syscalls.ARM64} {
		for _, compat := range []bool{false, true} {
			if _, ok := syscalls.Lookup(a, name, compat); ok {
				return true
			}
		}
	}
	return false
}

func atGroups() []string {
	gs := syscalls.Groups()
	for i, g := range gs {
		gs[i] = "@" + g
	}
	return gs
}

var scopeFields = []string{"namespaces", "exclude_namespaces", "pod_selector", "containers",
	"exclude_containers", "comms", "exclude_comms", "target"}

func (l *loader) parseScope(file string, n *yaml.Node, r *Rule) {
	f := l.mapping(file, n, r.ID, "scope", scopeFields)
	if f == nil {
		return
	}
	s := &r.scope
	globs := func(key string) []string {
		fl, ok := f[key]
		if !ok {
			return nil
		}
		nodes, _ := l.list(file, fl, r.ID)
		var out []string
		for _, gn := range nodes {
			if _, err := path.Match(gn.Value, ""); err != nil {
				l.at(file, gn, r.ID, "%s pattern %q: %v", key, gn.Value, err)
				continue
			}
			out = append(out, gn.Value)
		}
		if len(out) > 0 {
			s.any = true
		}
		return out
	}
	s.namespaces, s.exclNS = globs("namespaces"), globs("exclude_namespaces")
	s.containers, s.exclCtr = globs("containers"), globs("exclude_containers")
	s.comms, s.exclComms = globs("comms"), globs("exclude_comms")
	if ps, ok := f["pod_selector"]; ok {
		if v, ok := l.scalar(file, ps, r.ID); ok && strings.TrimSpace(v) != "" {
			sel, err := labels.Parse(v)
			if err != nil {
				l.at(file, ps.value, r.ID, "pod_selector %q: %v", v, err)
			} else {
				s.selector, s.any = sel, true
			}
			r.Scope.PodSelector = v
		}
	}
	if t, ok := f["target"]; ok {
		if v, ok := l.scalar(file, t, r.ID); ok {
			switch tg := Target(strings.ToLower(v)); tg {
			case TargetAll, TargetPods, TargetHost:
				s.target = tg
				s.any = s.any || tg != TargetAll
			default:
				l.at(file, t.value, r.ID, "target %q is not one of all, pods, host", v)
			}
		}
	}
	r.Scope = Scope{
		Namespaces: s.namespaces, ExcludeNamespaces: s.exclNS, PodSelector: r.Scope.PodSelector,
		Containers: s.containers, ExcludeContainers: s.exclCtr,
		Comms: s.comms, ExcludeComms: s.exclComms, Target: s.target,
	}
}

// matchLabel is what the alert message calls the failures a rule counts:
// "file syscalls" for a rule over one group, "syscalls" otherwise.
func matchLabel(r *Rule) string {
	if len(r.Match.Syscalls) == 1 && strings.HasPrefix(r.Match.Syscalls[0], "@") {
		return strings.ToLower(strings.TrimPrefix(r.Match.Syscalls[0], "@")) + " syscalls"
	}
	return "syscalls"
}

// sortedKeys is a helper for stable output.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
