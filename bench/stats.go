package bench

import (
	"fmt"
	"slices"
	"time"
)

// Sample is repeated measurements of one thing.
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
