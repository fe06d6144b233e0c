package ui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/store"
)

// Chart geometry, in SVG user units (the SVG scales to its box).
const (
	chartW, chartH         = 960.0, 220.0
	padL, padR, padT, padB = 48.0, 8.0, 8.0, 28.0
	maxBars                = 240
	// Ranges longer than this many hours are charted in whole days, which
	// the daily rollups answer (a month: 30 bars from about 1 000 daily
	// rows rather than 240 from 28 800 hourly ones).
	dayStepsFrom = 20 * 24
)

// Chart is a stacked bar chart drawn as SVG by the template: one bar per
// time step, one segment per series. Each bar links to its time range, so
// clicking zooms in.
type Chart struct {
	ID     string
	Title  string
	W, H   float64
	Bars   []Bar
	Legend []Series
	YTicks []Tick
	XTicks []Tick
	Empty  bool
	Bottom float64 // y of the x axis
}

// Bar is one time step.
type Bar struct {
	X, W  float64
	Href  string
	Title string
	Segs  []Seg
}

// Seg is one series' part of a bar.
type Seg struct {
	Y, H  float64
	Class string
}

// Series names one colour.
type Series struct{ Name, Class string }

// Tick is an axis label at a position.
type Tick struct {
	Pos   float64
	Label string
}

// chartPoint is one count of one series in one bucket.
type chartPoint struct {
	bucket int64
	series int
	n      uint64
}

// chartStep is how many hours one bar of a chart over [lo, hi) counts, so
// that at most maxBars bars are drawn, in whole days past dayStepsFrom.
// The chart's rollup query asks for steps of it (store.RollupQuery.Step),
// not hours; its bars start at store.StepOrigin.
func chartStep(lo, hi int64) int64 {
	switch {
	case hi <= lo:
		return 1
	case hi-lo > dayStepsFrom:
		days := (hi - lo + 23) / 24
		return max((days+maxBars-1)/maxBars, 1) * 24
	}
	return max((hi-lo+maxBars-1)/maxBars, 1)
}

// buildChart lays out points over the hours [lo, hi), merging hours into
// steps so that at most maxBars bars are drawn; href links a step's range.
func buildChart(id, title string, lo, hi int64, legend []Series, pts []chartPoint, href func(from, to time.Time) string) Chart {
	c := Chart{ID: id, Title: title, W: chartW, H: chartH, Legend: legend, Bottom: chartH - padB}
	if hi <= lo {
		hi = lo + 1
	}
	step := chartStep(lo, hi)
	if step%24 == 0 {
		title = strings.Replace(title, "per hour", "per day", 1)
	}
	c.Title = title
	// Bars from the step origin: the first may start before lo (a day's
	// bar), and counts only what [lo, hi) holds.
	origin := store.StepOrigin(lo, step)
	nbars := int((hi - origin + step - 1) / step)
	counts := make([][]uint64, nbars)
	for i := range counts {
		counts[i] = make([]uint64, len(legend))
	}
	var peak uint64
	for _, p := range pts {
		if p.bucket < origin || p.bucket >= hi || p.series < 0 || p.series >= len(legend) {
			continue
		}
		counts[(p.bucket-origin)/step][p.series] += p.n
	}
	for _, bar := range counts {
		var sum uint64
		for _, n := range bar {
			sum += n
		}
		peak = max(peak, sum)
	}
	c.Empty = peak == 0
	peak = niceCeil(peak)
	plotW, plotH := chartW-padL-padR, chartH-padT-padB
	bw := plotW / float64(nbars)
	for i, bar := range counts {
		from := store.BucketStart(max(origin+int64(i)*step, lo))
		to := store.BucketStart(min(origin+int64(i+1)*step, hi))
		b := Bar{X: padL + float64(i)*bw, W: max(bw-1, 0.5), Href: href(from, to)}
		y := chartH - padB
		var sum uint64
		for s, n := range bar {
			if n == 0 {
				continue
			}
			h := float64(n) / float64(peak) * plotH
			y -= h
			sum += n
			b.Segs = append(b.Segs, Seg{Y: y, H: h, Class: legend[s].Class})
		}
		b.Title = fmt.Sprintf("%s – %s UTC: %d", from.Format("Jan 2 15:04"), to.Format("15:04"), sum)
		if step%24 == 0 {
			b.Title = fmt.Sprintf("%s – %s UTC: %d", from.Format("Jan 2 15:04"), to.Format("Jan 2 15:04"), sum)
		}
		c.Bars = append(c.Bars, b)
	}
	// Whole-number ticks: niceCeil's peaks divide by one of these.
	n := uint64(4)
	for _, d := range []uint64{4, 5, 2} {
		if peak%d == 0 {
			n = d
			break
		}
	}
	for i := uint64(0); i <= n; i++ {
		c.YTicks = append(c.YTicks, Tick{Pos: chartH - padB - plotH*float64(i)/float64(n), Label: compact(peak * i / n)})
	}
	// The axis spans the bars: from the origin, nbars steps.
	end := origin + int64(nbars)*step
	labels := 6
	for i := 0; i < labels; i++ {
		b := origin + (end-origin)*int64(i)/int64(labels)
		format := "Jan 2 15:04"
		if end-origin > 24*14 {
			format = "Jan 2"
		}
		c.XTicks = append(c.XTicks, Tick{Pos: padL + plotW*float64(b-origin)/float64(end-origin), Label: store.BucketStart(b).Format(format)})
	}
	return c
}

// niceCeil rounds a chart's peak up to 1, 2 or 5 times a power of ten, so
// the axis reads in round numbers.
func niceCeil(v uint64) uint64 {
	if v <= 4 {
		return 4
	}
	p := uint64(1)
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []uint64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func compact(v uint64) string {
	switch {
	case v >= 10_000_000:
		return strconv.FormatUint(v/1_000_000, 10) + "M"
	case v >= 10_000:
		return strconv.FormatUint(v/1000, 10) + "k"
	}
	return strconv.FormatUint(v, 10)
}

// severityLegend is one series per severity, worst on top.
var severityLegend = func() []Series {
	var out []Series
	for s := alert.SeverityInfo; s <= alert.SeverityCritical; s++ {
		out = append(out, Series{Name: s.String(), Class: "sev-" + s.String()})
	}
	return out
}()

// ruleLegend gives the busiest rules a colour each and the rest one
// "other" series.
func ruleLegend(rows []store.RollupRow, colours int) ([]Series, map[string]int) {
	totals := map[string]uint64{}
	for _, r := range rows {
		totals[r.RuleID] += r.Alerts
	}
	rules := make([]string, 0, len(totals))
	for r := range totals {
		rules = append(rules, r)
	}
	slices.SortFunc(rules, func(a, b string) int {
		if totals[a] != totals[b] {
			if totals[a] > totals[b] {
				return -1
			}
			return 1
		}
		return compareStrings(a, b)
	})
	idx := map[string]int{}
	var legend []Series
	for i, r := range rules {
		if i == colours-1 && len(rules) > colours {
			legend = append(legend, Series{Name: fmt.Sprintf("%d other rules", len(rules)-i), Class: "c-other"})
			for _, rest := range rules[i:] {
				idx[rest] = i
			}
			break
		}
		legend = append(legend, Series{Name: r, Class: "c" + strconv.Itoa(i)})
		idx[r] = i
	}
	return legend, idx
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
