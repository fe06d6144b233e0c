package kube

import (
	"slices"
	"strings"
)

// LabelFilter chooses the pod labels kept for rules and alerts: a label is
// kept when its key is one of Keys or starts with one of Prefixes.
type LabelFilter struct {
	Keys     []string
	Prefixes []string
}

// DefaultLabelFilter keeps the recommended app.kubernetes.io/ labels and the
// conventional keys that name an application, its part and its owner.
func DefaultLabelFilter() LabelFilter {
	return LabelFilter{
		Keys:     []string{"app", "k8s-app", "component", "tier", "version", "release", "team", "env", "environment"},
		Prefixes: []string{"app.kubernetes.io/"},
	}
}

// With returns f that also keeps keys, e.g. the keys a scope's label
// selector reads, which must survive the transform for the scope to match.
func (f LabelFilter) With(keys ...string) LabelFilter {
	out := LabelFilter{Keys: slices.Clone(f.Keys), Prefixes: slices.Clone(f.Prefixes)}
	for _, k := range keys {
		if !slices.Contains(out.Keys, k) {
			out.Keys = append(out.Keys, k)
		}
	}
	return out
}

// Keep tells whether the label key is kept.
func (f LabelFilter) Keep(key string) bool {
	if slices.Contains(f.Keys, key) {
		return true
	}
	for _, p := range f.Prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// apply returns the kept labels of in, nil when none are.
func (f LabelFilter) apply(in map[string]string) map[string]string {
	var out map[string]string
	for k, v := range in {
		if f.Keep(k) {
			if out == nil {
				out = make(map[string]string, 4)
			}
			out[k] = v
		}
	}
	return out
}
