package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/auth"
)

// livePage is how many revisions a live stream reads from the store at a
// time, which bounds its memory.
const livePage = 100

// liveAlert is what a page gets for each new alert revision.
type liveAlert struct {
	ID        string `json:"id"`
	Rule      string `json:"rule"`
	Severity  string `json:"severity"`
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Node      string `json:"node"`
	Workload  string `json:"workload"`
	Message   string `json:"message"`
	LastSeen  string `json:"last_seen"`
	Total     uint64 `json:"total"`
	Revision  uint32 `json:"revision"`
}

// events streams new alert revisions matching the page's filters as
// Server-Sent Events. Like a SIEM's StreamAlerts, it keeps only a cursor:
// it wakes on the collector's ingest signal and reads the store after the
// cursor, so a slow browser costs one page of memory and misses nothing.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r.Context())
	f, err := parseFilters(r.URL.Query(), time.Now(), s.cfg.PageSize)
	if err != nil {
		s.metrics.refuse(refusedBadInput)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sc, err := s.scopeOf(r.Context(), sess)
	if err == nil && f.Namespace != "" {
		var ok bool
		if ok, err = s.mayRead(r.Context(), sess, sc, f.Namespace); err == nil && !ok {
			s.metrics.refuse(refusedDenied)
			http.Error(w, "you may not read alerts in namespace "+f.Namespace, http.StatusForbidden)
			return
		}
	}
	if err != nil {
		s.log.Warn("ui live stream cannot check access", zap.Error(err))
		http.Error(w, "cannot check your access right now; retry later", http.StatusServiceUnavailable)
		return
	}
	release, ok := s.acquireStream(sess.key)
	if !ok {
		s.metrics.refuse(refusedStreams)
		w.Header().Set("Retry-After", "30")
		http.Error(w, "too many live streams: close some tabs", http.StatusTooManyRequests)
		return
	}
	defer release()
	rc := http.NewResponseController(w)
	cursor, err := s.startCursor(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 5000\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	// Only alerts first seen in the page's range are new to it; without an
	// end (a preset range) every new revision is.
	sf := f.storeFilter(f.Namespace)
	sf.Since, sf.Until = time.Time{}, f.To
	recheck := time.NewTimer(recheckIn(s.cfg.Reauthorize, sess.id))
	defer recheck.Stop()
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		last, next := s.cfg.Wake()
		for cursor < last {
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
			revs, c, err := s.src.ReadAfter(ctx, cursor, sf, livePage)
			cancel()
			if err != nil {
				if r.Context().Err() == nil {
					s.log.Warn("ui live stream read failed", zap.Error(err))
				}
				return
			}
			for i := range revs {
				a := &revs[i].Alert
				// With a namespace filter the store returned only that
				// namespace, which mayRead allowed (it may hold no alerts
				// yet, so be missing from the scope).
				if f.Namespace == "" && !sc.allows(a.Namespace) {
					continue
				}
				row := alertRow(&revs[i])
				b, _ := json.Marshal(liveAlert{ID: row.ID, Rule: row.RuleID, Severity: row.Severity.String(), Namespace: row.Namespace,
					Pod: row.Pod, Node: row.Node, Workload: row.Workload, Message: row.Message,
					LastSeen: row.LastSeen.UTC().Format("2006-01-02 15:04:05") + " UTC", Total: row.Total, Revision: row.Revision})
				fmt.Fprintf(w, "id: %d\nevent: alert\ndata: %s\n\n", revs[i].Seq, b)
			}
			if c == cursor {
				break
			}
			cursor = c
			fmt.Fprintf(w, "id: %d\n\n", cursor)
			if err := s.flush(rc); err != nil {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-next:
		case <-heartbeat.C:
			fmt.Fprint(w, ": heartbeat\n\n")
			if err := s.flush(rc); err != nil {
				return
			}
		case <-recheck.C:
			// The stream ends when the token expires or loses access; the
			// page then finds itself signed out on its next load.
			id, err := s.recheck(r.Context(), sess, f.Namespace)
			if err != nil {
				fmt.Fprint(w, "event: ended\ndata: signed out\n\n")
				_ = s.flush(rc)
				return
			}
			sess.id = id
			s.scopes.Remove(scopeKey(sess))
			if sc, err = s.scopeOf(r.Context(), sess); err != nil {
				return
			}
			recheck.Reset(recheckIn(s.cfg.Reauthorize, sess.id))
		}
	}
}

// flush sends what was written, within the stream's time budget: a
// browser that stops reading is cut off.
func (s *Server) flush(rc *http.ResponseController) error {
	_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	return rc.Flush()
}

// startCursor is where a live stream starts: after the last event the
// browser saw (it sends Last-Event-ID when it reconnects), or now.
func (s *Server) startCursor(r *http.Request) (uint64, error) {
	last, _ := s.cfg.Wake()
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		c, err := strconv.ParseUint(id, 10, 64)
		if err != nil || c > last {
			s.metrics.refuse(refusedBadInput)
			return 0, errors.New("Last-Event-ID is not a sequence of this collector; reload the page")
		}
		return c, nil
	}
	return last, nil
}

// recheck authenticates the session's token again and checks it may
// still read the namespace (or any).
func (s *Server) recheck(ctx context.Context, sess *session, ns string) (auth.Identity, error) {
	if sess.id.Local {
		return sess.id, nil
	}
	fresh, err := s.authenticate(ctx, sess.token)
	if err != nil {
		return auth.Identity{}, err
	}
	if ns != "" && s.cfg.Authorizer != nil {
		ok, _, err := s.cfg.Authorizer.Authorize(ctx, fresh.id, auth.VerbWatch, ns)
		if err != nil || !ok {
			return auth.Identity{}, fmt.Errorf("no longer may watch %s: %v", ns, err)
		}
	}
	return fresh.id, nil
}

func recheckIn(interval time.Duration, id auth.Identity) time.Duration {
	if !id.Expires.IsZero() {
		interval = min(interval, max(time.Until(id.Expires), 0))
	}
	return interval
}

// acquireStream takes one of the person's live streams and one of all.
func (s *Server) acquireStream(key string) (func(), bool) {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if s.nstreams >= s.cfg.MaxStreams || s.streams[key] >= s.cfg.MaxStreamsPerIdentity {
		return nil, false
	}
	s.nstreams++
	s.streams[key]++
	s.metrics.streams.Inc()
	return func() {
		s.streamsMu.Lock()
		defer s.streamsMu.Unlock()
		s.nstreams--
		if s.streams[key]--; s.streams[key] <= 0 {
			delete(s.streams, key)
		}
		s.metrics.streams.Dec()
	}, true
}
