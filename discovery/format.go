package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"

	"github.com/guix-offload/guix-offload/scm"
)

// Formats [Write] knows.
var Formats = []string{"table", "json", "scm", "recutils"}

// Write prints announcements in format: "table" (for people), "json" (an
// array of objects keyed by machines.scm field names plus instance,
// addresses, load, free-disk, signing-key, trusted, trust-reason,
// source), "scm" (a machines.scm list of the trusted machines only, for
// the bridge) or "recutils" (one record per machine).
func Write(w io.Writer, format string, as []*Announcement) error {
	switch format {
	case "table", "":
		return writeTable(w, as)
	case "json":
		return writeJSON(w, as)
	case "scm":
		var ms []scm.Machine
		for _, a := range as {
			if !a.Trusted {
				continue
			}
			// The private key stays this process's default, which
			// the written file leaves to Guix.
			if m, ok := a.AsMachine("", a.PrivateKey); ok {
				ms = append(ms, *m)
			}
		}
		return scm.WriteMachines(w, ms)
	case "recutils":
		return writeRecutils(w, as)
	}
	return fmt.Errorf("unknown format %q (want %s)", format, strings.Join(Formats, ", "))
}

// writeJSON prints as as an indented JSON array, as a json.Encoder with
// indent "  " does; a long list is encoded on every core, each machine
// apart (a thousand take some 15 ms of CPU).
func writeJSON(w io.Writer, as []*Announcement) error {
	if len(as) < 64 {
		if as == nil {
			as = []*Announcement{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(as)
	}
	parts := make([][]byte, len(as))
	errs := make([]error, len(as))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(as)/32) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(as); i = int(next.Add(1) - 1) {
				parts[i], errs[i] = json.MarshalIndent(as[i], "  ", "  ")
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	n := 4
	for _, p := range parts {
		n += len(p) + 4
	}
	out := make([]byte, 0, n)
	out = append(out, "[\n  "...)
	for i, p := range parts {
		if i > 0 {
			out = append(out, ",\n  "...)
		}
		out = append(out, p...)
	}
	out = append(out, "\n]\n"...)
	_, err := w.Write(out)
	return err
}

// WriteEvent prints one event: an NDJSON line {"event": KIND, ...the
// announcement} for "json", a table row for "table".
func WriteEvent(w io.Writer, format string, ev Event) error {
	switch format {
	case "json":
		data, err := json.Marshal(struct {
			Event EventKind `json:"event"`
			*Announcement
		}{ev.Kind, ev.Announcement})
		if err != nil {
			return err
		}
		_, err = w.Write(append(data, '\n'))
		return err
	case "table", "":
		_, err := io.WriteString(w, eventLine(ev.Kind.String(), tableRow(ev.Announcement)))
		return err
	}
	return fmt.Errorf("format %q cannot show events (want table or json)", format)
}

// WriteEventHeader prints the header of the table [WriteEvent] writes
// row by row, in the same fixed columns.
func WriteEventHeader(w io.Writer) error {
	_, err := io.WriteString(w, eventLine("EVENT", tableHeader))
	return err
}

// tableHeader names the columns of [tableRow].
var tableHeader = []string{"INSTANCE", "ADDRESS", "SYSTEMS", "JOBS", "SPEED", "LOAD", "FREE", "TRUSTED"}

// eventWidths are the fixed widths of the event table's columns (EVENT,
// then [tableHeader]'s): rows are printed as events come, so they cannot
// be aligned on the longest value as [writeTable] does. A longer value
// shifts the rest of its row only.
var eventWidths = []int{6, 18, 18, 23, 4, 5, 5, 5}

func eventLine(kind string, cells []string) string {
	var b strings.Builder
	for i, c := range append([]string{kind}, cells...) {
		if i > 0 {
			b.WriteString("  ")
		}
		b.WriteString(c)
		if i < len(eventWidths) {
			b.WriteString(strings.Repeat(" ", max(1, eventWidths[i]-len([]rune(c))+1)-1))
		}
	}
	return strings.TrimRight(b.String(), " ") + "\n"
}

func tableRow(a *Announcement) []string {
	if a.Ignored != "" {
		return []string{a.Instance, addrsString(a), "-", "-", "-", "-", "-", "no: " + a.TrustReason}
	}
	trusted := "yes"
	if !a.Trusted {
		trusted = "no: " + a.TrustReason
	}
	return []string{a.Instance, hostPort(a), strings.Join(a.Systems, ","), strconv.Itoa(a.ParallelBuilds),
		formatFloat(a.Speed), loadString(a.Load), diskString(a.FreeDisk), trusted}
}

func hostPort(a *Announcement) string {
	if a.Port == scm.DefaultPort {
		return a.Name
	}
	if strings.Contains(a.Name, ":") {
		return "[" + a.Name + "]:" + strconv.Itoa(a.Port)
	}
	return a.Name + ":" + strconv.Itoa(a.Port)
}

func addrsString(a *Announcement) string {
	s := make([]string, len(a.Addresses))
	for i, ad := range a.Addresses {
		s[i] = ad.String()
	}
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func loadString(l float64) string {
	if l < 0 {
		return "?"
	}
	return strconv.FormatFloat(l, 'f', 2, 64)
}

func diskString(d int64) string {
	if d < 0 {
		return "?"
	}
	if d >= 10*1024 {
		return strconv.FormatInt(d/1024, 10) + "G"
	}
	return strconv.FormatInt(d, 10) + "M"
}

func writeTable(w io.Writer, as []*Announcement) error {
	if len(as) == 0 {
		_, err := fmt.Fprintln(w, "no build machines found")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(tableHeader, "\t"))
	for _, a := range as {
		fmt.Fprintln(tw, strings.Join(tableRow(a), "\t"))
	}
	return tw.Flush()
}

// writeRecutils prints one recutils record per announcement: for a
// usable one, exactly the record `guix-offload machines` prints for the
// machines.scm entry it stands for, then what discovery adds (instance,
// one address field per address, load, free-disk, signing-key, trusted,
// trust-reason, source); for an ignored one, what is known of it.
func writeRecutils(w io.Writer, as []*Announcement) error {
	var b strings.Builder
	for i, a := range as {
		if i > 0 {
			b.WriteString("\n")
		}
		extra := [][2]string{{"instance", a.Instance}}
		for _, ad := range a.Addresses {
			extra = append(extra, [2]string{"address", ad.String()})
		}
		trust := [][2]string{
			{"trusted", map[bool]string{true: "yes", false: "no"}[a.Trusted && a.Ignored == ""]},
			{"trust-reason", a.TrustReason},
			{"source", a.Source},
		}
		if a.Ignored != "" {
			extra = append(extra, [2]string{"ignored", a.Ignored})
			b.WriteString(scm.RecutilsFields(append(extra, trust...)))
			continue
		}
		if a.Load >= 0 {
			extra = append(extra, [2]string{"load", strconv.FormatFloat(a.Load, 'f', 2, 64)})
		}
		if a.FreeDisk >= 0 {
			extra = append(extra, [2]string{"free-disk", strconv.FormatInt(a.FreeDisk, 10)})
		}
		if a.SigningKey != "" {
			extra = append(extra, [2]string{"signing-key", a.SigningKey})
		}
		b.WriteString(scm.RecutilsRecord(a.Machine, append(extra, trust...)))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
