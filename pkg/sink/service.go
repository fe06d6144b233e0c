package sink

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/store"
)

// Store is what the sinks need of the collector's store: revisions by
// sequence, the last sequence (for the lag), and the cursors and leases.
type Store interface {
	store.SinkCursors
	ReadAfter(ctx context.Context, after uint64, f store.Filter, limit int) ([]store.Stored, uint64, error)
	LastSeq(ctx context.Context) (uint64, error)
}

// Options tunes a Service; the zero value is fine.
type Options struct {
	Logger  *zap.Logger
	Metrics *Metrics
	// Owner names this collector replica in the sinks' leases; default
	// the host name (the pod name) and a random suffix, so a restarted
	// pod is a new owner.
	Owner string
	// LeaseTTL is how long a replica holds a sink without renewing it
	// (default 30s): after a replica dies, another takes its sinks over
	// within LeaseTTL. It renews every LeaseTTL/3.
	LeaseTTL time.Duration
	// PollInterval is how often an idle sink reads the store when no
	// wake-up came (default 1s). PostgreSQL stores wake sinks at once
	// (store.Watcher); SQLite is read every PollInterval.
	PollInterval time.Duration
}

// sender delivers records to one destination. send returns how many of
// recs, from the first, the destination acknowledged; a per-alert sender's
// error is about recs[n], a batch sender's (n is 0 then) about the batch.
type sender interface {
	send(ctx context.Context, recs []Record) (int, error)
	close() error
}

// Service runs every configured sink.
type Service struct {
	st      Store
	opts    Options
	runners []*runner
	wake    *broadcast
}

// New resolves the sinks' secrets, builds their clients and returns the
// service; Run starts it. Errors name the field of the sinks file.
func New(cfg *Config, st Store, opts Options) (*Service, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = crand.Read(b[:])
		opts.Owner = host + "-" + hex.EncodeToString(b[:])
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 30 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	s := &Service{st: st, opts: opts, wake: newBroadcast()}
	for i := range cfg.Sinks {
		spec := cfg.Sinks[i]
		field := fmt.Sprintf("sinks[%d] %q", i, spec.Name)
		r := &runner{spec: spec, st: st, m: opts.Metrics, owner: opts.Owner, ttl: opts.LeaseTTL,
			poll: opts.PollInterval, wake: s.wake, log: opts.Logger.With(zap.String("sink", spec.Name))}
		snd, perAlert, err := newSender(&spec, field, r)
		if err != nil {
			s.close()
			return nil, err
		}
		r.snd, r.perAlert = snd, perAlert
		r.filter = store.Filter{MinSeverity: spec.Filter.MinSeverity}
		r.namespaces, r.rules = set(spec.Filter.Namespaces), set(spec.Filter.Rules)
		if len(spec.Filter.Namespaces) == 1 {
			r.filter.Namespace = spec.Filter.Namespaces[0]
		}
		if len(spec.Filter.Rules) == 1 {
			r.filter.RuleID = spec.Filter.Rules[0]
		}
		opts.Metrics.init(spec.Name)
		s.runners = append(s.runners, r)
	}
	return s, nil
}

func set(l []string) map[string]bool {
	if len(l) == 0 {
		return nil
	}
	m := map[string]bool{}
	for _, v := range l {
		m[v] = true
	}
	return m
}

