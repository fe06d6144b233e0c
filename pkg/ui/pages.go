package ui

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertfmt"
	"github.com/errnowatch/errnowatch/pkg/store"
)

// view is one signed-in request's parsed state.
type view struct {
	sess *session
	sc   scope
	f    filters
	ctx  context.Context
}

// prepare parses a page's filters, finds the person's namespaces and
// checks a namespace filter; on failure it has answered.
func (s *Server) prepare(w http.ResponseWriter, r *http.Request) (*view, context.CancelFunc, bool) {
	sess := sessionFrom(r.Context())
	f, err := parseFilters(r.URL.Query(), time.Now(), s.cfg.PageSize)
	if err != nil {
		s.metrics.refuse(refusedBadInput)
		s.errorPage(w, r, http.StatusBadRequest, err.Error())
		return nil, nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	sc, err := s.scopeOf(ctx, sess)
	if err != nil {
		cancel()
		s.unavailable(w, r, "find your namespaces", err)
		return nil, nil, false
	}
	if f.Namespace != "" {
		ok, err := s.mayRead(ctx, sess, sc, f.Namespace)
		if err != nil {
			cancel()
			s.unavailable(w, r, "check your access", err)
			return nil, nil, false
		}
		if !ok {
			cancel()
			s.metrics.refuse(refusedDenied)
			s.errorPage(w, r, http.StatusForbidden, sess.id.Username+" may not list alerts in namespace "+f.Namespace+
				" (RBAC verb list on alerts.errnowatch.io); ask for a Role there, or remove the filter.")
			return nil, nil, false
		}
	}
	return &view{sess: sess, sc: sc, f: f, ctx: ctx}, cancel, true
}

func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.Warn("ui cannot "+what, zap.Error(err))
	s.errorPage(w, r, http.StatusServiceUnavailable, "Cannot "+what+" right now; retry in a moment.")
}

func (v *view) page(title, nav, path string, data any) page {
	p := page{Title: title, Nav: nav, F: v.f, Path: path, Data: data}
	if v.sc.truncated {
		p.Notes = append(p.Notes, "Alerts are in more namespaces than were checked for your access: filter by namespace to see the others.")
	}
	if v.f.WorkloadKind != "" {
		p.Notes = append(p.Notes, "Charts and counts are kept per pod, not per workload: the workload filter narrows the alert list only; click a pod to chart it.")
	}
	return p
}

// AlertRow is one alert in a list.
type AlertRow struct {
	ID, RuleID, Namespace, Pod, Node, Workload, Message string
	Severity                                            alert.Severity
	LastSeen                                            time.Time
	Total                                               uint64
	Revision                                            uint32
}

func alertRow(st *store.Stored) AlertRow {
	a := &st.Alert
	w := ""
	if a.Workload.Kind != "" {
		w = a.Workload.Kind + "/" + a.Workload.Name
	}
	return AlertRow{ID: a.ID, RuleID: a.RuleID, Namespace: a.Namespace, Pod: a.Pod, Node: a.Node, Workload: w,
		Message: a.Message, Severity: a.Severity, LastSeen: a.LastSeen, Total: a.Total, Revision: a.Revision}
}

// AlertList is a page of alerts and the link to the next.
type AlertList struct {
	Rows []AlertRow
	Next string
	// Live is the query of the live stream that adds new alerts above.
	Live string
	// Note replaces the list when it cannot be read (too many namespaces).
	Note string
}

// maxMergeNamespaces bounds the namespaces one list merges for a person
// limited to some: each costs one store query.
const maxMergeNamespaces = 16

func (s *Server) listAlerts(v *view, path string) (AlertList, error) {
	f := v.f
	out := AlertList{Live: f.Query()}
	opts := store.ListOptions{Limit: f.Limit, BeforeID: f.Before}
	var (
		page []store.Stored
		more bool
	)
	switch {
	case v.sc.all || f.Namespace != "":
		var err error
		if page, more, err = s.src.List(v.ctx, f.storeFilter(f.Namespace), opts); err != nil {
			return out, err
		}
	case len(v.sc.namespaces) > maxMergeNamespaces:
		s.metrics.refuse(refusedTooBroad)
		out.Note = "You may read alerts in many namespaces: click one (or filter by namespace) to list its alerts."
		return out, nil
	default:
		for _, ns := range v.sc.namespaces {
			p, m, err := s.src.List(v.ctx, f.storeFilter(ns), opts)
			if err != nil {
				return out, err
			}
			page = append(page, p...)
			more = more || m
		}
		slices.SortFunc(page, func(a, b store.Stored) int { return strings.Compare(b.Alert.ID, a.Alert.ID) })
		if len(page) > f.Limit {
			page, more = page[:f.Limit], true
		}
	}
	for i := range page {
		out.Rows = append(out.Rows, alertRow(&page[i]))
	}
	if more && len(page) > 0 {
		out.Next = f.With(path, "before", page[len(page)-1].Alert.ID)
	}
	return out, nil
}

