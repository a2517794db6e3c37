package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Sample is repeated timings of one thing.
type Sample struct {
	Name string
	Runs []time.Duration
}

// Min, Median and Max of the runs.
func (s Sample) Min() time.Duration    { return s.sorted()[0] }
func (s Sample) Max() time.Duration    { r := s.sorted(); return r[len(r)-1] }
func (s Sample) Median() time.Duration { return median(s.sorted()) }

func (s Sample) sorted() []time.Duration {
	r := slices.Clone(s.Runs)
	slices.Sort(r)
	return r
}

func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// Row formats a sample as a Markdown table row.
func (s Sample) Row() string {
	return fmt.Sprintf("| %s | %d | %v | %v | %v |", s.Name, len(s.Runs), ms(s.Min()), ms(s.Median()), ms(s.Max()))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// Ratio is a/b of medians.
func Ratio(a, b Sample) float64 { return float64(a.Median()) / float64(b.Median()) }

// Values is repeated measurements of a quantity that is not a time
// (requests per second, MB/s, a count).
type Values struct {
	Name string
	Runs []float64
}

// Add appends one measurement.
func (v *Values) Add(x float64) { v.Runs = append(v.Runs, x) }

// Min, Median and Max of the runs; NaN-free callers only.
func (v Values) Min() float64 { return v.sorted()[0] }
func (v Values) Max() float64 { r := v.sorted(); return r[len(r)-1] }
func (v Values) Median() float64 {
	r := v.sorted()
	n := len(r)
	if n%2 == 1 {
		return r[n/2]
	}
	return (r[n/2-1] + r[n/2]) / 2
}

func (v Values) sorted() []float64 {
	r := slices.Clone(v.Runs)
	if len(r) == 0 {
		return []float64{0}
	}
	slices.Sort(r)
	return r
}

// Spread formats min / median / max with format.
func (v Values) Spread(format string) string {
	f := func(x float64) string { return fmt.Sprintf(format, x) }
	return fmt.Sprintf("%s / **%s** / %s", f(v.Min()), f(v.Median()), f(v.Max()))
}

// VRatio is a/b of medians (0 when b is 0).
func VRatio(a, b Values) float64 {
	if b.Median() == 0 {
		return 0
	}
	return a.Median() / b.Median()
}

// PairedRatio summarises runs taken in pairs, a[i] beside b[i] (the two
// sides of one interleaved run): the geometric mean of a[i]/b[i] and a 95%
// bootstrap interval for it. Pairing takes out the drift both sides share
// (a noisy neighbour, a slow minute), and pooling many pairs narrows the
// interval where a handful of runs per cell cannot.
type PairedRatio struct {
	Pairs           int
	GeoMean, Lo, Hi float64
}

// NewPairedRatio computes a PairedRatio; the bootstrap's random source is
// seeded, so the same runs always give the same interval.
func NewPairedRatio(a, b []float64) PairedRatio {
	var logs []float64
	for i := range min(len(a), len(b)) {
		if a[i] > 0 && b[i] > 0 {
			logs = append(logs, math.Log(a[i]/b[i]))
		}
	}
	if len(logs) == 0 {
		return PairedRatio{}
	}
	mean := func(pick func(int) float64) float64 {
		s := 0.0
		for i := range logs {
			s += pick(i)
		}
		return s / float64(len(logs))
	}
	r := PairedRatio{Pairs: len(logs), GeoMean: math.Exp(mean(func(i int) float64 { return logs[i] }))}
	const resamples = 10000
	rng := rand.New(rand.NewPCG(1, 2))
	means := make([]float64, resamples)
	for k := range means {
		means[k] = mean(func(int) float64 { return logs[rng.IntN(len(logs))] })
	}
	slices.Sort(means)
	r.Lo, r.Hi = math.Exp(means[resamples*25/1000]), math.Exp(means[resamples*975/1000-1])
	return r
}

// Verdict says where the interval lies against a target: "met" when all of
// it is on the right side, "missed" when all of it is on the wrong side,
// "not decided" when it straddles the target.
func (p PairedRatio) Verdict(target float64, higherIsBetter bool) string {
	lo, hi := p.Lo, p.Hi
	if !higherIsBetter {
		lo, hi = 1/hi, 1/lo
		target = 1 / target
	}
	switch {
	case lo >= target:
		return "met"
	case hi < target:
		return "**missed**"
	}
	return "**not decided**"
}

func (p PairedRatio) String() string {
	return fmt.Sprintf("%.3f (95%% interval %.3f-%.3f, %d pairs)", p.GeoMean, p.Lo, p.Hi, p.Pairs)
}

// pairedThroughput is the paired throughput ratio a/b of two timed sides:
// the inverse of their time ratio.
func pairedThroughput(a, b Sample) PairedRatio {
	secs := func(s Sample) []float64 {
		var out []float64
		for _, d := range s.Runs {
			out = append(out, 1/d.Seconds())
		}
		return out
	}
	return NewPairedRatio(secs(a), secs(b))
}
