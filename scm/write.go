package scm

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// WriteMachines writes ms as a machines.scm file: a comment and one
// (list (build-machine …) …) form that Guix, real Guile and [EvalMachines]
// all read back to ms. Fields equal to Guix's defaults are left out
// (private-key when it is the default for this process's HOME), so the
// file stays short and follows Guix if its defaults change.
func WriteMachines(w io.Writer, ms []Machine) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, ";; Build machines for Guix's offload hook, written by guix-offload.")
	if len(ms) == 0 {
		fmt.Fprintln(bw, "'()")
		return bw.Flush()
	}
	fmt.Fprint(bw, "(list")
	for i, m := range ms {
		if err := writeMachine(bw, m); err != nil {
			return fmt.Errorf("write machine %d (%s): %w", i+1, m.Name, err)
		}
	}
	fmt.Fprintln(bw, ")")
	return bw.Flush()
}

func writeMachine(w *bufio.Writer, m Machine) error {
	var fields [][2]string
	add := func(name, value string) { fields = append(fields, [2]string{name, value}) }
	for _, s := range append(append([]string{m.Name, m.User, m.PrivateKey, m.HostKey,
		m.Compression, m.DaemonSocket}, m.Systems...), m.Features...) {
		if !utf8.ValidString(s) {
			return fmt.Errorf("string %q is not valid UTF-8", s)
		}
	}
	if math.IsInf(m.Speed, 0) || math.IsNaN(m.Speed) {
		return fmt.Errorf("speed %v is not a finite number", m.Speed)
	}
	add("name", quoteString(m.Name))
	if m.Port != DefaultPort {
		add("port", strconv.Itoa(m.Port))
	}
	add("systems", stringList(m.Systems))
	add("user", quoteString(m.User))
	if m.PrivateKey != DefaultPrivateKey() {
		add("private-key", quoteString(m.PrivateKey))
	}
	add("host-key", quoteString(m.HostKey))
	if m.Compression != DefaultCompression {
		add("compression", quoteString(m.Compression))
	}
	if m.CompressionLevel != DefaultCompressionLevel {
		add("compression-level", strconv.Itoa(m.CompressionLevel))
	}
	if m.DaemonSocket != DefaultDaemonSocket {
		add("daemon-socket", quoteString(m.DaemonSocket))
	}
	switch t := m.OverloadThreshold; {
	case t == nil:
		add("overload-threshold", "#f")
	case math.IsInf(*t, 0) || math.IsNaN(*t):
		return fmt.Errorf("overload-threshold %v is not a finite number", *t)
	case *t != DefaultOverloadThreshold:
		add("overload-threshold", formatReal(*t))
	}
	if m.ParallelBuilds != DefaultParallelBuilds {
		add("parallel-builds", strconv.Itoa(m.ParallelBuilds))
	}
	if m.Speed != DefaultSpeed {
		add("speed", formatReal(m.Speed))
	}
	if len(m.Features) > 0 {
		add("features", stringList(m.Features))
	}
	fmt.Fprint(w, "\n (build-machine")
	for _, f := range fields {
		fmt.Fprintf(w, "\n  (%s %s)", f[0], f[1])
	}
	fmt.Fprint(w, ")")
	return nil
}

func stringList(ss []string) string {
	if len(ss) == 0 {
		return "'()"
	}
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quoteString(s)
	}
	return "(list " + strings.Join(q, " ") + ")"
}

// quoteString writes s as a Guile string literal. Characters other than
// control characters are written as they are, in UTF-8, which is how
// Guile reads source files.
func quoteString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if c < 0x20 || c == 0x7f {
				fmt.Fprintf(&b, `\x%02x`, c)
			} else {
				b.WriteRune(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
