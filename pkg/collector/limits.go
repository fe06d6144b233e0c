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
	ingestRate, queryRate float64
	ingestBurst           int

	mu     sync.Mutex // makes get-or-create atomic
	ingest *cache.LRUExpireCache
	query  *cache.LRUExpireCache
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
		ingest:      cache.NewLRUExpireCache(limiterCallers),
		query:       cache.NewLRUExpireCache(limiterCallers),
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
