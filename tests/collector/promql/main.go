// Command promql parses PromQL expressions with Prometheus' own parser, for
// the Grafana dashboard's test (tests/collector/test_grafana_dashboard.py).
//
// Input on stdin: a JSON array of expressions. Output on stdout: a JSON array
// of the same length, each item {"error": "..."} or {"metrics": [...]}, the
// metric names the expression selects (from its vector selectors).
package main

import (
	"encoding/json"
	"os"
	"sort"

	"github.com/prometheus/prometheus/promql/parser"
)

type result struct {
	Error   string   `json:"error,omitempty"`
	Metrics []string `json:"metrics,omitempty"`
	Labels  []string `json:"labels,omitempty"`
}

func main() {
	var exprs []string
	if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
		os.Stderr.WriteString("promql: stdin is not a JSON array of strings: " + err.Error() + "\n")
		os.Exit(2)
	}
	// The stable language only: a dashboard must work on a stock Prometheus.
	promql := parser.NewParser(parser.Options{})
	results := make([]result, len(exprs))
	for i, text := range exprs {
		expr, err := promql.ParseExpr(text)
		if err != nil {
			results[i] = result{Error: err.Error()}
			continue
		}
		metrics := map[string]bool{}
		labels := map[string]bool{}
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			switch n := node.(type) {
			case *parser.VectorSelector:
				for _, m := range n.LabelMatchers {
					if m.Name == "__name__" {
						metrics[m.Value] = true
					} else {
						labels[m.Name] = true
					}
				}
			case *parser.AggregateExpr:
				for _, l := range n.Grouping {
					labels[l] = true
				}
			case *parser.BinaryExpr:
				if n.VectorMatching != nil {
					for _, l := range n.VectorMatching.MatchingLabels {
						labels[l] = true
					}
					for _, l := range n.VectorMatching.Include {
						labels[l] = true
					}
				}
			}
			return nil
		})
		results[i] = result{Metrics: sortedKeys(metrics), Labels: sortedKeys(labels)}
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		os.Exit(1)
	}
}

func sortedKeys(set map[string]bool) []string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