func newSender(spec *Spec, field string, r *runner) (sender, bool, error) {
	now := time.Now
	switch spec.Type {
	case TypeWebhook:
		u, err := spec.Webhook.URL.resolve(field + ".webhook.url")
		if err != nil {
			return nil, false, err
		}
		c, err := newHTTPClient(spec.Webhook.TLS, field+".webhook.url", u, spec.Timeout)
		if err != nil {
			return nil, false, err
		}
		p := &httpPoster{client: c, url: u, now: now, header: http.Header{"Content-Type": {"application/json"}}}
		if spec.Webhook.HMACKey.isSet() {
			k, err := spec.Webhook.HMACKey.resolve(field + ".webhook.hmacKey")
			if err != nil {
				return nil, false, err
			}
			if len(k) < 16 {
				return nil, false, fmt.Errorf("%s.webhook.hmacKey: %d bytes, use at least 16 random bytes", field, len(k))
			}
			p.key = []byte(k)
		}
		return &webhook{p: p, max: spec.MaxMessageBytes}, true, nil
	case TypeSlack, TypeTeams, TypeMattermost:
		u, err := spec.Chat.URL.resolve(field + ".chat.url")
		if err != nil {
			return nil, false, err
		}
		c, err := newHTTPClient(nil, field+".chat.url", u, spec.Timeout)
		if err != nil {
			return nil, false, err
		}
		p := &httpPoster{client: c, url: u, now: now, header: http.Header{"Content-Type": {"application/json"}}}
		return &chat{p: p, kind: spec.Type, max: spec.MaxMessageBytes,
			policy:  newRevisionPolicy(spec.Chat.Revisions, spec.Chat.Throttle),
			skipped: func(n int) { r.m.skipped.WithLabelValues(spec.Name).Add(float64(n)) }}, true, nil
	case TypeSplunkHEC:
		h := spec.SplunkHEC
		u, err := h.URL.resolve(field + ".splunkHec.url")
		if err != nil {
			return nil, false, err
		}
		tok, err := h.Token.resolve(field + ".splunkHec.token")
		if err != nil {
			return nil, false, err
		}
		c, err := newHTTPClient(h.TLS, field+".splunkHec.url", u, spec.Timeout)
		if err != nil {
			return nil, false, err
		}
		p := &httpPoster{client: c, url: hecURL(u), now: now,
			header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Splunk " + tok}}}
		src, st := h.Source, h.SourceType
		if src == "" {
			src = "errnowatch"
		}
		if st == "" {
			st = "errnowatch:alert"
		}
		return &hec{p: p, max: spec.MaxMessageBytes, index: h.Index, source: src, sourcetyp: st}, false, nil
	case TypeSyslog:
		sl := spec.Syslog
		snd := &syslogSender{addr: sl.Address, format: sl.Format, facility: facilities[sl.Facility],
			appName: sl.AppName, max: spec.MaxMessageBytes, timeout: spec.Timeout}
		host, _ := os.Hostname()
		snd.hostname = headerField(host, 255)
		if sl.TLS != nil {
			h, _, _ := splitHostPort(sl.Address)
			cfg, err := sl.TLS.config(field+".syslog.tls", h)
			if err != nil {
				return nil, false, err
			}
			snd.tls = cfg
		}
		return snd, false, nil
	default:
		o, err := newOTLP(spec.OTLP, field+".otlp", spec.MaxMessageBytes, func(n int, reason string) {
			r.m.deadLetters.WithLabelValues(spec.Name, reason).Add(float64(n))
			r.log.Warn("OTLP receiver rejected log records: dead-lettered", zap.Int("records", n))
		})
		return o, false, err
	}
}

func (s *Service) close() {
	for _, r := range s.runners {
		if err := r.snd.close(); err != nil {
			s.opts.Logger.Warn("close sink", zap.String("sink", r.spec.Name), zap.Error(err))
		}
	}
}

// Run delivers every sink until ctx ends, then releases their leases and
// closes their clients. It returns nil when ctx ended.
func (s *Service) Run(ctx context.Context) error {
	defer s.close()
	var wg sync.WaitGroup
	if w, ok := s.st.(store.Watcher); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.watch(ctx, w)
		}()
	}
	for _, r := range s.runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// watch wakes the sinks when any collector sharing the store stored
// alerts; a broken watch is restarted (the poll covers the gap).
func (s *Service) watch(ctx context.Context, w store.Watcher) {
	for ctx.Err() == nil {
		err := w.Watch(ctx, func(uint64) { s.wake.publish() })
		if ctx.Err() != nil {
			return
		}
		s.opts.Logger.Warn("watch the store for new alerts; sinks poll meanwhile", zap.Error(err))
		sleep(ctx, 5*time.Second)
	}
}

// broadcast wakes every waiting runner at once.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

