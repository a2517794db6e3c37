package bench

import (
	"math"
	"testing"
)

func TestPairedRatio(t *testing.T) {
	b := []float64{100, 200, 300, 400, 500, 600}
	a := make([]float64, len(b))
	for i := range b {
		a[i] = b[i] * 1.1
	}
	p := NewPairedRatio(a, b)
	if p.Pairs != 6 || math.Abs(p.GeoMean-1.1) > 1e-9 || math.Abs(p.Lo-1.1) > 1e-9 || math.Abs(p.Hi-1.1) > 1e-9 {
		t.Fatalf("constant ratio 1.1: %+v", p)
	}
	if v := p.Verdict(0.97, true); v != "met" {
		t.Errorf("throughput 1.1 against >= 0.97: %s", v)
	}
	if v := p.Verdict(1.03, false); v != "**missed**" {
		t.Errorf("p99 1.1 against <= 1.03: %s", v)
	}
	// Ratios of 0.9 and 1.1 alternating straddle 1: the interval holds
	// the geometric mean and is decided against neither 0.97 nor 1.03.
	for i := range a {
		a[i] = b[i] * []float64{0.9, 1.1}[i%2]
	}
	p = NewPairedRatio(a, b)
	if !(p.Lo < p.GeoMean && p.GeoMean < p.Hi) || p.Lo > 0.97 || p.Hi < 1.03 {
		t.Fatalf("mixed ratios: %+v", p)
	}
	if v := p.Verdict(0.97, true); v != "**not decided**" {
		t.Errorf("straddling interval: %s", v)
	}
	if q := NewPairedRatio(a, b); q != p {
		t.Errorf("the same runs gave %+v, then %+v", p, q)
	}
}
