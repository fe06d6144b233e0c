package sink

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSplunkHEC checks requests against the HEC contract as Splunk
// documents it (services/collector/event, "Authorization: Splunk
// <token>", a body of concatenated JSON event objects with time and event,
// {"text":"Success","code":0} on success, 403 code 4 for a bad token). No
// HEC implementation can be built or installed here: the OpenTelemetry
// Collector's splunkhecreceiver needs modules the Go proxy does not serve
// (docs/sinks.md), so this receiver is the test's own.
func TestSplunkHEC(t *testing.T) {
	var (
		mu     sync.Mutex
		events []Record
		bad    int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/services/collector/event" {
			t.Errorf("%s %s, want POST /services/collector/event", r.Method, r.URL.Path)
		}
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Authorization") != "Splunk 00000000-1111-2222-3333-444444444444" {
			bad++
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"text":"Invalid token","code":4}`)
			return
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		for dec.More() {
			var ev struct {
				Time       json.Number `json:"time"`
				Host       string      `json:"host"`
				Source     string      `json:"source"`
				SourceType string      `json:"sourcetype"`
				Index      string      `json:"index"`
				Event      *Record     `json:"event"`
			}
			if err := dec.Decode(&ev); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"text":"Invalid data format","code":6}`)
				return
			}
			if _, err := ev.Time.Float64(); err != nil || ev.Event == nil || ev.Index != "security" ||
				ev.SourceType != "errnowatch:alert" {
				t.Errorf("event fields: %+v", ev)
			}
			events = append(events, *ev.Event)
		}
		io.WriteString(w, `{"text":"Success","code":0}`)
	}))
	t.Cleanup(srv.Close)
	st := openStore(t)
	tokenFile := writeSecret(t, "wrong-token")
	cfg := fmt.Sprintf(`
sinks:
- name: hec
  type: splunk-hec
  startAt: beginning
  batchSize: 25
  retry: {initial: 10ms, max: 20ms}
  splunkHec: {url: "%s", token: {file: %s}, index: security}
`, srv.URL, tokenFile)
	run := start(t, st, cfg, Options{})
	insert(t, st, gen(300, 60))
	// A wrong token is the operator's to fix: retried, never dead-lettered.
	eventually(t, 5*time.Second, "retries with the wrong token", func() bool { return run.counter(run.m.retries, "hec") >= 3 })
	run.stop()
	if n := run.counter(run.m.deadLetters, "hec", deadRejected); n != 0 {
		t.Fatalf("%v dead letters for a wrong token", n)
	}
	tokenFile2 := writeSecret(t, "00000000-1111-2222-3333-444444444444")
	run = start(t, st, strings.Replace(cfg, tokenFile, tokenFile2, 1), Options{})
	eventually(t, 10*time.Second, "60 events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) >= 60
	})
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 60 || bad < 3 {
		t.Fatalf("%d events (want 60), %d refused requests", len(events), bad)
	}
}

// TestReceiverCrashAfterReceiptDuplicatesOneRequest: a webhook receiver
// that takes the alert and dies before answering gets it again; that one
// request is the duplicate at-least-once allows.
func TestReceiverCrashAfterReceiptDuplicatesOneRequest(t *testing.T) {
	var (
		mu    sync.Mutex
		got   []string
		crash = 1
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rec Record
		if err := json.NewDecoder(r.Body).Decode(&rec); err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, rec.ID)
		c := len(got) == 5 && crash > 0
		if c {
			crash--
		}
		mu.Unlock()
		if c { // the alert is taken; the answer never comes
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}
	}))
	t.Cleanup(srv.Close)
	st := openStore(t)
	run := start(t, st, fmt.Sprintf(`
sinks:
- name: hook
  type: webhook
  startAt: beginning
  retry: {initial: 10ms, max: 20ms}
  webhook: {url: "%s"}
`, srv.URL), Options{})
	insert(t, st, gen(0, 10))
	eventually(t, 10*time.Second, "10 acknowledged", func() bool { return run.counter(run.m.delivered, "hook") >= 10 })
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	if len(seen) != 10 || len(got) != 11 || seen[got[4]] != 2 {
		t.Fatalf("%d requests for %d alerts; want 11 for 10, the crashed one twice", len(got), len(seen))
	}
}
