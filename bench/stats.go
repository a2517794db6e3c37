package bench

import (
	"fmt"
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
