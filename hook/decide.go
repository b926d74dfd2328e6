package hook

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/guix-offload/guix-offload/scm"
)

// MinFreeDisk is the free store space, in MiB, under which a machine is
// skipped, as Guix's hook does.
const MinFreeDisk = 100

// Request is one line from the daemon: `WILLING SYSTEM DRV FEATURES`.
type Request struct {
	// Willing says the daemon has a free local build slot.
	Willing  bool
	System   string
	Drv      string
	Features []string
}

// ParseRequest parses a request line (without its newline). FEATURES may
// be empty, the line then ending in a space.
func ParseRequest(line string) (Request, error) {
	var r Request
	if strings.ContainsAny(line, "\x00\r") {
		return r, fmt.Errorf("bad request %q: control characters", abbrev(line))
	}
	f := strings.Split(line, " ")
	if len(f) < 3 || len(f) > 4 {
		return r, fmt.Errorf("bad request %q: want \"WILLING SYSTEM DRV FEATURES\"", abbrev(line))
	}
	switch f[0] {
	case "1":
		r.Willing = true
	case "0":
	default:
		return r, fmt.Errorf("bad request %q: WILLING is %q, not 0 or 1", abbrev(line), f[0])
	}
	r.System, r.Drv = f[1], f[2]
	if r.System == "" || strings.ContainsAny(r.System, "/,") {
		return r, fmt.Errorf("bad request %q: bad system %q", abbrev(line), r.System)
	}
	if !strings.HasPrefix(r.Drv, "/") || !strings.HasSuffix(r.Drv, ".drv") || strings.Contains(r.Drv, "/../") {
		return r, fmt.Errorf("bad request %q: %q is not a derivation file name", abbrev(line), r.Drv)
	}
	if len(f) == 4 && f[3] != "" {
		for _, feat := range strings.Split(f[3], ",") {
			if feat == "" {
				return r, fmt.Errorf("bad request %q: empty feature", abbrev(line))
			}
			r.Features = append(r.Features, feat)
		}
	}
	return r, nil
}

func abbrev(s string) string {
	if len(s) > 120 {
		return s[:117] + "..."
	}
	return s
}

// Skip is a machine passed over, and why.
type Skip struct {
	Machine *scm.Machine
	Reason  string
}

func (s Skip) String() string { return s.Machine.Label() + ": " + s.Reason }

// Plan is what can be decided without the network: which machines match,
// which of them to try in order, and which are busy or down.
type Plan struct {
	Request  Request
	Matching int
	// Try lists the machines to try, best first.
	Try []*scm.Machine
	// Busy are machines that may take the build later (overloaded, short
	// of disk, all slots taken); Down those that could not be used.
	Busy, Down []Skip
	// Mismatch are machines that cannot build it at all.
	Mismatch []Skip
}

// Decide matches and ranks machines for r. down maps a machine's Key to
// why it is remembered as unusable. It reads nothing and never blocks.
func Decide(r Request, machines []*scm.Machine, down map[string]string) *Plan {
	p := &Plan{Request: r}
	for _, m := range machines {
		if ok, why := m.Matches(r.System, r.Features); !ok {
			p.Mismatch = append(p.Mismatch, Skip{m, why})
			continue
		}
		p.Matching++
		if why, ok := down[m.Key()]; ok {
			p.Down = append(p.Down, Skip{m, why})
			continue
		}
		load, freeDisk := m.LoadAndDisk()
		if m.OverloadThreshold != nil && load != scm.Unknown && load >= *m.OverloadThreshold {
			p.Busy = append(p.Busy, Skip{m, fmt.Sprintf("load %.2f ≥ overload threshold %.2f", load, *m.OverloadThreshold)})
			continue
		}
		if freeDisk != scm.Unknown && freeDisk < MinFreeDisk {
			p.Busy = append(p.Busy, Skip{m, fmt.Sprintf("only %d MiB free in the store", freeDisk)})
			continue
		}
		if m.ParallelBuilds < 1 {
			p.Down = append(p.Down, Skip{m, "parallel-builds is 0"})
			continue
		}
		p.Try = append(p.Try, m)
	}
	slices.SortStableFunc(p.Try, func(a, b *scm.Machine) int {
		if c := cmp.Compare(b.Speed, a.Speed); c != 0 {
			return c
		}
		// Known load before unknown, lower before higher.
		la, _ := a.LoadAndDisk()
		lb, _ := b.LoadAndDisk()
		if la == scm.Unknown {
			la = 1e9
		}
		if lb == scm.Unknown {
			lb = 1e9
		}
		return cmp.Compare(la, lb)
	})
	return p
}

// Answer is the hook's reply to a request.
type Answer string

// The three replies.
const (
	Accept   Answer = "accept"
	Decline  Answer = "decline"
	Postpone Answer = "postpone"
)

// Final decides between decline and postpone once no machine was taken.
// local are the systems the daemon builds itself (see [LocalSystems]);
// firstPostponed is when this derivation was first postponed because every
// matching machine was down (zero: never), and maxPostpone the bound.
func (p *Plan) Final(local []string, now, firstPostponed time.Time, maxPostpone time.Duration) (Answer, string) {
	r := p.Request
	switch {
	case p.Matching == 0:
		return Decline, fmt.Sprintf("no machine builds %s%s%s", r.System, featuresText(r.Features), listText("; passed over", p.Mismatch))
	case len(p.Busy) > 0:
		return Postpone, fmt.Sprintf("every machine for %s is busy%s%s", r.System, listText("", p.Busy), listText("; down", p.Down))
	case r.Willing && buildsLocally(local, r.System):
		return Decline, fmt.Sprintf("every machine for %s is unusable, building locally%s", r.System, listText("", p.Down))
	case !firstPostponed.IsZero() && now.Sub(firstPostponed) >= maxPostpone:
		return Decline, fmt.Sprintf("every machine for %s has been unusable for %s, giving up%s", r.System, now.Sub(firstPostponed).Round(time.Second), listText("", p.Down))
	}
	return Postpone, fmt.Sprintf("every machine for %s is unusable, waiting (at most %s)%s", r.System, maxPostpone, listText("", p.Down))
}

func featuresText(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return " with features " + strings.Join(f, ",")
}

func listText(prefix string, skips []Skip) string {
	if len(skips) == 0 {
		return ""
	}
	parts := make([]string, len(skips))
	for i, s := range skips {
		parts[i] = s.String()
	}
	return prefix + ": " + strings.Join(parts, ", ")
}
