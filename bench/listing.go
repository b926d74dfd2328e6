package bench

import (
	"fmt"
	"time"
)

// Listing is one timed run of a DNS-SD browser: how long until it had
// listed every expected instance, and how many it had listed when it
// stopped.
type Listing struct {
	Took  time.Duration
	Found int
	All   bool // every expected instance was listed
}

// CompleteTimes returns the times of the runs that listed everything.
func CompleteTimes(ls []Listing) Sample {
	var s Sample
	for _, l := range ls {
		if l.All {
			s = append(s, l.Took.Seconds())
		}
	}
	return s
}

// ListingCell says median, worst and misses of a browser's runs that
// each expected n instances; median and worst are over the complete runs.
func ListingCell(ls []Listing, n int) string {
	c := CompleteTimes(ls)
	misses := len(ls) - len(c)
	least := n
	for _, l := range ls {
		least = min(least, l.Found)
	}
	missText := fmt.Sprintf("%d misses", misses)
	if misses == 1 {
		missText = "1 miss"
	}
	text := fmt.Sprintf("median %s, worst %s, %d runs, %s", Seconds(c.Median()), Seconds(c.Max()), len(ls), missText)
	if misses > 0 {
		text += fmt.Sprintf(" (fewest listed: %d of %d)", least, n)
	}
	return text
}
