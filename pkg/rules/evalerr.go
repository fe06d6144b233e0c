package rules

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/alert"
)

// EvalErrorRuleID is the rule ID of the alert that reports a rule whose
// condition fails at run time. Such an evaluation matches nothing, so a
// broken rule would otherwise go blind without a word: the engine raises
// one alert per rule (not per evaluation), updated at most once per the
// rule's cooldown while errors go on.
const EvalErrorRuleID = "errnowatch.rules.eval_error"

// maxErrorSeries bounds the rule label of the per-rule error counter; rule
// ids past it (a stream of reloads with new ids) count under "_other".
const maxErrorSeries = 1000

// evalErrReport is what a rule's failed evaluations have raised.
type evalErrReport struct {
	alert    *alert.Alert // nil until the first error
	count    uint64       // errors since the alert was raised
	lastErr  string
	lastEmit time.Time
	dirty    bool // errors since the alert was last emitted
}

// noteEvalErr counts a failed evaluation of s's condition.
func (e *Engine) noteEvalErr(s *ruleState, err error, now time.Time) {
	e.evalErrs.Add(1)
	e.evalErrsByRule.add(s.r.ID)
	if !s.loggedErr {
		s.loggedErr = true
		e.log.Warn("rule condition failed at run time; treating as no match and raising an alert",
			zap.String("rule", s.r.ID), zap.String("file", s.r.File), zap.Int("line", s.r.Line), zap.Error(err))
	}
	rep := &s.evalErr
	if rep.alert == nil {
		rep.alert = &alert.Alert{
			ID:       alert.NewID(now),
			RuleID:   EvalErrorRuleID,
			Severity: alert.SeverityHigh,
			Tags:     []string{"errnowatch", "rules"},
			Description: "A rule's condition failed at run time, so it matched nothing for the keys it failed on. " +
				"Fix the condition (the message names the rule, its file and the error) and reload the rules.",
			GroupBy:   alert.GroupByNode,
			FirstSeen: now,
			Node:      e.cfg.Node,
			Host:      true,
		}
	}
	rep.count++
	rep.lastErr = err.Error()
	rep.alert.LastSeen = now
	rep.dirty = true
}

// emitEvalErr emits s's error report when it has news and its cooldown
// since the last emit has passed.
func (e *Engine) emitEvalErr(s *ruleState, now time.Time, out []alert.Alert) []alert.Alert {
	rep := &s.evalErr
	if !rep.dirty || (rep.alert.Revision > 0 && now.Sub(rep.lastEmit) < s.r.Cooldown) {
		return out
	}
	a := rep.alert
	a.Revision++
	a.Total = rep.count
	a.Message = fmt.Sprintf("rule %s (%s:%d) failed %d evaluations since %s; they matched nothing. Last error: %s",
		s.r.ID, s.r.File, s.r.Line, rep.count, a.FirstSeen.UTC().Format(time.RFC3339), rep.lastErr)
	rep.dirty = false
	rep.lastEmit = now
	return append(out, *a)
}

// ruleCounter counts per rule id, for the per-rule error metric.
type ruleCounter struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (c *ruleCounter) add(rule string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]uint64{}
	}
	if _, ok := c.n[rule]; !ok && len(c.n) >= maxErrorSeries {
		rule = "_other"
	}
	c.n[rule]++
}

// EvalErrorsByRule returns the failed evaluations per rule id since the
// engine started.
func (e *Engine) EvalErrorsByRule() map[string]uint64 {
	c := &e.evalErrsByRule
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

var evalErrorsDesc = prometheus.NewDesc("errnowatch_rules_evaluation_errors_total",
	"Rule condition evaluations that failed at run time (and matched nothing), by rule.", []string{"rule"}, nil)

func (e *Engine) collectEvalErrors(ch chan<- prometheus.Metric) {
	for rule, n := range e.EvalErrorsByRule() {
		ch <- prometheus.MustNewConstMetric(evalErrorsDesc, prometheus.CounterValue, float64(n), rule)
	}
}
