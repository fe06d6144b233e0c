// Command promql-metrics names the metrics PromQL expressions select, with
// the Prometheus module's own parser, for the chart's tests: they check that
// every query in the PrometheusRule and the Grafana dashboard names a metric
// errnowatch exports.
//
// It reads a JSON array of expressions on stdin and writes a JSON array of
// {"metrics": [...], "error": "..."} in the same order. A selector without a
// metric name (a bare {job="x"}) is reported as an error: such a query
// cannot be checked.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type result struct {
	Metrics []string `json:"metrics"`
	Error   string   `json:"error,omitempty"`
}

func main() {
	var exprs []string
	if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
		fmt.Fprintln(os.Stderr, "promql-metrics: read a JSON array of expressions on stdin:", err)
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	out := make([]result, len(exprs))
	for i, e := range exprs {
		out[i] = names(p, e)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "promql-metrics:", err)
		os.Exit(1)
	}
}

func names(p parser.Parser, expr string) result {
	ast, err := p.ParseExpr(expr)
	if err != nil {
		return result{Error: err.Error()}
	}
	var r result
	parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			r.Error = fmt.Sprintf("selector %s names no metric", vs)
			return nil
		}
		if !slices.Contains(r.Metrics, name) {
			r.Metrics = append(r.Metrics, name)
		}
		return nil
	})
	slices.Sort(r.Metrics)
	return r
}
