package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Sample is a set of repeated measurements of one quantity.
type Sample []float64

// Durations returns the durations as a Sample in seconds.
func Durations(ds []time.Duration) Sample {
	s := make(Sample, len(ds))
	for i, d := range ds {
		s[i] = d.Seconds()
	}
	return s
}

// Median returns the median, or NaN for an empty sample.
func (s Sample) Median() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	c := slices.Clone(s)
	slices.Sort(c)
	n := len(c)
	if n%2 == 1 {
		return c[n/2]
	}
	return (c[n/2-1] + c[n/2]) / 2
}

// Max returns the largest value, or NaN for an empty sample.
func (s Sample) Max() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	return slices.Max(s)
}

// Min returns the smallest value, or NaN for an empty sample.
func (s Sample) Min() float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	return slices.Min(s)
}

// Seconds formats a time in seconds with a unit that keeps three
// significant digits: "812 ns", "12.3 µs", "4.56 ms", "1.20 s".
func Seconds(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "—"
	case v < 1e-6:
		return sig3(v*1e9) + " ns"
	case v < 1e-3:
		return sig3(v*1e6) + " µs"
	case v < 1:
		return sig3(v*1e3) + " ms"
	default:
		return sig3(v) + " s"
	}
}

// Rate formats a throughput in bytes per second as MiB/s.
func Rate(bytesPerSecond float64) string {
	if math.IsNaN(bytesPerSecond) || math.IsInf(bytesPerSecond, 0) {
		return "—"
	}
	return sig3(bytesPerSecond/(1<<20)) + " MiB/s"
}

// Bytes formats a size in bytes as KiB or MiB.
func Bytes(b float64) string {
	if math.IsNaN(b) {
		return "—"
	}
	if b < 1<<20 {
		return sig3(b/(1<<10)) + " KiB"
	}
	return sig3(b/(1<<20)) + " MiB"
}

// sig3 formats v with three significant digits, without an exponent.
func sig3(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		// Three significant digits below 1: 0.0123.
		digits := 2 - int(math.Floor(math.Log10(a)))
		return fmt.Sprintf("%.*f", digits, v)
	}
}

// Better says which way a measure improves.
type Better int

const (
	// Lower: times, memory, CPU — ours ÷ reference below 1 is better.
	Lower Better = iota
	// Higher: throughput — ours ÷ reference above 1 is better.
	Higher
)

// Ratio formats ours ÷ reference and says in words how that compares,
// e.g. "0.0312 (32.1× faster)" for a time or "1.40 (1.40× more)" for a
// throughput. It returns "—" when either value is missing or the
// reference is zero.
func Ratio(ours, reference float64, better Better) string {
	if math.IsNaN(ours) || math.IsNaN(reference) || reference == 0 || ours < 0 || reference < 0 {
		return "—"
	}
	r := ours / reference
	var words string
	switch {
	case ours == 0:
		words = "ours is zero"
	case better == Lower && r <= 1:
		words = sig3(1/r) + "× less"
	case better == Lower:
		words = sig3(r) + "× more"
	case better == Higher && r >= 1:
		words = sig3(r) + "× more"
	default:
		words = sig3(1/r) + "× less"
	}
	return sig3(r) + " (" + words + ")"
}

// Row is one measure of the table: our figure, the reference's figure and
// their ratio, with a note saying how it was measured.
type Row struct {
	Group     string // the row: "1 decision", "3 transfer", …
	Measure   string
	Ours      string
	Reference string
	Ratio     string
	Note      string
}

// NotMeasured is the Ours (or Reference) text of a row whose subject is
// missing: it says why and carries no number.
func NotMeasured(why string) string { return "not measured: " + why }

// Table collects rows in the order they are added, and notes that say
// how the measures were taken (printed as a list under the table).
type Table struct {
	Rows  []Row
	Notes []string
}

// Note appends a note unless the table has it already.
func (t *Table) Note(n string) {
	if !slices.Contains(t.Notes, n) {
		t.Notes = append(t.Notes, n)
	}
}

// Add appends a row.
func (t *Table) Add(r Row) { t.Rows = append(t.Rows, r) }

// WriteMarkdown writes the table as GitHub-flavoured Markdown.
func (t *Table) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| # | measure | ours | reference | ratio (ours ÷ reference) | how |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, r := range t.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n",
			cell(r.Group), cell(r.Measure), cell(r.Ours), cell(r.Reference), cell(r.Ratio), cell(r.Note))
	}
	if len(t.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range t.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteSummary writes the table without its "how" column and notes, for
// docs/benchmarks.md.
func (t *Table) WriteSummary(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| # | measure | ours | reference | ours ÷ reference |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, r := range t.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n",
			cell(r.Group), cell(r.Measure), cell(r.Ours), cell(r.Reference), cell(r.Ratio))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell makes s safe inside a Markdown table cell.
func cell(s string) string {
	if s == "" {
		return "—"
	}
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}
