package rules

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/errnowatch/errnowatch/pkg/syscalls"
)

// RuleSet is a validated, compiled set of rules, ready for an Engine.
type RuleSet struct {
	Rules []*Rule
	// Files are the files the rules came from, in load order.
	Files []string
	// Digest is a SHA-256 over the files' names and contents; equal digests
	// mean an identical rule set (the watcher skips no-op reloads with it).
	Digest [sha256.Size]byte
}

// Rule returns the rule with the given ID, or nil.
func (rs *RuleSet) Rule(id string) *Rule {
	for _, r := range rs.Rules {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// Load reads, validates and compiles the rules in paths. Each path is a rule
// file or a directory; of a directory only the visible top-level *.yaml and
// *.yml files are read, in name order, following symlinks. That is exactly
// the view a Kubernetes ConfigMap mount gives: its "..data" symlink and
// "..2026_..." timestamped directories are hidden and skipped, and each key is
// a symlink to the current version of the file.
//
// On any problem Load returns a nil RuleSet and an Errors listing every
// problem found as "file:line:col: message".
func Load(paths ...string) (*RuleSet, error) {
	if len(paths) == 0 {
		return nil, errors.New("no rule path given: pass a rule file or directory")
	}
	l := newLoader()
	h := sha256.New()
	var files []string
	for _, p := range paths {
		found, err := ruleFiles(p)
		if err != nil {
			l.errs = append(l.errs, &Error{File: p, Msg: err.Error()})
			continue
		}
		files = append(files, found...)
	}
	for _, f := range files {
		data, err := readRuleFile(f)
		if err != nil {
			l.errs = append(l.errs, &Error{File: f, Msg: err.Error()})
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(data))
		h.Write(data)
		l.parseFile(f, data)
	}
	rs, err := l.finish()
	if err != nil {
		return nil, err
	}
	rs.Files = files
	copy(rs.Digest[:], h.Sum(nil))
	return rs, nil
}

// MaxRuleFileBytes bounds one rule file: a ConfigMap holds at most 1 MiB,
// and a bigger file is a mistake (or a device) that must not be read whole.
const MaxRuleFileBytes = 4 << 20

func readRuleFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxRuleFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(data) > MaxRuleFileBytes {
		return nil, fmt.Errorf("file is larger than %d bytes: split the rules over several files", MaxRuleFileBytes)
	}
	return data, nil
}

// Parse validates and compiles the rules in one file's contents; name is used
// in error positions only.
func Parse(name string, data []byte) (*RuleSet, error) {
	l := newLoader()
	l.parseFile(name, data)
	rs, err := l.finish()
	if err != nil {
		return nil, err
	}
	rs.Files = []string{name}
	rs.Digest = sha256.Sum256(data)
	return rs, nil
}

// ruleFiles expands one path into the rule files it names.
func ruleFiles(path string) ([]string, error) {
	st, err := os.Stat(path) // follows symlinks: a ConfigMap key is one
	if err != nil {
		return nil, fmt.Errorf("rule path: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("read rule directory: %w", err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !isRuleFile(name) {
			continue
		}
		full := filepath.Join(path, name)
		// A symlink (a ConfigMap key) counts when it points at a regular
		// file; a dangling one mid-swap is skipped rather than fatal.
		st, err := os.Stat(full)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("stat rule file: %w", err)
		}
		if st.Mode().IsRegular() {
			files = append(files, full)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("directory has no *.yaml or *.yml rule files")
	}
	return files, nil
}

func isRuleFile(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// loader accumulates rules and errors over all files of one Load.
type loader struct {
	errs  Errors
	rules []*Rule
	ids   map[string]*Rule
}

func newLoader() *loader { return &loader{ids: map[string]*Rule{}} }

func (l *loader) finish() (*RuleSet, error) {
	if len(l.errs) > 0 {
		slices.SortStableFunc(l.errs, func(a, b *Error) int {
			if a.File != b.File {
				return 0 // keep file load order
			}
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			return a.Column - b.Column
		})
		return nil, l.errs
	}
	return &RuleSet{Rules: l.rules}, nil
}

// at records an error at a YAML node.
func (l *loader) at(file string, n *yaml.Node, rule, format string, args ...any) {
	e := &Error{File: file, Rule: rule, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (l *loader) parseFile(file string, data []byte) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		e := &Error{File: file, Msg: err.Error()}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = m[2]
		}
		l.errs = append(l.errs, e)
		return
	}
	if len(bytes.TrimSpace(data)) == 0 || len(doc.Content) == 0 {
		l.errs = append(l.errs, &Error{File: file, Msg: "file is empty: want a top-level \"rules:\" list"})
		return
	}
	root := doc.Content[0]
	fields := l.mapping(file, root, "", "rule file", []string{"rules"})
	if fields == nil {
		return
	}
	list, ok := fields["rules"]
	if !ok {
		l.at(file, root, "", "missing top-level \"rules:\" list")
		return
	}
	if list.value.Kind != yaml.SequenceNode {
		l.at(file, list.value, "", "\"rules\" must be a list of rules")
		return
	}
	for _, n := range list.value.Content {
		if r := l.parseRule(file, n); r != nil {
			if prev, dup := l.ids[r.ID]; dup {
				l.at(file, n, r.ID, "duplicate rule id (first defined at %s:%d)", prev.File, prev.Line)
				continue
			}
			l.ids[r.ID] = r
			l.rules = append(l.rules, r)
		}
	}
}

// field is one key of a YAML mapping with its value.
type field struct{ key, value *yaml.Node }

// mapping checks that n is a mapping with only known keys, each once, and
// returns its fields; nil when n is not a mapping.
func (l *loader) mapping(file string, n *yaml.Node, rule, what string, known []string) map[string]field {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		l.at(file, n, rule, "%s must be a mapping", what)
		return nil
	}
	out := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		if !slices.Contains(known, k.Value) {
			msg := fmt.Sprintf("unknown field %q in %s", k.Value, what)
			if s := syscalls.Suggest(k.Value, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += fmt.Sprintf(" (known: %s)", strings.Join(known, ", "))
			}
			l.at(file, k, rule, "%s", msg)
			continue
		}
		if _, dup := out[k.Value]; dup {
			l.at(file, k, rule, "field %q given twice in %s", k.Value, what)
			continue
		}
		out[k.Value] = field{k, v}
	}
	return out
}

// scalar returns the value of a scalar field, reporting anything else.
func (l *loader) scalar(file string, f field, rule string) (string, bool) {
	if f.value.Kind != yaml.ScalarNode {
		l.at(file, f.value, rule, "%s must be a single value", f.key.Value)
		return "", false
	}
	return f.value.Value, true
}

// list returns the scalars of a list field; a single scalar is a list of
// one. Null (an empty value) is an empty list.
func (l *loader) list(file string, f field, rule string) ([]*yaml.Node, bool) {
	switch f.value.Kind {
	case yaml.ScalarNode:
		if f.value.Tag == "!!null" {
			return nil, true
		}
		return []*yaml.Node{f.value}, true
	case yaml.SequenceNode:
		ok := true
		for _, n := range f.value.Content {
			if n.Kind != yaml.ScalarNode {
				l.at(file, n, rule, "%s entries must be single values", f.key.Value)
				ok = false
			}
		}
		return f.value.Content, ok
	}
	l.at(file, f.value, rule, "%s must be a list", f.key.Value)
	return nil, false
}