func (b *broadcast) publish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// runner delivers one sink: it holds the sink's lease, reads the store
// after the acknowledged cursor, delivers, and acknowledges.
type runner struct {
	spec     Spec
	snd      sender
	perAlert bool
	st       Store
	m        *Metrics
	log      *zap.Logger
	owner    string
	ttl      time.Duration
	poll     time.Duration
	wake     *broadcast

	filter            store.Filter
	namespaces, rules map[string]bool

	renewed time.Time
}

func (r *runner) run(ctx context.Context) {
	held := false
	defer func() {
		r.notLeader()
		if held {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := r.st.ReleaseSink(rctx, r.spec.Name, r.owner); err != nil {
				r.log.Warn("release sink lease; another replica takes over when it expires", zap.Error(err))
			}
		}
	}()
	for ctx.Err() == nil {
		cursor, err := r.claim(ctx)
		if err != nil {
			held = false
			r.notLeader()
			if !errors.Is(err, store.ErrLeaseHeld) && ctx.Err() == nil {
				r.log.Warn("claim sink lease", zap.Error(err))
			}
			sleep(ctx, r.ttl/3)
			continue
		}
		if !held {
			r.log.Info("delivering sink", zap.String("owner", r.owner), zap.Uint64("cursor", cursor))
		}
		held = true
		r.m.leader.WithLabelValues(r.spec.Name).Set(1)
		err = r.deliverFrom(ctx, cursor)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, store.ErrLeaseHeld) {
			held = false
			r.notLeader()
			r.log.Warn("lost the sink's lease to another replica; it resumes from the last acknowledged alert")
			continue
		}
		r.log.Warn("sink stopped; resuming from the last acknowledged alert", zap.Error(err))
		sleep(ctx, r.spec.Retry.Initial)
	}
}

// notLeader zeroes what only the lease holder measures, so that the
// largest value over replicas is the holder's.
func (r *runner) notLeader() {
	r.m.leader.WithLabelValues(r.spec.Name).Set(0)
	r.m.lag.WithLabelValues(r.spec.Name).Set(0)
	r.m.lagSeconds.WithLabelValues(r.spec.Name).Set(0)
}

func (r *runner) claim(ctx context.Context) (uint64, error) {
	var start uint64
	if r.spec.StartAt == "end" {
		last, err := r.st.LastSeq(ctx)
		if err != nil {
			return 0, err
		}
		start = last
	}
	c, err := r.st.ClaimSink(ctx, r.spec.Name, r.owner, r.ttl, start)
	if err == nil {
		r.renewed = time.Now()
	}
	return c, err
}

// renew keeps the lease when a third of it has passed.
func (r *runner) renew(ctx context.Context) error {
	if time.Since(r.renewed) < r.ttl/3 {
		return nil
	}
	_, err := r.claim(ctx)
	return err
}

