package discovery

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
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
		if as == nil {
			as = []*Announcement{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(as)
	case "scm":
		var ms []scm.Machine
		for _, a := range as {
			if a.Trusted && a.Ignored == "" {
				ms = append(ms, a.Machine)
			}
		}
		return scm.WriteMachines(w, ms)
	case "recutils":
		return writeRecutils(w, as)
	}
	return fmt.Errorf("unknown format %q (want %s)", format, strings.Join(Formats, ", "))
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
		a := ev.Announcement
		_, err := fmt.Fprintf(w, "%-7s %s\n", ev.Kind, tableRow(a))
		return err
	}
	return fmt.Errorf("format %q cannot show events (want table or json)", format)
}

func tableRow(a *Announcement) string {
	if a.Ignored != "" {
		return fmt.Sprintf("%s\t%s\t-\t-\t-\t-\t-\tno: %s", a.Instance, addrsString(a), a.TrustReason)
	}
	trusted := "yes"
	if !a.Trusted {
		trusted = "no: " + a.TrustReason
	}
	return fmt.Sprintf("%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s",
		a.Instance, hostPort(a), strings.Join(a.Systems, ","), a.ParallelBuilds,
		formatFloat(a.Speed), loadString(a.Load), diskString(a.FreeDisk), trusted)
}

func hostPort(a *Announcement) string {
	if a.Port == 22 {
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
	fmt.Fprintln(tw, "INSTANCE\tADDRESS\tSYSTEMS\tJOBS\tSPEED\tLOAD\tFREE\tTRUSTED")
	for _, a := range as {
		fmt.Fprintln(tw, tableRow(a))
	}
	return tw.Flush()
}

// writeRecutils prints GNU recutils records; multi-valued fields repeat.
func writeRecutils(w io.Writer, as []*Announcement) error {
	var b strings.Builder
	field := func(k, v string) {
		// A newline cannot occur (TXT values have no control characters),
		// but be safe: recutils continues a value with "+ ".
		b.WriteString(k + ": " + strings.ReplaceAll(v, "\n", "\n+ ") + "\n")
	}
	for i, a := range as {
		if i > 0 {
			b.WriteString("\n")
		}
		field("instance", a.Instance)
		for _, ad := range a.Addresses {
			field("address", ad.String())
		}
		if a.Ignored != "" {
			field("ignored", a.Ignored)
			field("trusted", "no")
			field("trust-reason", a.TrustReason)
			field("source", a.Source)
			continue
		}
		field("name", a.Name)
		field("port", strconv.Itoa(a.Port))
		for _, s := range a.Systems {
			field("system", s)
		}
		field("user", a.User)
		field("host-key", a.HostKey)
		field("parallel-builds", strconv.Itoa(a.ParallelBuilds))
		field("speed", formatFloat(a.Speed))
		for _, f := range a.Features {
			field("feature", f)
		}
		if a.OverloadThreshold != nil {
			field("overload-threshold", formatFloat(*a.OverloadThreshold))
		}
		if a.Load >= 0 {
			field("load", strconv.FormatFloat(a.Load, 'f', 2, 64))
		}
		if a.FreeDisk >= 0 {
			field("free-disk", strconv.FormatInt(a.FreeDisk, 10))
		}
		if a.SigningKey != "" {
			field("signing-key", a.SigningKey)
		}
		field("trusted", map[bool]string{true: "yes", false: "no"}[a.Trusted])
		field("trust-reason", a.TrustReason)
		field("source", a.Source)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
