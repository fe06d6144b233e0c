package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// hecPath is where HEC takes JSON events, below the configured base URL.
const hecPath = "/services/collector/event"

// maxHECBody bounds one HEC request; a batch over it goes in several.
const maxHECBody = 1 << 20

// hec sends batches to Splunk's HTTP Event Collector: events concatenated
// in one body, "Authorization: Splunk <token>", success being HTTP 200
// with {"text":"Success","code":0}.
type hec struct {
	p                        *httpPoster
	max                      int
	index, source, sourcetyp string
}

type hecEvent struct {
	Time       json.Number `json:"time"`
	Host       string      `json:"host,omitempty"`
	Source     string      `json:"source"`
	SourceType string      `json:"sourcetype"`
	Index      string      `json:"index,omitempty"`
	Event      *Record     `json:"event"`
}

func (h *hec) event(r *Record) ([]byte, error) {
	return json.Marshal(hecEvent{
		Time: json.Number(fmt.Sprintf("%d.%03d", r.LastSeen.Unix(), r.LastSeen.Nanosecond()/1e6)),
		Host: r.Node, Source: h.source, SourceType: h.sourcetyp, Index: h.index, Event: r,
	})
}

func (h *hec) send(ctx context.Context, recs []Record) (int, error) {
	var body bytes.Buffer
	n := 0
	for n < len(recs) {
		ev, err := fit(recs[n], h.max, h.event)
		if err != nil {
			if n == 0 {
				return 0, err
			}
			break // send what is encoded; the runner comes back for this one
		}
		if body.Len() > 0 && body.Len()+len(ev) > maxHECBody {
			break
		}
		body.Write(ev)
		n++
	}
	answer, err := h.p.post(ctx, body.Bytes())
	if err != nil {
		return 0, err
	}
	var res struct {
		Text string `json:"text"`
		Code int    `json:"code"`
	}
	if err := json.Unmarshal(answer, &res); err != nil {
		return 0, fmt.Errorf("HEC answered 2xx with an unreadable body: %w", err)
	}
	if res.Code != 0 {
		return 0, fmt.Errorf("HEC answered code %d: %s", res.Code, plain(res.Text, 200))
	}
	return n, nil
}

func (h *hec) close() error { h.p.client.CloseIdleConnections(); return nil }

func hecURL(base string) string { return strings.TrimRight(base, "/") + hecPath }
