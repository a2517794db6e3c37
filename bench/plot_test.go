package bench

import (
	"bytes"
	"strings"
	"testing"
)

// TestLinePlot: every series is drawn and named, and the axes end on round
// numbers just above the data.
func TestLinePlot(t *testing.T) {
	svg := LinePlot("T", "size, MiB", "seconds", []Series{
		{Name: "a <b>", X: []float64{100, 500, 1085}, Y: []float64{1, 7, 49.4}},
		{Name: "c", X: []float64{100, 500, 1085}, Y: []float64{0.5, 3, 8}},
	})
	if bytes.Count(svg, []byte("<polyline")) != 2 || !bytes.Contains(svg, []byte("a &lt;b&gt;")) {
		t.Fatalf("series missing or unescaped:\n%s", svg)
	}
	for _, tick := range []string{">1500</text>", ">50</text>"} {
		if !strings.Contains(string(svg), tick) {
			t.Errorf("no axis tick %s:\n%s", tick, svg)
		}
	}
	if strings.Contains(string(svg), ">2000</text>") {
		t.Errorf("the x axis overshoots to 2000")
	}
}
