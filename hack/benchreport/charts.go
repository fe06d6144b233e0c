package main

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Colours that stay apart for colour-blind readers (Okabe-Ito); the
// baseline is always grey.
var (
	grey    = color.RGBA{0x88, 0x88, 0x88, 0xff}
	palette = []color.Color{
		color.RGBA{0x00, 0x72, 0xb2, 0xff}, // blue: errnowatch
		color.RGBA{0xe6, 0x9f, 0x00, 0xff}, // orange
		color.RGBA{0x00, 0x9e, 0x73, 0xff}, // green
		color.RGBA{0xcc, 0x79, 0xa7, 0xff}, // pink
	}
)

// series is one set of bars of a grouped bar chart: one value per group;
// a missing value (not measured) is NaN-free zero with Missing set.
type series struct {
	Name    string
	Values  []float64
	Missing []bool
	Color   color.Color
}

// barChart is a grouped bar chart: groups along x, one bar per series in
// each group, each bar labelled with its value.
type barChart struct {
	Title, YLabel string
	Groups        []string
	Series        []series
	// Line draws a dashed horizontal reference (e.g. a target) when set.
	Line      float64
	LineLabel string
	// Format formats a bar's label.
	Format string
}

func (c barChart) save(path string) error {
	p := plot.New()
	p.Title.Text = c.Title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Y.Label.Text = c.YLabel
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	w := vg.Points(float64(min(26, 90/max(1, len(c.Series)))))
	top := c.Line
	for i, s := range c.Series {
		vals := make(plotter.Values, len(s.Values))
		copy(vals, s.Values)
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return fmt.Errorf("chart %s: %w", c.Title, err)
		}
		bars.Color = s.Color
		bars.LineStyle.Width = 0
		bars.Offset = w * vg.Length(float64(i)-float64(len(c.Series)-1)/2)
		p.Add(bars)
		p.Legend.Add(s.Name, bars)
		var labels plotter.XYLabels
		for g, v := range s.Values {
			text := fmt.Sprintf(c.Format, v)
			if g < len(s.Missing) && s.Missing[g] {
				text = "n/m"
			}
			labels.XYs = append(labels.XYs, plotter.XY{X: float64(g), Y: v})
			labels.Labels = append(labels.Labels, text)
			top = max(top, v)
		}
		l, err := plotter.NewLabels(labels)
		if err != nil {
			return fmt.Errorf("chart %s: %w", c.Title, err)
		}
		for j := range l.TextStyle {
			l.TextStyle[j].Font.Size = vg.Points(9)
			l.TextStyle[j].XAlign = draw.XCenter
		}
		l.Offset = vg.Point{X: bars.Offset, Y: vg.Points(2)}
		p.Add(l)
	}
	if c.Line > 0 {
		line, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: c.Line}, {X: float64(len(c.Groups)) - 0.5, Y: c.Line}})
		if err != nil {
			return fmt.Errorf("chart %s: %w", c.Title, err)
		}
		line.Color = color.RGBA{0xd5, 0x5e, 0x00, 0xff}
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(line)
		p.Legend.Add(c.LineLabel, line)
	}
	p.NominalX(c.Groups...)
	p.X.Min, p.X.Max = -0.5, float64(len(c.Groups))-0.5
	// Room above the tallest bar for its label and for the legend.
	p.Y.Max = top * (1.25 + 0.08*float64(len(c.Series)))
	return savePNG(p, path)
}

// lineChart plots y against x for each series, with points.
type lineChart struct {
	Title, XLabel, YLabel string
	X                     []float64
	Series                []series
	Format                string
	// Baseline draws a dashed horizontal line at this value when set.
	Baseline      float64
	BaselineLabel string
}

func (c lineChart) save(path string) error {
	p := plot.New()
	p.Title.Text = c.Title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = c.XLabel
	p.Y.Label.Text = c.YLabel
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	top := 0.0
	for _, s := range c.Series {
		var xys plotter.XYs
		var labels plotter.XYLabels
		for i, v := range s.Values {
			if i < len(s.Missing) && s.Missing[i] {
				continue
			}
			xys = append(xys, plotter.XY{X: c.X[i], Y: v})
			labels.XYs = append(labels.XYs, plotter.XY{X: c.X[i], Y: v})
			labels.Labels = append(labels.Labels, fmt.Sprintf(c.Format, v))
			top = max(top, v)
		}
		if len(xys) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return fmt.Errorf("chart %s: %w", c.Title, err)
		}
		line.Color, points.Color = s.Color, s.Color
		points.Shape = draw.CircleGlyph{}
		p.Add(line, points)
		p.Legend.Add(s.Name, line, points)
		l, err := plotter.NewLabels(labels)
		if err != nil {
			return fmt.Errorf("chart %s: %w", c.Title, err)
		}
		for j := range l.TextStyle {
			l.TextStyle[j].Font.Size = vg.Points(9)
			l.TextStyle[j].XAlign = draw.XCenter
		}
		l.Offset = vg.Point{Y: vg.Points(5)}
		p.Add(l)
	}
	p.X.Min = 0
	if len(c.X) > 0 {
		p.X.Max = c.X[len(c.X)-1] * 1.05
	}
	if c.Baseline > 0 {
		line, err := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: c.Baseline}, {X: p.X.Max, Y: c.Baseline}})
		if err != nil {
			return fmt.Errorf("chart %s: %w", c.Title, err)
		}
		line.Color = grey
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(line)
		p.Legend.Add(c.BaselineLabel, line)
	}
	p.Y.Max = max(top*1.3, 1)
	var ticks []plot.Tick
	for _, x := range c.X {
		ticks = append(ticks, plot.Tick{Value: x, Label: fmt.Sprint(x)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	return savePNG(p, path)
}

// savePNG renders p at 144 dpi, so the charts stay sharp on high-density
// screens where GitHub shows them.
func savePNG(p *plot.Plot, path string) error {
	c := vgimg.NewWith(vgimg.UseWH(7*vg.Inch, 4*vg.Inch), vgimg.UseDPI(144), vgimg.UseBackgroundColor(color.White))
	p.Draw(draw.New(c))
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("save chart: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("save chart %s: %w", path, err)
	}
	return f.Close()
}