// hourCharts draws the alerts per hour by severity and by rule from one
// read of the rollups.
func (s *Server) hourCharts(v *view, path, sevID string) (bySev, byRule Chart, err error) {
	lo, hi := v.f.span()
	q := v.f.rollupQuery(v.sc.rollupNamespaces(v.f.Namespace), store.ByBucket|store.ByRule|store.BySeverity)
	q.Step = chartStep(lo, hi)
	rows, err := s.src.Rollups(v.ctx, q)
	if err != nil {
		return Chart{}, Chart{}, err
	}
	legend, idx := ruleLegend(rows, 8)
	sev := make([]chartPoint, 0, len(rows))
	rule := make([]chartPoint, 0, len(rows))
	for _, r := range rows {
		sev = append(sev, chartPoint{bucket: r.Bucket, series: int(r.Severity) - 1, n: r.Alerts})
		rule = append(rule, chartPoint{bucket: r.Bucket, series: idx[r.RuleID], n: r.Alerts})
	}
	return buildChart(sevID, "Alerts per hour by severity", lo, hi, severityLegend, sev, v.zoom(path)),
		buildChart("by-rule", "Alerts per hour by rule", lo, hi, legend, rule, v.zoom(path)), nil
}

func (v *view) zoom(path string) func(from, to time.Time) string {
	return func(from, to time.Time) string {
		return v.f.With(path, "from", from.Format(time.RFC3339)+"/"+to.Format(time.RFC3339))
	}
}

// NodeRow is one node's health as the collector sees it.
type NodeRow struct {
	Node     string
	Alerts   uint64
	LastSeen time.Time
	// Sensor counts the node's sensor alerts (errnowatch.sensor.*: a full
	// or flooded count map) by rule.
	Sensor []store.RollupRow
	// Quiet is set when the node's newest alert is over a day old.
	Quiet bool
	// Status is the node's agent's latest report of its own health
	// (drops, full map, spool backlog, when it was last heard from); nil
	// when it never sent one.
	Status *store.NodeStatus
	// Silent is set when the agent has not been heard from for
	// silentAfter: no alert, no heartbeat.
	Silent bool
}

// silentAfter is how long without a heartbeat marks an agent silent: four
// of its heartbeats (delivery.DefaultHeartbeat).
const silentAfter = time.Minute

// sensorRulePrefix names the rules about the sensor itself.
const sensorRulePrefix = "errnowatch.sensor."

// maxNodes bounds the nodes the overview lists (the busiest).
const maxNodes = 100

