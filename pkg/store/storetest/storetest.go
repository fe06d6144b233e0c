package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/store"
)

// Factory returns a new, empty store; Run closes it (so the factory should
// not register its own Close, or must tolerate a second one).
type Factory func(t *testing.T) store.Store

// Run runs the conformance suite against stores made by newStore. Every
// implementation of store.Store must pass it.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"InsertIsIdempotent", testIdempotent},
		{"RevisionsReplaceUnderNewSequence", testRevisions},
		{"EmptyBatchChangesNothing", testEmpty},
		{"FiltersAgreeWithMatch", testFilters},
		{"PagesAreStableAndComplete", testPaging},
		{"SummarizeCountsPerPod", testSummarize},
		{"RollupsStayExactUnderRevisionsAndRetention", testRollups},
		{"ReadAfterIsGaplessAndMovesCursor", testReadAfter},
		{"RetentionKeepsSequencesGrowing", testRetention},
		{"OnlyTheOwningNodeUpdatesAnAlert", testForeign},
		{"PerNodeQuotaSparesOtherNodes", testNodeQuota},
		{"ConcurrentInsertsGetUniqueSequences", testConcurrent},
		{"ClosedStoreSaysSo", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustInsert(t *testing.T, s store.Store, batch []alert.Alert) store.InsertResult {
	t.Helper()
	r, err := s.Insert(context.Background(), MustBatch(t, batch))
	if err != nil {
		t.Fatalf("insert %d alerts: %v", len(batch), err)
	}
	return r
}

// all lists every alert matching f through pages of size page.
func all(t *testing.T, s store.Store, f store.Filter, page int) []store.Stored {
	t.Helper()
	var out []store.Stored
	opts := store.ListOptions{Limit: page}
	for {
		got, more, err := s.List(context.Background(), f, opts)
		if err != nil {
			t.Fatalf("list %+v: %v", f, err)
		}
		if len(got) > page {
			t.Fatalf("list returned %d alerts for a page of %d", len(got), page)
		}
		out = append(out, got...)
		if !more {
			return out
		}
		if len(got) == 0 {
			t.Fatalf("list said more but returned an empty page")
		}
		opts.BeforeID = got[len(got)-1].Alert.ID
	}
}

// sameAlert compares alerts ignoring time zones and monotonic readings,
// which a store need not keep.
func sameAlert(a, b alert.Alert) bool {
	norm := func(x alert.Alert) alert.Alert {
		x.FirstSeen, x.LastSeen = x.FirstSeen.UTC().Round(0), x.LastSeen.UTC().Round(0)
		return x
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func testIdempotent(t *testing.T, s store.Store) {
	batch := Alerts(DefaultShape, base, 0, 50)
	r := mustInsert(t, s, batch)
	if len(r.New) != 50 || r.Duplicates != 0 {
		t.Fatalf("first insert: %d new, %d duplicates; want 50, 0", len(r.New), r.Duplicates)
	}
	for i, st := range r.New {
		if !sameAlert(st.Alert, batch[i]) {
			t.Fatalf("New[%d] is %+v, want batch[%d] %+v", i, st.Alert, i, batch[i])
		}
		if i > 0 && st.Seq <= r.New[i-1].Seq {
			t.Fatalf("sequences not increasing in batch order: %d after %d", st.Seq, r.New[i-1].Seq)
		}
	}
	last, err := s.LastSeq(context.Background())
	if err != nil || last != r.New[49].Seq {
		t.Fatalf("LastSeq = %d, %v; want %d", last, err, r.New[49].Seq)
	}
	r2 := mustInsert(t, s, batch)
	if len(r2.New) != 0 || r2.Duplicates != 50 {
		t.Fatalf("resent batch: %d new, %d duplicates; want 0, 50", len(r2.New), r2.Duplicates)
	}
	if last2, _ := s.LastSeq(context.Background()); last2 != last {
		t.Fatalf("resent batch moved LastSeq from %d to %d", last, last2)
	}
	got := all(t, s, store.Filter{}, 1000)
	if len(got) != 50 {
		t.Fatalf("stored %d alerts after a resend, want 50", len(got))
	}
	// A batch mixing stored and new alerts stores only the new ones.
	mixed := append(slices.Clone(batch[:10]), Alerts(DefaultShape, base, 50, 5)...)
	r3 := mustInsert(t, s, mixed)
	if len(r3.New) != 5 || r3.Duplicates != 10 {
		t.Fatalf("mixed batch: %d new, %d duplicates; want 5, 10", len(r3.New), r3.Duplicates)
	}
}

func testRevisions(t *testing.T, s store.Store) {
	a := Alerts(DefaultShape, base, 0, 3)
	r1 := mustInsert(t, s, a)
	up := Update(a[1], time.Minute)
	r2 := mustInsert(t, s, []alert.Alert{up})
	if len(r2.New) != 1 || r2.New[0].Seq <= r1.New[2].Seq {
		t.Fatalf("revision 2 stored as %+v; want one new revision after sequence %d", r2.New, r1.New[2].Seq)
	}
	// The stale revision 1 and the same revision 2 again change nothing.
	r3 := mustInsert(t, s, []alert.Alert{a[1], up})
	if len(r3.New) != 0 || r3.Duplicates != 2 {
		t.Fatalf("stale and repeated revisions: %d new, %d duplicates; want 0, 2", len(r3.New), r3.Duplicates)
	}
	got := all(t, s, store.Filter{}, 10)
	if len(got) != 3 {
		t.Fatalf("%d rows after an update, want 3 (one per id)", len(got))
	}
	for _, st := range got {
		if st.Alert.ID == up.ID {
			if !sameAlert(st.Alert, up) || st.Seq != r2.New[0].Seq {
				t.Fatalf("updated alert stored as seq %d %+v, want seq %d %+v", st.Seq, st.Alert, r2.New[0].Seq, up)
			}
		}
	}
	// Two revisions of one alert in one batch: both are new, in order.
	up3 := Update(up, time.Minute)
	up4 := Update(up3, time.Minute)
	r4 := mustInsert(t, s, []alert.Alert{up3, up4})
	if len(r4.New) != 2 || r4.New[1].Alert.Revision != 4 {
		t.Fatalf("two revisions in a batch: %+v", r4.New)
	}
	revs, _, err := s.ReadAfter(context.Background(), r2.New[0].Seq, store.Filter{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 1 || revs[0].Alert.Revision != 4 || revs[0].Seq != r4.New[1].Seq {
		t.Fatalf("ReadAfter after revision 2 = %+v, want only revision 4 at seq %d", revs, r4.New[1].Seq)
	}
}

// testEmpty: an empty batch, the zero Batch included, is a no-op. (An
// invalid alert never reaches a store: store.NewBatch refuses it, and its
// tests are pkg/store's.)
func testEmpty(t *testing.T, s store.Store) {
	for _, b := range []store.Batch{{}, MustBatch(t, nil)} {
		r, err := s.Insert(context.Background(), b)
		if err != nil || len(r.New) != 0 || r.Duplicates != 0 || len(r.Foreign) != 0 {
			t.Fatalf("Insert of an empty batch = %+v, %v; want nothing", r, err)
		}
	}
	if got := all(t, s, store.Filter{}, 100); len(got) != 0 {
		t.Fatalf("%d alerts stored from empty batches, want 0", len(got))
	}
	if last, _ := s.LastSeq(context.Background()); last != 0 {
		t.Fatalf("LastSeq = %d after empty batches only, want 0", last)
	}
}

func filters() []store.Filter {
	return []store.Filter{
		{},
		{Namespace: "ns-1"},
		{Namespace: "ns-2", Pod: "pod-2-3"},
		{Namespace: "ns-2", Pod: "pod-2-3", Container: "c1"},
		{WorkloadKind: "Deployment", WorkloadName: "dep-3-1"},
		{Node: "node-2"},
		{RuleID: "rule-4"},
		{MinSeverity: alert.SeverityHigh},
		{Namespace: "ns-0", MinSeverity: alert.SeverityCritical},
		{Since: base.Add(200 * time.Millisecond)},
		{Until: base.Add(100 * time.Millisecond)},
		{Since: base.Add(50 * time.Millisecond), Until: base.Add(120 * time.Millisecond), Node: "node-1"},
		{Namespace: "no-such-namespace"},
	}
}

func testFilters(t *testing.T, s store.Store) {
	data := Alerts(DefaultShape, base, 0, 400)
	mustInsert(t, s, data)
	for _, f := range filters() {
		var want []string
		for i := range data {
			if f.Match(&data[i]) {
				want = append(want, data[i].ID)
			}
		}
		slices.Sort(want)
		slices.Reverse(want)
		var got []string
		for _, st := range all(t, s, f, 1000) {
			got = append(got, st.Alert.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("filter %+v: store listed %d alerts, Filter.Match selects %d (or order differs)", f, len(got), len(want))
		}
	}
}

func testPaging(t *testing.T, s store.Store) {
	data := Alerts(DefaultShape, base, 0, 230)
	mustInsert(t, s, data)
	f := store.Filter{Namespace: "ns-1"}
	// Walk pages while the first alerts get new revisions: the walk must
	// still see every alert exactly once.
	var seen []string
	opts := store.ListOptions{Limit: 7}
	for page := 0; ; page++ {
		got, more, err := s.List(context.Background(), f, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range got {
			seen = append(seen, st.Alert.ID)
		}
		if page < 5 {
			up := Update(data[page*5+1], time.Second)
			mustInsert(t, s, []alert.Alert{up})
		}
		if !more {
			break
		}
		opts.BeforeID = got[len(got)-1].Alert.ID
	}
	want := 0
	for i := range data {
		if f.Match(&data[i]) {
			want++
		}
	}
	uniq := slices.Clone(seen)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	if len(seen) != want || len(uniq) != want {
		t.Fatalf("paged through %d alerts (%d distinct), want %d", len(seen), len(uniq), want)
	}
	if !slices.IsSortedFunc(seen, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Fatalf("pages are not in descending id order")
	}
	if _, _, err := s.List(context.Background(), f, store.ListOptions{}); err == nil {
		t.Fatalf("List with limit 0 succeeded, want an error")
	}
}

func testSummarize(t *testing.T, s store.Store) {
	data := Alerts(DefaultShape, base, 0, 300)
	data = append(data, Update(data[5], time.Second)) // counted once, as revision 2
	mustInsert(t, s, data)
	latest := map[string]alert.Alert{}
	for _, a := range data {
		latest[a.ID] = a
	}
	for _, f := range append(filters(), store.Filter{MinSeverity: alert.SeverityMedium}) {
		checkSummary(t, s, slices.Collect(maps.Values(latest)), f)
	}
}

// checkSummary compares s.Summarize(f) with the summary of the alerts
// stored, field by field.
func checkSummary(t *testing.T, s store.Store, stored []alert.Alert, f store.Filter) {
	t.Helper()
	type key struct{ ns, pod, node string }
	want := map[key]*store.PodSummary{}
	for _, a := range stored {
		if !f.Match(&a) {
			continue
		}
		k := key{a.Namespace, a.Pod, ""}
		if a.Pod == "" {
			k.node = a.Node
		}
		p := want[k]
		if p == nil {
			p = &store.PodSummary{Namespace: k.ns, Pod: k.pod, Node: k.node}
			want[k] = p
		}
		p.Alerts++
		p.Failures += a.Total
		p.MaxSeverity = max(p.MaxSeverity, a.Severity)
		if a.LastSeen.After(p.LastSeen) {
			p.LastSeen = a.LastSeen
		}
		p.BySeverity[a.Severity]++
		i := slices.IndexFunc(p.Rules, func(r store.RuleSummary) bool { return r.RuleID == a.RuleID })
		if i < 0 {
			p.Rules = append(p.Rules, store.RuleSummary{RuleID: a.RuleID})
			i = len(p.Rules) - 1
		}
		p.Rules[i].Alerts++
		p.Rules[i].Failures += a.Total
		p.Rules[i].MaxSeverity = max(p.Rules[i].MaxSeverity, a.Severity)
	}
	got, err := s.Summarize(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("filter %+v: %d pod summaries, want %d", f, len(got), len(want))
	}
	for i, g := range got {
		if i > 0 {
			p := got[i-1]
			if fmt.Sprint(p.Namespace, "\x00", p.Pod, "\x00", p.Node) >= fmt.Sprint(g.Namespace, "\x00", g.Pod, "\x00", g.Node) {
				t.Fatalf("summaries not sorted by namespace, pod, node at %d", i)
			}
		}
		w := want[key{g.Namespace, g.Pod, g.Node}]
		if w == nil {
			t.Fatalf("filter %+v: unexpected summary %+v", f, g)
		}
		slices.SortFunc(w.Rules, func(a, b store.RuleSummary) int { return strings.Compare(a.RuleID, b.RuleID) })
		g.LastSeen, w.LastSeen = g.LastSeen.UTC(), w.LastSeen.UTC()
		if !reflect.DeepEqual(g, *w) {
			t.Fatalf("filter %+v: summary for %s/%s/%s:\n got %+v\nwant %+v", f, g.Namespace, g.Pod, g.Node, g, *w)
		}
	}
}

// testRollups moves alerts between the summary rollups' hour buckets and
// deletes them by retention, checking every summary against the alerts
// still stored after each step. A small shape puts many alerts in each
// rollup row, so removing the alert that holds a bucket's latest LastSeen
// (a revision moving on, retention by sequence) happens often.
func testRollups(t *testing.T, s store.Store) {
	ctx := context.Background()
	shape := Shape{Namespaces: 2, PodsPerNamespace: 2, Nodes: 2, Rules: 2}
	hour := store.RollupBucket
	now := time.Now().UTC().Truncate(hour)
	var data []alert.Alert
	for k := range 5 {
		// Two seconds before an hour starts, so each chunk's LastSeen
		// (FirstSeen plus up to 6 s) straddles two buckets.
		data = append(data, Alerts(shape, now.Add(-time.Duration(k)*hour-2*time.Second), k*1000, 120)...)
	}
	mustInsert(t, s, data)
	latest := map[string]alert.Alert{}
	for _, a := range data {
		latest[a.ID] = a
	}
	check := func(step string) {
		t.Helper()
		page := all(t, s, store.Filter{}, 1000)
		if len(page) != len(latest) {
			t.Fatalf("%s: %d alerts stored, want %d", step, len(page), len(latest))
		}
		stored := make([]alert.Alert, 0, len(page))
		for _, st := range page {
			stored = append(stored, st.Alert)
		}
		for _, f := range []store.Filter{
			{},
			{Namespace: "ns-1"},
			{Namespace: "ns-0", Pod: "pod-0-1"},
			{Node: "node-1"},
			{RuleID: "rule-0", MinSeverity: alert.SeverityMedium},
			{Since: now.Add(-2 * hour)},                            // a bucket's start
			{Since: now.Add(-2*hour - time.Second)},                // one second into the bucket before
			{Since: now.Add(-90 * time.Minute), Namespace: "ns-0"}, // mid-bucket
			{Since: now.Add(3 * time.Second), Node: "node-0"},
			{Since: now.Add(time.Hour)},                     // after everything
			{Container: "c1"},                               // not from the rollups
			{Until: now.Add(-time.Hour), Namespace: "ns-1"}, // not from the rollups
		} {
			checkSummary(t, s, stored, f)
		}
	}
	check("after insert")

	// New revisions: some stay in their bucket, some move an hour and a
	// half on, some twice; every 9th alert's revision is sent again.
	var ups []alert.Alert
	for i, a := range data {
		var d time.Duration
		switch i % 4 {
		case 0:
			d = time.Second
		case 1:
			d = 90 * time.Minute
		default:
			continue
		}
		up := Update(a, d)
		ups = append(ups, up)
		latest[up.ID] = up
		if i%8 == 1 {
			up2 := Update(up, 70*time.Minute)
			ups = append(ups, up2)
			latest[up2.ID] = up2
		}
		if i%9 == 0 {
			ups = append(ups, up)
		}
	}
	mustInsert(t, s, ups)
	check("after revisions")

	// Retention by age cuts through a bucket.
	cut := now.Add(-150*time.Minute - time.Second)
	want := 0
	for id, a := range latest {
		if a.LastSeen.Before(cut) {
			delete(latest, id)
			want++
		}
	}
	n, err := s.Retain(ctx, store.Retention{MaxAge: time.Since(cut)})
	if err != nil || n != int64(want) {
		t.Fatalf("Retain(MaxAge) deleted %d, %v; want %d", n, err, want)
	}
	check("after age retention")

	// Retention by count deletes the oldest sequences, which are not the
	// oldest LastSeen: bucket maxima go too.
	keep := int64(len(latest) / 2)
	bySeq := all(t, s, store.Filter{}, 1000)
	slices.SortFunc(bySeq, func(a, b store.Stored) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, st := range bySeq[:len(bySeq)-int(keep)] {
		delete(latest, st.Alert.ID)
	}
	if _, err := s.Retain(ctx, store.Retention{MaxAlerts: keep}); err != nil {
		t.Fatal(err)
	}
	check("after count retention")

	if _, err := s.Retain(ctx, store.Retention{MaxAlerts: 1}); err != nil {
		t.Fatal(err)
	}
	clear(latest)
	for _, st := range all(t, s, store.Filter{}, 10) {
		latest[st.Alert.ID] = st.Alert
	}
	check("with one alert left")
}

// RunUndecodable checks that a row whose body no longer decodes is skipped
// and counted, never stalls a stream or a page. corrupt must overwrite the
// stored body of the alert with sequence seq with bytes no decoder takes.
func RunUndecodable(t *testing.T, s store.Store, corrupt func(t *testing.T, seq uint64)) {
	ctx := context.Background()
	h, ok := s.(store.Health)
	if !ok {
		t.Fatalf("%T does not implement store.Health", s)
	}
	r := mustInsert(t, s, Alerts(DefaultShape, base, 0, 10))
	bad := r.New[4]
	corrupt(t, bad.Seq)

	revs, cursor, err := s.ReadAfter(ctx, 0, store.Filter{}, 5)
	if err != nil {
		t.Fatalf("ReadAfter over an undecodable row: %v", err)
	}
	if len(revs) != 4 || cursor != bad.Seq {
		t.Fatalf("ReadAfter(0, 5) = %d alerts, cursor %d; want 4 and a cursor past the bad row (%d)", len(revs), cursor, bad.Seq)
	}
	if got := h.UndecodableRows(); got != 1 {
		t.Fatalf("UndecodableRows = %d after one read of the bad row, want 1", got)
	}
	revs, cursor, err = s.ReadAfter(ctx, cursor, store.Filter{}, 100)
	if err != nil || len(revs) != 5 || cursor != r.New[9].Seq || revs[0].Seq != bad.Seq+1 {
		t.Fatalf("ReadAfter past the bad row = %d alerts, cursor %d, %v; want 5 from %d, cursor %d", len(revs), cursor, err, bad.Seq+1, r.New[9].Seq)
	}

	page, more, err := s.List(ctx, store.Filter{}, store.ListOptions{Limit: 100})
	if err != nil || more || len(page) != 9 {
		t.Fatalf("List = %d alerts, more %v, %v; want the 9 that decode", len(page), more, err)
	}
	if got := h.UndecodableRows(); got != 2 {
		t.Fatalf("UndecodableRows = %d after a second read, want 2", got)
	}
	// Pages of 4 around the bad row still hold 4 alerts each until the end.
	var ids []string
	for _, st := range all(t, s, store.Filter{}, 4) {
		ids = append(ids, st.Alert.ID)
	}
	for _, st := range r.New {
		if st.Alert.ID != bad.Alert.ID && !slices.Contains(ids, st.Alert.ID) {
			t.Fatalf("paging by 4 missed %s", st.Alert.ID)
		}
	}
	if len(ids) != 9 {
		t.Fatalf("paging by 4 listed %d alerts, want 9", len(ids))
	}
}

func testReadAfter(t *testing.T, s store.Store) {
	ctx := context.Background()
	if revs, cur, err := s.ReadAfter(ctx, 0, store.Filter{}, 10); err != nil || len(revs) != 0 || cur != 0 {
		t.Fatalf("ReadAfter on an empty store = %d revisions, cursor %d, %v", len(revs), cur, err)
	}
	var want []uint64
	for i := range 6 {
		r := mustInsert(t, s, Alerts(DefaultShape, base, i*40, 40))
		for _, n := range r.New {
			want = append(want, n.Seq)
		}
	}
	// Unfiltered, in small steps: every sequence exactly once, in order.
	var got []uint64
	var cur uint64
	for {
		revs, next, err := s.ReadAfter(ctx, cur, store.Filter{}, 13)
		if err != nil {
			t.Fatal(err)
		}
		if next < cur {
			t.Fatalf("cursor went back from %d to %d", cur, next)
		}
		for _, r := range revs {
			got = append(got, r.Seq)
		}
		if len(revs) == 0 {
			break
		}
		cur = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("read %d sequences after 0, want the %d stored, in order", len(got), len(want))
	}
	last, _ := s.LastSeq(ctx)
	if cur != last {
		t.Fatalf("cursor after reading everything = %d, want LastSeq %d", cur, last)
	}
	// A filter matching nothing still moves the cursor to the end.
	revs, next, err := s.ReadAfter(ctx, 0, store.Filter{Namespace: "no-such-namespace"}, 5)
	if err != nil || len(revs) != 0 || next != last {
		t.Fatalf("ReadAfter with an empty filter result = %d revisions, cursor %d, %v; want 0, %d", len(revs), next, err, last)
	}
	// Filtered reads return only matches, in order.
	f := store.Filter{Namespace: "ns-2", MinSeverity: alert.SeverityMedium}
	revs, _, err = s.ReadAfter(ctx, 0, f, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range revs {
		if !f.Match(&r.Alert) || (i > 0 && r.Seq <= revs[i-1].Seq) {
			t.Fatalf("filtered ReadAfter returned %+v out of filter or order", r)
		}
	}
	if len(revs) == 0 {
		t.Fatalf("filtered ReadAfter returned nothing")
	}
}

func testRetention(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC()
	old := Alerts(DefaultShape, now.Add(-48*time.Hour), 0, 30)
	fresh := Alerts(DefaultShape, now.Add(-time.Minute), 1000, 20)
	mustInsert(t, s, old)
	mustInsert(t, s, fresh)
	n, err := s.Retain(ctx, store.Retention{MaxAge: 24 * time.Hour})
	if err != nil || n != 30 {
		t.Fatalf("Retain(MaxAge 24h) deleted %d, %v; want 30", n, err)
	}
	if got := all(t, s, store.Filter{}, 100); len(got) != 20 {
		t.Fatalf("%d alerts left after age retention, want 20", len(got))
	}
	before, _ := s.LastSeq(ctx)
	n, err = s.Retain(ctx, store.Retention{MaxAlerts: 5})
	if err != nil || n != 15 {
		t.Fatalf("Retain(MaxAlerts 5) deleted %d, %v; want 15", n, err)
	}
	left := all(t, s, store.Filter{}, 100)
	if len(left) != 5 {
		t.Fatalf("%d alerts left, want 5", len(left))
	}
	for _, st := range left {
		if st.Seq <= before-5 {
			t.Fatalf("count retention kept seq %d, want only the 5 newest (> %d)", st.Seq, before-5)
		}
	}
	// Deleting everything must not let sequences restart.
	if _, err := s.Retain(ctx, store.Retention{MaxAge: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	r := mustInsert(t, s, Alerts(DefaultShape, now, 2000, 1))
	if r.New[0].Seq <= before {
		t.Fatalf("sequence %d after deleting everything, want more than %d", r.New[0].Seq, before)
	}
	// A deleted alert re-sent is stored again (it is new to the store).
	r = mustInsert(t, s, old[:1])
	if len(r.New) != 1 {
		t.Fatalf("re-sent deleted alert: %d new, want 1", len(r.New))
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	const workers, batches, size = 8, 10, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*batches)
	seqs := make(chan uint64, workers*batches*size)
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				batch, err := store.NewBatch(Alerts(DefaultShape, base, (w*batches+b)*size, size))
				if err != nil {
					errs <- err
					return
				}
				r, err := s.Insert(context.Background(), batch)
				if err != nil {
					errs <- err
					return
				}
				for _, n := range r.New {
					seqs <- n.Seq
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	close(seqs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for q := range seqs {
		if seen[q] {
			t.Fatalf("sequence %d given twice", q)
		}
		seen[q] = true
	}
	if len(seen) != workers*batches*size {
		t.Fatalf("%d sequences for %d alerts", len(seen), workers*batches*size)
	}
	if got := all(t, s, store.Filter{}, 1000); len(got) != workers*batches*size {
		t.Fatalf("%d alerts stored, want %d", len(got), workers*batches*size)
	}
}

func testClosed(t *testing.T, s store.Store) {
	mustInsert(t, s, Alerts(DefaultShape, base, 0, 1))
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	ctx := context.Background()
	if _, err := s.Insert(ctx, MustBatch(t, Alerts(DefaultShape, base, 1, 1))); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Insert after Close = %v, want ErrClosed", err)
	}
	if _, _, err := s.List(ctx, store.Filter{}, store.ListOptions{Limit: 1}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("List after Close = %v, want ErrClosed", err)
	}
	if _, _, err := s.ReadAfter(ctx, 0, store.Filter{}, 1); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("ReadAfter after Close = %v, want ErrClosed", err)
	}
}

// testForeign: an alert's ID belongs to the node that stored it first. A
// revision naming another node is not stored (however high), and the owner's
// next revision is still new.
func testForeign(t *testing.T, s store.Store) {
	a := Alerts(DefaultShape, base, 0, 1)[0]
	a.Node = "node-a"
	mustInsert(t, s, []alert.Alert{a})
	forged := a
	forged.Node, forged.Revision, forged.Message = "node-b", 1<<31, "forged"
	r := mustInsert(t, s, []alert.Alert{forged})
	if len(r.New) != 0 || r.Duplicates != 0 || !slices.Equal(r.Foreign, []string{a.ID}) {
		t.Fatalf("update of node-a's alert from node-b: %d new, %d duplicates, foreign %v; want only foreign [%s]",
			len(r.New), r.Duplicates, r.Foreign, a.ID)
	}
	next := a
	next.Revision = 2
	r = mustInsert(t, s, []alert.Alert{next})
	if len(r.New) != 1 || r.Duplicates != 0 || len(r.Foreign) != 0 {
		t.Fatalf("owner's revision 2 after a forged one: %d new, %d duplicates, foreign %v; want 1 new", len(r.New), r.Duplicates, r.Foreign)
	}
	got := all(t, s, store.Filter{}, 10)
	if len(got) != 1 || got[0].Alert.Revision != 2 || got[0].Alert.Node != "node-a" || got[0].Alert.Message != a.Message {
		t.Fatalf("stored %+v, want node-a's revision 2", got)
	}
	// Within one batch too: the second node's copy of a new ID is foreign.
	b := Alerts(DefaultShape, base, 1, 1)[0]
	b.Node = "node-a"
	bb := b
	bb.Node, bb.Revision = "node-b", 2
	r = mustInsert(t, s, []alert.Alert{b, bb})
	if len(r.New) != 1 || !slices.Equal(r.Foreign, []string{b.ID}) {
		t.Fatalf("one batch with %s from node-a then node-b: %d new, foreign %v; want 1 new, foreign [%s]", b.ID, len(r.New), r.Foreign, b.ID)
	}
}

// testNodeQuota: a node over its quota loses its own oldest alerts; the
// other nodes keep all of theirs, even when the total is bounded too.
func testNodeQuota(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC()
	quiet := Alerts(DefaultShape, now, 0, 10)
	for i := range quiet {
		quiet[i].Node = "quiet"
	}
	mustInsert(t, s, quiet)
	flood := Alerts(DefaultShape, now, 100, 50)
	for i := range flood {
		flood[i].Node = "flood"
	}
	mustInsert(t, s, flood)
	n, err := s.Retain(ctx, store.Retention{MaxAlertsPerNode: 20, MaxAlerts: 30})
	if err != nil || n != 30 {
		t.Fatalf("Retain(20 per node, 30 in all) deleted %d, %v; want 30", n, err)
	}
	got := all(t, s, store.Filter{Node: "quiet"}, 100)
	if len(got) != 10 {
		t.Fatalf("quiet node kept %d alerts, want all 10", len(got))
	}
	got = all(t, s, store.Filter{Node: "flood"}, 100)
	if len(got) != 20 {
		t.Fatalf("flooding node kept %d alerts, want its quota of 20", len(got))
	}
	keep := map[string]bool{}
	for _, a := range flood[30:] {
		keep[a.ID] = true
	}
	for _, st := range got {
		if !keep[st.Alert.ID] {
			t.Fatalf("flooding node kept %s, want only its 20 newest", st.Alert.ID)
		}
	}
}
