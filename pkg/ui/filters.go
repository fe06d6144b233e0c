package ui

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/store"
)

// ranges are the time ranges a page offers; "" is the default.
var ranges = []struct {
	Name string
	D    time.Duration
}{{"1h", time.Hour}, {"6h", 6 * time.Hour}, {"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

const defaultRange = "24h"

// filters is what a page shows, all from its URL: the URL is the state, so
// a page can be bookmarked and shared.
type filters struct {
	Namespace, Pod, Node, Rule string
	WorkloadKind, WorkloadName string
	Severity                   alert.Severity
	// Range is a preset (ranges) or "" when From/To were given.
	Range    string
	From, To time.Time
	Before   string // list paging: alerts before this ID
	Limit    int
	now      time.Time
}

var (
	ruleRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$`)
	kindRe   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{0,62}$`)
	beforeRe = regexp.MustCompile(`^[0-9A-Za-z]{1,64}$`)
)

// parseFilters reads and checks a page's filters; every value is bounded
// and every unknown shape refused, so what reaches the store (and the
// page, where it is escaped anyway) is a plain name.
func parseFilters(q url.Values, now time.Time, pageSize int) (filters, error) {
	f := filters{now: now, Limit: pageSize}
	for k, v := range q {
		if len(v) > 1 {
			return f, fmt.Errorf("parameter %q is given %d times; give it once", k, len(v))
		}
	}
	name := func(key string, check func(string) []string) (string, error) {
		v := q.Get(key)
		if v == "" {
			return "", nil
		}
		if errs := check(v); len(errs) > 0 {
			return "", fmt.Errorf("%s %.64q is not valid: %s", key, v, errs[0])
		}
		return v, nil
	}
	var err error
	if f.Namespace, err = name("namespace", validation.IsDNS1123Label); err != nil {
		return f, err
	}
	if f.Pod, err = name("pod", validation.IsDNS1123Subdomain); err != nil {
		return f, err
	}
	if f.Node, err = name("node", validation.IsDNS1123Subdomain); err != nil {
		return f, err
	}
	if r := q.Get("rule"); r != "" {
		if !ruleRe.MatchString(r) {
			return f, fmt.Errorf("rule %.64q is not a rule id (letters, digits and ._:/- , at most 128)", r)
		}
		f.Rule = r
	}
	if w := q.Get("workload"); w != "" {
		kind, wname, ok := strings.Cut(w, "/")
		if !ok || !kindRe.MatchString(kind) || len(validation.IsDNS1123Subdomain(wname)) > 0 {
			return f, fmt.Errorf("workload %.64q is not Kind/name (Deployment/web)", w)
		}
		f.WorkloadKind, f.WorkloadName = kind, wname
	}
	if sv := q.Get("severity"); sv != "" {
		if f.Severity, err = alert.ParseSeverity(sv); err != nil {
			return f, err
		}
	}
	if b := q.Get("before"); b != "" {
		if !beforeRe.MatchString(b) {
			return f, fmt.Errorf("before %.64q is not an alert id", b)
		}
		f.Before = b
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxPageSize {
			return f, fmt.Errorf("limit %.16q must be 1 to %d", l, MaxPageSize)
		}
		f.Limit = n
	}
	from, to := q.Get("from"), q.Get("to")
	if from != "" || to != "" {
		if from == "" || to == "" {
			return f, fmt.Errorf("give both from and to (RFC 3339), or a range")
		}
		if f.From, err = time.Parse(time.RFC3339, from); err != nil {
			return f, fmt.Errorf("from %.40q is not an RFC 3339 time", from)
		}
		if f.To, err = time.Parse(time.RFC3339, to); err != nil {
			return f, fmt.Errorf("to %.40q is not an RFC 3339 time", to)
		}
		if !f.From.Before(f.To) {
			return f, fmt.Errorf("from must be before to")
		}
		if f.To.Sub(f.From) > 400*24*time.Hour {
			return f, fmt.Errorf("a range spans at most 400 days")
		}
		f.From, f.To = f.From.UTC(), f.To.UTC()
		return f, nil
	}
	f.Range = q.Get("range")
	if f.Range == "" {
		f.Range = defaultRange
	}
	for _, r := range ranges {
		if r.Name == f.Range {
			f.From = now.Add(-r.D).UTC()
			return f, nil
		}
	}
	return f, fmt.Errorf("range %.16q is not one of 1h, 6h, 24h, 7d, 30d", f.Range)
}

// values is f as URL parameters.
func (f filters) values() url.Values {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("namespace", f.Namespace)
	set("pod", f.Pod)
	set("node", f.Node)
	set("rule", f.Rule)
	if f.WorkloadKind != "" {
		v.Set("workload", f.WorkloadKind+"/"+f.WorkloadName)
	}
	if f.Severity > alert.SeverityUnknown {
		v.Set("severity", f.Severity.String())
	}
	if f.Range != "" {
		if f.Range != defaultRange {
			v.Set("range", f.Range)
		}
	} else if !f.From.IsZero() {
		v.Set("from", f.From.Format(time.RFC3339))
		v.Set("to", f.To.Format(time.RFC3339))
	}
	return v
}

// With is a link to path with f plus key=value: what clicking a value does.
func (f filters) With(path, key, value string) string {
	v := f.values()
	switch key {
	case "from":
		// value is "from/to"
		from, to, _ := strings.Cut(value, "/")
		v.Del("range")
		v.Set("from", from)
		v.Set("to", to)
	case "range":
		v.Del("from")
		v.Del("to")
		v.Set("range", value)
	default:
		v.Set(key, value)
	}
	return link(path, v)
}

// Without is a link to path with f less key.
func (f filters) Without(path, key string) string {
	v := f.values()
	v.Del(key)
	if key == "from" {
		v.Del("to")
	}
	return link(path, v)
}

// Here is a link to path with f as it is.
func (f filters) Here(path string) string { return link(path, f.values()) }

// Query is f as a query string, for the live stream.
func (f filters) Query() string { return f.values().Encode() }

func link(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// Chip is one active filter, shown with a link that removes it.
type Chip struct{ Key, Value string }

// Chips lists the active filters.
func (f filters) Chips() []Chip {
	var out []Chip
	for _, k := range []string{"namespace", "pod", "workload", "node", "rule", "severity"} {
		if v := f.values().Get(k); v != "" {
			out = append(out, Chip{k, v})
		}
	}
	if f.Range == "" {
		out = append(out, Chip{"from", f.From.Format("2006-01-02 15:04") + " – " + f.To.Format("2006-01-02 15:04") + " UTC"})
	}
	return out
}

// storeFilter is the store's filter for f within one namespace (ns, which
// may be empty for any).
func (f filters) storeFilter(ns string) store.Filter {
	return store.Filter{
		Namespace: ns, Pod: f.Pod, Node: f.Node, RuleID: f.Rule,
		WorkloadKind: f.WorkloadKind, WorkloadName: f.WorkloadName,
		MinSeverity: f.Severity, Since: f.From, Until: f.To,
	}
}

// rollupQuery is the rollups' query for f over the namespaces given.
func (f filters) rollupQuery(namespaces []string, by store.RollupKeys) store.RollupQuery {
	return store.RollupQuery{
		Namespaces: namespaces, Pod: f.Pod, Node: f.Node, RuleID: f.Rule,
		MinSeverity: f.Severity, From: f.From, To: f.To, By: by,
	}
}

// span is the hours a chart covers: f's range, or up to now.
func (f filters) span() (lo, hi int64) {
	to := f.To
	if to.IsZero() {
		to = f.now
	}
	return store.BucketRange(f.From, to)
}
