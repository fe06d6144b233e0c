package collector

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/cache"
)

// limiters holds one token bucket per caller for publishing and one for
// queries, forgetting callers idle for limiterIdle so that many short-lived
// identities cannot fill memory.
type limiters struct {
	ingestRate, queryRate, peerRate float64
	ingestBurst                     int

	mu     sync.Mutex // makes get-or-create atomic
	ingest *cache.LRUExpireCache
	query  *cache.LRUExpireCache
	peer   *cache.LRUExpireCache
}

const (
	limiterIdle    = 10 * time.Minute
	limiterCallers = 10000
)

func newLimiters(cfg Config) *limiters {
	return &limiters{
		ingestRate: cfg.IngestAlertsPerSecond,
		// A full batch must always fit in the bucket, or it could never
		// pass.
		ingestBurst: max(int(cfg.IngestAlertsPerSecond), cfg.MaxBatchAlerts),
		queryRate:   cfg.QueriesPerSecond,
		peerRate:    cfg.PeerCallsPerSecond,
		ingest:      cache.NewLRUExpireCache(limiterCallers),
		query:       cache.NewLRUExpireCache(limiterCallers),
		peer:        cache.NewLRUExpireCache(limiterCallers),
	}
}

func (l *limiters) get(c *cache.LRUExpireCache, who string, r rate.Limit, burst int) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := c.Get(who); ok {
		c.Add(who, v, limiterIdle)
		return v.(*rate.Limiter)
	}
	lim := rate.NewLimiter(r, burst)
	c.Add(who, lim, limiterIdle)
	return lim
}

func (l *limiters) forIngest(who string) *rate.Limiter {
	return l.get(l.ingest, who, rate.Limit(l.ingestRate), l.ingestBurst)
}

func (l *limiters) forQuery(who string) *rate.Limiter {
	return l.get(l.query, who, rate.Limit(l.queryRate), max(1, int(2*l.queryRate)))
}

// forPeer limits a remote address's calls before they are authenticated.
func (l *limiters) forPeer(host string) *rate.Limiter {
	return l.get(l.peer, host, rate.Limit(l.peerRate), max(1, int(2*l.peerRate)))
}

// streamCount counts each identity's open streams.
type streamCount struct {
	mu  sync.Mutex
	max int
	n   map[string]int
}

// acquire takes one of who's streams, or reports false when who has max.
func (c *streamCount) acquire(who string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[who] >= c.max {
		return false
	}
	c.n[who]++
	return true
}

func (c *streamCount) release(who string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[who]--; c.n[who] <= 0 {
		delete(c.n, who)
	}
}