func (r *runner) deliverFrom(ctx context.Context, cursor uint64) error {
	for ctx.Err() == nil {
		if err := r.renew(ctx); err != nil {
			return err
		}
		woken := r.wake.wait() // before reading, so a wake-up during the read is not lost
		revs, next, err := r.st.ReadAfter(ctx, cursor, r.filter, r.spec.BatchSize)
		if err != nil {
			return fmt.Errorf("read alerts after %d: %w", cursor, err)
		}
		if last, err := r.st.LastSeq(ctx); err == nil && last >= cursor {
			r.m.lag.WithLabelValues(r.spec.Name).Set(float64(last - cursor))
		}
		if next == cursor {
			r.m.lagSeconds.WithLabelValues(r.spec.Name).Set(0)
			// Wake at least every third of the lease to renew it: an idle
			// holder must not let it lapse and race a replica that claims it.
			t := time.NewTimer(min(r.poll, r.ttl/3))
			select {
			case <-ctx.Done():
			case <-woken:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		recs := make([]Record, 0, len(revs))
		for _, st := range revs {
			if (r.namespaces == nil || r.namespaces[st.Alert.Namespace]) && (r.rules == nil || r.rules[st.Alert.RuleID]) {
				recs = append(recs, fromStored(st))
			}
		}
		r.m.skipped.WithLabelValues(r.spec.Name).Add(float64(len(revs) - len(recs)))
		if err := r.deliver(ctx, recs); err != nil {
			return err
		}
		if err := r.st.AckSink(ctx, r.spec.Name, r.owner, next); err != nil {
			return err
		}
		cursor = next
	}
	return nil
}

// deliver sends recs until the destination took or refused each, retrying
// with backoff, acknowledging as it goes.
func (r *runner) deliver(ctx context.Context, recs []Record) error {
	attempt, single := 0, false
	for len(recs) > 0 {
		r.m.lagSeconds.WithLabelValues(r.spec.Name).Set(time.Since(recs[0].StoredTime).Seconds())
		// Hold the lease before every request, and send a per-alert sink's
		// alerts one request at a time, each acknowledged before the next:
		// a replica whose lease lapsed while it sent must not send on, and
		// what another replica may send again is the one request in flight.
		if err := r.renew(ctx); err != nil {
			return err
		}
		batch := recs
		if single || r.perAlert {
			batch = recs[:1]
		}
		sctx, cancel := context.WithTimeout(ctx, r.spec.Timeout)
		n, err := r.snd.send(sctx, batch)
		cancel()
		if n > 0 {
			r.m.delivered.WithLabelValues(r.spec.Name).Add(float64(n))
			if aerr := r.st.AckSink(ctx, r.spec.Name, r.owner, recs[n-1].Sequence); aerr != nil {
				return aerr
			}
			recs, attempt = recs[n:], 0
		}
		switch {
		case err == nil:
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case isPermanent(err) && !r.perAlert && !single && len(batch)-n > 1:
			single = true // find which alert the destination refuses
			continue
		case isPermanent(err):
			reason := deadRejected
			if errors.Is(err, errTooLarge) {
				reason = deadTooLarge
			}
			if derr := r.deadLetter(ctx, recs[:1], reason, err); derr != nil {
				return derr
			}
			recs = recs[1:]
			continue
		}
		attempt++
		r.m.retries.WithLabelValues(r.spec.Name).Inc()
		if r.spec.Retry.MaxAttempts > 0 && attempt >= r.spec.Retry.MaxAttempts {
			k := len(batch) - n
			if derr := r.deadLetter(ctx, recs[:k], deadAttempts, err); derr != nil {
				return derr
			}
			recs, attempt = recs[k:], 0
			continue
		}
		d := r.backoff(attempt)
		r.log.Warn("deliver alerts; retrying", zap.Error(err), zap.Int("attempt", attempt), zap.Duration("backoff", d),
			zap.Uint64("sequence", recs[0].Sequence))
		if err := r.wait(ctx, d); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// wait sleeps d, renewing the lease meanwhile: a backoff longer than the
// lease must not hand the sink to another replica while this one still
// holds unacknowledged alerts.
func (r *runner) wait(ctx context.Context, d time.Duration) error {
	for end := time.Now().Add(d); ctx.Err() == nil; {
		left := time.Until(end)
		if left <= 0 {
			break
		}
		sleep(ctx, min(left, r.ttl/3))
		if err := r.renew(ctx); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (r *runner) deadLetter(ctx context.Context, recs []Record, reason string, err error) error {
	for _, rec := range recs {
		r.log.Error("dead-lettered an alert: the destination will not get it", zap.String("alert", rec.ID),
			zap.Uint32("revision", rec.Revision), zap.Uint64("sequence", rec.Sequence), zap.String("rule", rec.RuleID),
			zap.String("reason", reason), zap.Error(err))
	}
	r.m.deadLetters.WithLabelValues(r.spec.Name, reason).Add(float64(len(recs)))
	return r.st.AckSink(ctx, r.spec.Name, r.owner, recs[len(recs)-1].Sequence)
}

// backoff is Initial doubling per attempt up to Max, with ±20% jitter so
// replicas and sinks do not retry in step.
func (r *runner) backoff(attempt int) time.Duration {
	d := r.spec.Retry.Initial
	for i := 1; i < attempt && d < r.spec.Retry.Max; i++ {
		d *= 2
	}
	d = min(d, r.spec.Retry.Max)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