func (s *Server) nodes(v *view) ([]NodeRow, error) {
	rows, err := s.src.Rollups(v.ctx, v.f.rollupQuery(v.sc.rollupNamespaces(v.f.Namespace), store.ByNode|store.ByRule))
	if err != nil {
		return nil, err
	}
	byNode := map[string]*NodeRow{}
	for _, r := range rows {
		n := byNode[r.Node]
		if n == nil {
			n = &NodeRow{Node: r.Node}
			byNode[r.Node] = n
		}
		n.Alerts += r.Alerts
		if r.LastSeen.After(n.LastSeen) {
			n.LastSeen = r.LastSeen
		}
		if strings.HasPrefix(r.RuleID, sensorRulePrefix) {
			n.Sensor = append(n.Sensor, r)
		}
	}
	statuses, err := s.src.NodeStatuses(v.ctx)
	if err != nil {
		return nil, err
	}
	all := v.sc.rollupNamespaces(v.f.Namespace) == nil && v.f.Node == ""
	for i := range statuses {
		st := &statuses[i]
		n := byNode[st.Node]
		if n == nil {
			// A node without alerts in the range is listed for a reader of
			// every namespace only: others learn no node their pods do not
			// run on.
			if !all {
				continue
			}
			n = &NodeRow{Node: st.Node}
			byNode[st.Node] = n
		}
		n.Status = st
	}
	out := make([]NodeRow, 0, len(byNode))
	for _, n := range byNode {
		n.Quiet = time.Since(n.LastSeen) > 24*time.Hour
		n.Silent = n.Status != nil && time.Since(n.Status.ReceivedAt) > silentAfter
		out = append(out, *n)
	}
	// The busiest nodes, listed by name.
	slices.SortFunc(out, func(a, b NodeRow) int { return cmpCount(a.Alerts, b.Alerts, a.Node, b.Node) })
	out = out[:min(len(out), maxNodes)]
	slices.SortFunc(out, func(a, b NodeRow) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// cmpCount orders by count descending, then by name.
func cmpCount(a, b uint64, an, bn string) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return strings.Compare(an, bn)
}

// tops ranks namespaces and pods from one read of the rollups.
func (s *Server) tops(v *view, n int) (namespaces, pods []store.RollupRow, err error) {
	rows, err := s.src.Rollups(v.ctx, v.f.rollupQuery(v.sc.rollupNamespaces(v.f.Namespace), store.ByNamespace|store.ByPod))
	if err != nil {
		return nil, nil, err
	}
	byNS := map[string]*store.RollupRow{}
	for _, r := range rows {
		ns := byNS[r.Namespace]
		if ns == nil {
			ns = &store.RollupRow{Namespace: r.Namespace}
			byNS[r.Namespace] = ns
		}
		ns.Alerts += r.Alerts
		ns.Failures += r.Failures
		if r.LastSeen.After(ns.LastSeen) {
			ns.LastSeen = r.LastSeen
		}
	}
	for _, ns := range byNS {
		namespaces = append(namespaces, *ns)
	}
	slices.SortFunc(namespaces, func(a, b store.RollupRow) int { return cmpCount(a.Alerts, b.Alerts, a.Namespace, b.Namespace) })
	slices.SortFunc(rows, func(a, b store.RollupRow) int {
		return cmpCount(a.Alerts, b.Alerts, a.Namespace+"/"+a.Pod, b.Namespace+"/"+b.Pod)
	})
	return namespaces[:min(len(namespaces), n)], rows[:min(len(rows), n)], nil
}

// OverviewData is the overview page.
type OverviewData struct {
	Severity, Rules Chart
	TopNamespaces   []store.RollupRow
	TopPods         []store.RollupRow
	Nodes           []NodeRow
	Alerts          AlertList
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	v, cancel, ok := s.prepare(w, r)
	if !ok {
		return
	}
	defer cancel()
	d, err := s.overviewData(v)
	if err != nil {
		s.unavailable(w, r, "read alerts", err)
		return
	}
	s.render(w, r, http.StatusOK, "overview", v.page("Overview", "overview", "/", d))
}

func (s *Server) overviewData(v *view) (OverviewData, error) {
	// The four reads are independent: run together, the page waits for the
	// slowest rather than for their sum (a month's chart and pod ranking
	// each read tens of thousands of rollup rows, docs/ui.md).
	var (
		d OverviewData
		g errgroup.Group
	)
	g.Go(func() (err error) {
		d.Severity, d.Rules, err = s.hourCharts(v, "/", "by-severity")
		return err
	})
	g.Go(func() (err error) {
		d.TopNamespaces, d.TopPods, err = s.tops(v, 10)
		return err
	})
	g.Go(func() (err error) {
		d.Nodes, err = s.nodes(v)
		return err
	})
	g.Go(func() (err error) {
		d.Alerts, err = s.listAlerts(v, "/")
		return err
	})
	return d, g.Wait()
}

// TimelineData is a namespace's or pod's page.
type TimelineData struct {
	Severity, Failures Chart
	// ZoomOut widens the range around its middle; empty at 30 days.
	ZoomOut    string
	Pods       []store.RollupRow
	Rules      []store.RollupRow
	Namespaces []store.RollupRow // when no namespace is chosen
	Alerts     AlertList
}

func (s *Server) timeline(w http.ResponseWriter, r *http.Request) {
	v, cancel, ok := s.prepare(w, r)
	if !ok {
		return
	}
	defer cancel()
	d, err := s.timelineData(v)
	if err != nil {
		s.unavailable(w, r, "read alerts", err)
		return
	}
	title := "Timeline"
	if v.f.Namespace != "" {
		title = v.f.Namespace
		if v.f.Pod != "" {
			title += "/" + v.f.Pod
		}
	}
	s.render(w, r, http.StatusOK, "timeline", v.page(title, "timeline", "/timeline", d))
}

func (s *Server) timelineData(v *view) (TimelineData, error) {
	var (
		d   TimelineData
		err error
	)
	nss := v.sc.rollupNamespaces(v.f.Namespace)
	if v.f.Namespace == "" {
		q := v.f.rollupQuery(nss, store.ByNamespace)
		q.Limit = 100
		if d.Namespaces, err = s.src.Rollups(v.ctx, q); err != nil {
			return d, err
		}
	}
	lo, hi := v.f.span()
	q := v.f.rollupQuery(nss, store.ByBucket|store.BySeverity)
	q.Step = chartStep(lo, hi)
	rows, err := s.src.Rollups(v.ctx, q)
	if err != nil {
		return d, err
	}
	sev := make([]chartPoint, 0, len(rows))
	fails := make([]chartPoint, 0, len(rows))
	for _, r := range rows {
		sev = append(sev, chartPoint{bucket: r.Bucket, series: int(r.Severity) - 1, n: r.Alerts})
		fails = append(fails, chartPoint{bucket: r.Bucket, n: r.Failures})
	}
	d.Severity = buildChart("alerts", "Alerts per hour by severity", lo, hi, severityLegend, sev, v.zoom("/timeline"))
	d.Failures = buildChart("failures", "Failed syscalls per hour (in alerts)", lo, hi, []Series{{Name: "failures", Class: "c-fail"}}, fails, v.zoom("/timeline"))
	if v.f.Namespace != "" && v.f.Pod == "" {
		q := v.f.rollupQuery(nss, store.ByPod)
		q.Limit = 20
		if d.Pods, err = s.src.Rollups(v.ctx, q); err != nil {
			return d, err
		}
	}
	rq := v.f.rollupQuery(nss, store.ByRule)
	rq.Limit = 20
	if d.Rules, err = s.src.Rollups(v.ctx, rq); err != nil {
		return d, err
	}
	// Zoom out: twice the span around its middle, at most 400 days.
	from, to := v.f.From, v.f.To
	if to.IsZero() {
		to = v.f.now
	}
	if span := to.Sub(from); span < 200*24*time.Hour {
		mid := from.Add(span / 2)
		d.ZoomOut = v.f.With("/timeline", "from", mid.Add(-span).Truncate(time.Hour).Format(time.RFC3339)+"/"+mid.Add(span).Truncate(time.Hour).Add(time.Hour).Format(time.RFC3339))
	}
	d.Alerts, err = s.listAlerts(v, "/timeline")
	return d, err
}

// AlertData is one alert's page.
type AlertData struct {
	Stored   store.Stored
	Workload string
	OCSF     string
	// Revisions are the stored revisions that led to this one, newest
	// first (store.HistoryReader); HistoryErr says why there are none
	// when the history could not be read.
	Revisions  []store.Revision
	HistoryErr string
}

func (s *Server) alertPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !beforeRe.MatchString(id) {
		s.metrics.refuse(refusedBadInput)
		s.errorPage(w, r, http.StatusBadRequest, "That is not an alert id.")
		return
	}
	v, cancel, ok := s.prepare(w, r)
	if !ok {
		return
	}
	defer cancel()
	st, found, err := s.src.Get(v.ctx, id)
	if err != nil {
		s.unavailable(w, r, "read the alert", err)
		return
	}
	if found {
		if found, err = s.mayRead(v.ctx, v.sess, v.sc, st.Alert.Namespace); err != nil {
			s.unavailable(w, r, "check your access", err)
			return
		}
	}
	if !found {
		// The same answer whether it does not exist or may not be seen:
		// an ID says nothing about other namespaces.
		s.metrics.refuse(refusedNotFound)
		s.errorPage(w, r, http.StatusNotFound, "No alert "+id+" that you may read (it may have been removed by retention).")
		return
	}
	d := AlertData{Stored: st}
	revs, err := s.src.History(v.ctx, id)
	if err != nil {
		s.log.Warn("read alert history", zap.String("id", id), zap.Error(err))
		d.HistoryErr = "The history of this alert could not be read (see the collector's log)."
	}
	if len(revs) == 0 && err == nil {
		// Stored before histories were kept: the alert itself is all.
		revs = []store.Revision{{Revision: st.Alert.Revision, Seq: st.Seq, StoredAt: st.StoredAt,
			LastSeen: st.Alert.LastSeen, Severity: st.Alert.Severity, Total: st.Alert.Total, Message: st.Alert.Message}}
	}
	slices.Reverse(revs)
	d.Revisions = revs
	if st.Alert.Workload.Kind != "" {
		d.Workload = st.Alert.Workload.Kind + "/" + st.Alert.Workload.Name
	}
	rec := alertfmt.Record{Sequence: st.Seq, StoredTime: st.StoredAt, Alert: st.Alert}
	if b, err := json.MarshalIndent(alertfmt.OCSF(&rec), "", "  "); err == nil {
		d.OCSF = string(b)
	}
	p := v.page("Alert "+st.Alert.RuleID, "", "/", d)
	// Filter links on this page start from no filters but the range.
	p.F = filters{Range: defaultRange, now: v.f.now}
	s.render(w, r, http.StatusOK, "alert", p)
}

