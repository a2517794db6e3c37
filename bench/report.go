package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Report is where a benchmark writes: Markdown for BENCHMARKS.md on Out,
// progress for the person waiting on Log.
type Report struct {
	Out io.Writer
	Log io.Writer
}

// Logf reports progress.
func (r Report) Logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, time.Now().Format("15:04:05 ")+format+"\n", args...)
	}
}

// Printf writes Markdown.
func (r Report) Printf(format string, args ...any) { fmt.Fprintf(r.Out, format, args...) }

// Header opens a section: its title, the exact command that reruns it, the
// machine and how loaded it was (1-minute load average when the benchmark
// began, from LoadAvg, and now).
func (r Report) Header(title, rerun, loadAtStart string) {
	r.Printf("## %s\n\nRerun:\n\n```sh\n%s\n```\n\n", title, rerun)
	r.Printf("Machine: %s; %s; load average %s at start, %s at end.\n\n", Machine(), time.Now().UTC().Format("2006-01-02 15:04 UTC"), loadAtStart, LoadAvg())
}

// Table writes a Markdown table.
func (r Report) Table(header []string, rows [][]string) {
	r.Printf("| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	for _, row := range rows {
		r.Printf("| %s |\n", strings.Join(row, " | "))
	}
	r.Printf("\n")
}

// Verdict says whether a ratio meets its target, for a table cell.
func Verdict(ratio, target float64, higherIsBetter bool) string {
	ok := ratio <= target
	if higherIsBetter {
		ok = ratio >= target
	}
	return fmt.Sprintf("%.2f (%s)", ratio, metOrMissed(ok))
}

func metOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// msf formats milliseconds.
func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Interleave returns the sides in the order run i uses, rotating, so
// drift on the machine and warm caches favour no side.
func Interleave[T any](i int, sides ...T) []T {
	n := len(sides)
	out := make([]T, 0, n)
	for j := range n {
		out = append(out, sides[(i+j)%n])
	}
	return out
}
