package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestSample(t *testing.T) {
	tests := []struct {
		name             string
		s                Sample
		median, max, min float64
	}{
		{"odd", Sample{3, 1, 2}, 2, 3, 1},
		{"even", Sample{4, 1, 3, 2}, 2.5, 4, 1},
		{"one", Sample{7}, 7, 7, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Median(); got != tt.median {
				t.Errorf("Median = %v, want %v", got, tt.median)
			}
			if got := tt.s.Max(); got != tt.max {
				t.Errorf("Max = %v, want %v", got, tt.max)
			}
			if got := tt.s.Min(); got != tt.min {
				t.Errorf("Min = %v, want %v", got, tt.min)
			}
		})
	}
	if !math.IsNaN(Sample(nil).Median()) {
		t.Error("Median of an empty sample is not NaN")
	}
	s := Sample{3, 1, 2}
	s.Median()
	if s[0] != 3 || s[1] != 1 {
		t.Errorf("Median reordered its sample: %v", s)
	}
	if got := Durations([]time.Duration{time.Second, 500 * time.Millisecond}); got[0] != 1 || got[1] != 0.5 {
		t.Errorf("Durations = %v", got)
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{Seconds(812e-9), "812 ns"},
		{Seconds(12.34e-6), "12.3 µs"},
		{Seconds(4.561e-3), "4.56 ms"},
		{Seconds(1.2), "1.20 s"},
		{Seconds(math.NaN()), "—"},
		{Rate(100 << 20), "100 MiB/s"},
		{Bytes(12.5 * (1 << 20)), "12.5 MiB"},
		{Bytes(2048), "2.00 KiB"},
		{sig3(0.01234), "0.0123"},
		{sig3(0.5), "0.500"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestRatio(t *testing.T) {
	tests := []struct {
		name      string
		ours, ref float64
		better    Better
		want      string
	}{
		{"faster", 1e-3, 32.1e-3, Lower, "0.0312 (32.1× less)"},
		{"slower", 2, 1, Lower, "2.00 (2.00× more)"},
		{"more throughput", 140, 100, Higher, "1.40 (1.40× more)"},
		{"less throughput", 50, 100, Higher, "0.500 (2.00× less)"},
		{"missing ours", math.NaN(), 1, Lower, "—"},
		{"zero reference", 1, 0, Lower, "—"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Ratio(tt.ours, tt.ref, tt.better); got != tt.want {
				t.Errorf("Ratio(%v, %v) = %q, want %q", tt.ours, tt.ref, got, tt.want)
			}
		})
	}
}

func TestWriteMarkdown(t *testing.T) {
	var tab Table
	tab.Add(Row{Group: "1", Measure: "a|b", Ours: "1 ms", Reference: "2 ms", Ratio: "0.500", Note: "two\nlines"})
	tab.Add(Row{Group: "2", Measure: "c", Ours: NotMeasured("hook not landed")})
	tab.Note("row 1: how")
	tab.Note("row 1: how")
	var b strings.Builder
	if err := tab.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	want := "| # | measure | ours | reference | ratio (ours ÷ reference) | how |\n" +
		"|---|---|---|---|---|---|\n" +
		"| 1 | a\\|b | 1 ms | 2 ms | 0.500 | two lines |\n" +
		"| 2 | c | not measured: hook not landed | — | — | — |\n" +
		"\n- row 1: how\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := tab.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	want = "| # | measure | ours | reference | ours ÷ reference |\n" +
		"|---|---|---|---|---|\n" +
		"| 1 | a\\|b | 1 ms | 2 ms | 0.500 |\n" +
		"| 2 | c | not measured: hook not landed | — | — |\n"
	if b.String() != want {
		t.Errorf("summary: got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestListingCell(t *testing.T) {
	ls := []Listing{
		{Took: time.Second, Found: 32, All: true},
		{Took: 3 * time.Second, Found: 32, All: true},
		{Took: 2 * time.Second, Found: 32, All: true},
		{Took: 15 * time.Second, Found: 30},
	}
	if got, want := ListingCell(ls, 32), "median 2.00 s, worst 3.00 s, 4 runs, 1 miss (fewest listed: 30 of 32)"; got != want {
		t.Errorf("ListingCell = %q, want %q", got, want)
	}
	if got, want := ListingCell(ls[:1], 32), "median 1.00 s, worst 1.00 s, 1 runs, 0 misses"; got != want {
		t.Errorf("ListingCell = %q, want %q", got, want)
	}
	if got := CompleteTimes(ls[3:]); len(got) != 0 {
		t.Errorf("CompleteTimes of a miss = %v", got)
	}
}
