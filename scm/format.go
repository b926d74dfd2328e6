package scm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Formats are the output formats of [WriteFormat].
var Formats = []string{"table", "json", "scm", "recutils"}

// WriteFormat writes ms in one of [Formats]: an aligned table for people,
// a JSON array (Guix's field names as keys, null for an overload-threshold
// of #f), machines.scm ([WriteMachines]) or recutils records as guix
// prints them.
func WriteFormat(w io.Writer, format string, ms []Machine) error {
	switch format {
	case "table":
		return WriteTable(w, ms)
	case "json":
		return WriteJSON(w, ms)
	case "scm":
		return WriteMachines(w, ms)
	case "recutils":
		return WriteRecutils(w, ms)
	}
	return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

// WriteJSON writes ms as an indented JSON array, [] when there are none.
func WriteJSON(w io.Writer, ms []Machine) error {
	if ms == nil {
		ms = []Machine{}
	}
	b, err := json.MarshalIndent(ms, "", "  ")
	if err != nil {
		return fmt.Errorf("encode machines as JSON: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteTable writes ms as a table that fits 80 columns for usual host
// names: one row per machine, systems and features one per line, the port
// after the name when it is not 22. Keys and paths are left to the other
// formats.
func WriteTable(w io.Writer, ms []Machine) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSYSTEMS\tUSER\tSPEED\tJOBS\tMAXLOAD\tFEATURES")
	for _, m := range ms {
		name := m.Name
		if m.Port != DefaultPort {
			name += ":" + strconv.Itoa(m.Port)
		}
		load := "-"
		if m.OverloadThreshold != nil {
			load = formatNumber(*m.OverloadThreshold)
		}
		rows := max(len(m.Systems), len(m.Features), 1)
		for i := 0; i < rows; i++ {
			sys, feat := at(m.Systems, i), at(m.Features, i)
			if i == 0 {
				if feat == "" {
					feat = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", oneLine(name), oneLine(sys), oneLine(m.User),
					formatNumber(m.Speed), m.ParallelBuilds, load, oneLine(feat))
				continue
			}
			fmt.Fprintf(tw, "\t%s\t\t\t\t\t%s\n", oneLine(sys), oneLine(feat))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var out strings.Builder
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		out.WriteString(strings.TrimRight(line, " \n"))
		if strings.HasSuffix(line, "\n") {
			out.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, out.String())
	return err
}

func at(ss []string, i int) string {
	if i < len(ss) {
		return ss[i]
	}
	return ""
}

// oneLine keeps control characters of a field from breaking the table.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// formatNumber writes speeds and thresholds briefly: 2, 1.5, 0.8.
func formatNumber(f float64) string {
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// WriteRecutils writes ms as recutils records, the way guix prints
// packages: "field: value" lines, a blank line between records, lists
// separated by spaces, multi-line values continued with "+ ".
func WriteRecutils(w io.Writer, ms []Machine) error {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(RecutilsRecord(m, nil))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// RecutilsRecord is m's record as [WriteRecutils] writes it, followed by
// the extra fields (name, value) of a caller that knows more about the
// machine, such as discovery: the machines.scm part stays identical
// whoever prints it.
func RecutilsRecord(m Machine, extra [][2]string) string {
	threshold := "#f"
	if m.OverloadThreshold != nil {
		threshold = formatReal(*m.OverloadThreshold)
	}
	fields := [][2]string{
		{"name", m.Name},
		{"port", strconv.Itoa(m.Port)},
		{"systems", strings.Join(m.Systems, " ")},
		{"user", m.User},
		{"private-key", m.PrivateKey},
		{"host-key", m.HostKey},
		{"compression", m.Compression},
		{"compression-level", strconv.Itoa(m.CompressionLevel)},
		{"daemon-socket", m.DaemonSocket},
		{"overload-threshold", threshold},
		{"parallel-builds", strconv.Itoa(m.ParallelBuilds)},
		{"speed", formatReal(m.Speed)},
		{"features", strings.Join(m.Features, " ")},
	}
	return RecutilsFields(append(fields, extra...))
}

// RecutilsFields writes fields as the lines of one recutils record:
// "name: value", "name:" for an empty value, a multi-line value continued
// with "+ ".
func RecutilsFields(fields [][2]string) string {
	var b strings.Builder
	for _, f := range fields {
		b.WriteString(f[0] + ":")
		if f[1] != "" {
			b.WriteString(" " + strings.ReplaceAll(f[1], "\n", "\n+ "))
		}
		b.WriteString("\n")
	}
	return b.String()
}
