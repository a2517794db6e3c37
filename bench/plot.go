package bench

import (
	"bytes"
	"fmt"
	"html"
	"math"
)

// Series is one line of a plot.
type Series struct {
	Name string
	X, Y []float64
}

// plotColors tell the lines apart; etcdkit's series come first in each
// pair, stock second.
var plotColors = []string{"#1f77b4", "#aec7e8", "#d62728", "#ff9896", "#9467bd", "#2ca02c", "#98df8a"}

// LinePlot draws series as an SVG line chart with axes from zero, ticks
// and a legend: a few lines of hand-written SVG, so the benchmark needs no
// plotting library.
func LinePlot(title, xLabel, yLabel string, series []Series) []byte {
	const (
		w, h                     = 860, 460
		left, right, top, bottom = 70, 300, 40, 60
	)
	pw, ph := float64(w-left-right), float64(h-top-bottom)
	var xMax, yMax float64
	for _, s := range series {
		for i := range s.X {
			xMax, yMax = math.Max(xMax, s.X[i]), math.Max(yMax, s.Y[i])
		}
	}
	xStep, yStep := niceCeil(xMax/5), niceCeil(yMax/5)
	xMax, yMax = xStep*math.Max(1, math.Ceil(xMax/xStep)), yStep*math.Max(1, math.Ceil(yMax/yStep))
	px := func(x float64) float64 { return float64(left) + x/xMax*pw }
	py := func(y float64) float64 { return float64(top) + ph - y/yMax*ph }

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	for xv := 0.0; xv <= xMax*1.0001; xv += xStep {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`+"\n", px(xv), top, px(xv), h-bottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px(xv), h-bottom+18, tick(xv))
	}
	for yv := 0.0; yv <= yMax*1.0001; yv += yStep {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`+"\n", left, py(yv), w-right, py(yv))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, py(yv)+4, tick(yv))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, h-bottom, w-right, h-bottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, top, left, h-bottom)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", float64(left)+pw/2, h-16, html.EscapeString(xLabel))
	fmt.Fprintf(&b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">%s</text>`+"\n", float64(top)+ph/2, float64(top)+ph/2, html.EscapeString(yLabel))
	for i, s := range series {
		color := plotColors[i%len(plotColors)]
		var pts bytes.Buffer
		for j := range s.X {
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(s.X[j]), py(s.Y[j]))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(s.X[j]), py(s.Y[j]), color)
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", bytes.TrimSpace(pts.Bytes()), color)
		ly := top + 10 + 20*i
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", w-right+15, ly, w-right+40, ly, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", w-right+46, ly+4, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten, so ticks are
// round numbers.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func tick(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2g", v)
}
