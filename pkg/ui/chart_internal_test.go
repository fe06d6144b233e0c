package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/errnowatch/errnowatch/pkg/store"
)

// A month is charted in whole days from the start of its first day: each
// alert lands in its day's bar, the first and last bars cover only the
// range's part of their day, and the title says so.
func TestChartOfAMonthIsDays(t *testing.T) {
	hour := func(t time.Time) int64 { return t.Unix() / 3600 }
	from := time.Date(2026, 11, 6, 13, 0, 0, 0, time.UTC)
	lo, hi := hour(from), hour(from.Add(30*24*time.Hour))
	if step := chartStep(lo, hi); step != 24 {
		t.Fatalf("a month's step is %d hours, want 24", step)
	}
	if step := chartStep(lo, lo+7*24); step != 1 {
		t.Fatalf("a week's step is %d hours, want 1", step)
	}
	origin := store.StepOrigin(lo, 24)
	pts := []chartPoint{
		{bucket: origin, n: 3},         // the first day, from 13:00
		{bucket: origin + 24*10, n: 5}, // the 11th day
		{bucket: origin + 24*30, n: 7}, // the last day, to 13:00
	}
	var zooms [][2]time.Time
	c := buildChart("x", "Alerts per hour by severity", lo, hi, []Series{{Name: "a"}}, pts, func(f, to time.Time) string {
		zooms = append(zooms, [2]time.Time{f, to})
		return ""
	})
	if len(c.Bars) != 31 {
		t.Fatalf("%d bars for 30 days from 13:00, want 31 (the first and last partial)", len(c.Bars))
	}
	for i, want := range map[int]string{0: ": 3", 10: ": 5", 30: ": 7", 5: ": 0"} {
		if !strings.HasSuffix(c.Bars[i].Title, want) {
			t.Errorf("bar %d: %q, want it to end %q", i, c.Bars[i].Title, want)
		}
	}
	if !zooms[0][0].Equal(from) || !zooms[0][1].Equal(time.Date(2026, 11, 7, 0, 0, 0, 0, time.UTC)) ||
		!zooms[30][1].Equal(from.Add(30*24*time.Hour)) {
		t.Errorf("first bar zooms to %v, last to %v: want the range's part of their days", zooms[0], zooms[30])
	}
	if c.Title != "Alerts per day by severity" {
		t.Errorf("title %q", c.Title)
	}
}