// RuleRow is one rule on the rules page.
type RuleRow struct {
	RuleID      string
	Description string
	Tags        []string
	Alerts      uint64
	Failures    uint64
	MaxSeverity alert.Severity
	LastSeen    time.Time
	// Width is the bar's length relative to the busiest rule (0..1).
	Width      float64
	BySeverity [alert.SeverityCritical + 1]uint64
}

// maxRuleDescriptions bounds the store reads a rules page makes for
// descriptions.
const maxRuleDescriptions = 50

func (s *Server) rules(w http.ResponseWriter, r *http.Request) {
	v, cancel, ok := s.prepare(w, r)
	if !ok {
		return
	}
	defer cancel()
	rows, err := s.rulesData(v)
	if err != nil {
		s.unavailable(w, r, "read rules", err)
		return
	}
	s.render(w, r, http.StatusOK, "rules", v.page("Rules", "rules", "/rules", rows))
}

func (s *Server) rulesData(v *view) ([]RuleRow, error) {
	rows, err := s.src.Rollups(v.ctx, v.f.rollupQuery(v.sc.rollupNamespaces(v.f.Namespace), store.ByRule|store.ByNamespace|store.BySeverity))
	if err != nil {
		return nil, err
	}
	byRule := map[string]*RuleRow{}
	busiestNS := map[string]store.RollupRow{}
	for _, r := range rows {
		rr := byRule[r.RuleID]
		if rr == nil {
			rr = &RuleRow{RuleID: r.RuleID}
			byRule[r.RuleID] = rr
		}
		rr.Alerts += r.Alerts
		rr.Failures += r.Failures
		rr.MaxSeverity = max(rr.MaxSeverity, r.Severity)
		if r.LastSeen.After(rr.LastSeen) {
			rr.LastSeen = r.LastSeen
		}
		if r.Severity > 0 && r.Severity <= alert.SeverityCritical {
			rr.BySeverity[r.Severity] += r.Alerts
		}
		if b, ok := busiestNS[r.RuleID]; !ok || r.Alerts > b.Alerts {
			busiestNS[r.RuleID] = r
		}
	}
	out := make([]RuleRow, 0, len(byRule))
	var peak uint64
	for _, rr := range byRule {
		out = append(out, *rr)
		peak = max(peak, rr.Alerts)
	}
	slices.SortFunc(out, func(a, b RuleRow) int {
		if a.Alerts != b.Alerts {
			if a.Alerts > b.Alerts {
				return -1
			}
			return 1
		}
		return strings.Compare(a.RuleID, b.RuleID)
	})
	for i := range out {
		out[i].Width = float64(out[i].Alerts) / float64(max(peak, 1))
		if i >= maxRuleDescriptions {
			continue
		}
		d, err := s.describe(v, out[i].RuleID, busiestNS[out[i].RuleID].Namespace)
		if err != nil {
			return nil, err
		}
		out[i].Description, out[i].Tags = d.text, d.tags
	}
	return out, nil
}

// ruleDescription is what a rule catches, as its alerts say.
type ruleDescription struct {
	text string
	tags []string
}

// describeTTL is how long a rule's description is reused.
const describeTTL = 5 * time.Minute

// describe finds what a rule catches in its newest alert: agents send each
// rule's description with its alerts, so this shows the rules the agents
// really run. A description is the rule's, the same in every namespace, so
// it is cached by rule; it is looked up in a namespace the person may read
// (ns, empty for everyone's).
func (s *Server) describe(v *view, rule, ns string) (ruleDescription, error) {
	if d, ok := s.ruleDescs.Get(rule); ok {
		return d.(ruleDescription), nil
	}
	f := store.Filter{RuleID: rule}
	if !v.sc.all {
		f.Namespace = ns
	}
	page, _, err := s.src.List(v.ctx, f, store.ListOptions{Limit: 1})
	if err != nil || len(page) == 0 {
		return ruleDescription{}, err
	}
	d := ruleDescription{text: page[0].Alert.Description, tags: page[0].Alert.Tags}
	s.ruleDescs.Add(rule, d, describeTTL)
	return d, nil
}
