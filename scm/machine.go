package scm

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/guix-offload/guix-offload/internal/boundedread"
)

// Machine is a build machine: a machines.scm build-machine record with
// Guix's defaults applied, and, for a machine a master heard on the LAN,
// what it last said about itself ([Status]). It is the one type for a
// machine a master may use: the evaluator returns it, the hook chooses
// among them, `guix-offload machines` and `discover --format scm` print
// them, and a trusted discovery announcement becomes one through
// discovery.Announcement.AsMachine. Its JSON keys are Guix's field
// names; Status is not part of the record (never evaluated, written or
// in JSON).
type Machine struct {
	Name              string   `json:"name"`
	Port              int      `json:"port"`
	Systems           []string `json:"systems"`
	User              string   `json:"user"`
	PrivateKey        string   `json:"private-key"`
	HostKey           string   `json:"host-key"`
	Compression       string   `json:"compression"`
	CompressionLevel  int      `json:"compression-level"`
	DaemonSocket      string   `json:"daemon-socket"`
	OverloadThreshold *float64 `json:"overload-threshold"` // nil is #f: ignore load
	ParallelBuilds    int      `json:"parallel-builds"`
	Speed             float64  `json:"speed"`
	Features          []string `json:"features"`

	// Status is what the machine last announced about itself; nil for a
	// machines.scm entry, unless a master merged in the announcement of
	// the same host.
	Status *Status `json:"-"`
}

// Unknown is a load or free disk space nobody announced.
const Unknown = -1

// Status is what a machine announced about itself at run time, besides
// its build-machine record.
type Status struct {
	// Instance is the DNS-SD instance name of a discovered machine; empty
	// for a machines.scm entry that took an announcement's load.
	Instance string
	// Load is the announced normalized load (÷ cores), FreeDisk the
	// announced free store space in MiB; each [Unknown] when not said.
	Load     float64
	FreeDisk int64
	// Signed is when the announcement was signed; zero when unsigned.
	Signed time.Time
}

// Origins of machines, for messages.
const (
	OriginStatic     = "machines.scm"
	OriginDiscovered = "discovered"
)

// Discovered reports whether m was discovered on the LAN rather than
// listed in machines.scm.
func (m *Machine) Discovered() bool { return m.Status != nil && m.Status.Instance != "" }

// Origin says where m comes from: [OriginStatic] or [OriginDiscovered].
func (m *Machine) Origin() string {
	if m.Discovered() {
		return OriginDiscovered
	}
	return OriginStatic
}

// LoadAndDisk returns the announced load and free store space,
// [Unknown] when not announced.
func (m *Machine) LoadAndDisk() (load float64, freeDisk int64) {
	if m.Status == nil {
		return Unknown, Unknown
	}
	return m.Status.Load, m.Status.FreeDisk
}

// Key is HOST:PORT, the name of the machine's slot directory in Guix's
// layout.
func (m *Machine) Key() string { return m.Name + ":" + strconv.Itoa(m.DialPort()) }

// Addr is HOST:PORT suitable for dialing.
func (m *Machine) Addr() string { return net.JoinHostPort(m.Name, strconv.Itoa(m.DialPort())) }

// DialPort is the SSH port to connect to: Port, or [DefaultPort] when
// it is 0.
func (m *Machine) DialPort() int {
	if m.Port == 0 {
		return DefaultPort
	}
	return m.Port
}

// Label names the machine in messages: its name, plus its instance when
// discovered under another name.
func (m *Machine) Label() string {
	if m.Status != nil && m.Status.Instance != "" && m.Status.Instance != m.Name {
		return fmt.Sprintf("'%s' (%s)", m.Status.Instance, m.Key())
	}
	return fmt.Sprintf("'%s'", m.Key())
}

// Matches reports whether m builds system with every feature, as Guix's
// machine-matches? does; when not, it says why.
func (m *Machine) Matches(system string, features []string) (bool, string) {
	if !slices.Contains(m.Systems, system) {
		return false, "does not build " + system
	}
	var missing []string
	for _, f := range features {
		if !slices.Contains(m.Features, f) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return false, "lacks feature " + strings.Join(missing, ",")
	}
	return true, ""
}

// HostKeyID is the host key line without its comment, for comparing; ""
// when it is not a key line.
func HostKeyID(line string) string {
	typ, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
	if !ok {
		return ""
	}
	rest = strings.TrimLeft(rest, " \t")
	if i := strings.IndexAny(rest, " \t"); i >= 0 {
		rest = rest[:i]
	}
	if rest == "" {
		return ""
	}
	return typ + " " + rest
}

// Guix's defaults for build-machine fields (guix/scripts/offload.scm).
const (
	DefaultPort              = 22
	DefaultCompression       = "zlib@openssh.com,zlib"
	DefaultCompressionLevel  = 3
	DefaultDaemonSocket      = "/var/guix/daemon-socket/socket"
	DefaultOverloadThreshold = 0.8
	DefaultParallelBuilds    = 1
	DefaultSpeed             = 1.0
)

// DefaultStore is the store directory of a standard Guix installation.
const DefaultStore = "/gnu/store"

// DefaultMachinesFile is where Guix reads its static build machines.
const DefaultMachinesFile = "/etc/guix/machines.scm"

// DefaultPrivateKey returns Guix's default private-key field,
// "$HOME/.ssh/id_rsa" for the HOME of this process, or "" when HOME is
// unset (Guix then has #f).
func DefaultPrivateKey() string {
	home, ok := os.LookupEnv("HOME")
	if !ok {
		return ""
	}
	return home + "/.ssh/id_rsa"
}

// PrivateKeyFile returns the SSH private key a master uses for a machine
// whose private-key is not given (a discovered machine, or a machines.scm
// entry evaluated without HOME): home's .ssh/id_rsa, root's when home is
// "" (guix-daemon runs the offload hook as root).
func PrivateKeyFile(home string) string {
	if home == "" {
		home = "/root"
	}
	return strings.TrimSuffix(home, "/") + "/.ssh/id_rsa"
}

// DefaultMachine returns a Machine holding Guix's defaults for every field
// that has one (name, user, host-key and systems are empty).
func DefaultMachine() Machine {
	t := DefaultOverloadThreshold
	return Machine{
		Port:              DefaultPort,
		Systems:           []string{},
		PrivateKey:        DefaultPrivateKey(),
		Compression:       DefaultCompression,
		CompressionLevel:  DefaultCompressionLevel,
		DaemonSocket:      DefaultDaemonSocket,
		OverloadThreshold: &t,
		ParallelBuilds:    DefaultParallelBuilds,
		Speed:             DefaultSpeed,
		Features:          []string{},
	}
}

// machineFields lists the build-machine fields in Guix's order.
var machineFields = []string{
	"name", "port", "systems", "system", "user", "private-key", "host-key",
	"compression", "compression-level", "daemon-socket",
	"overload-threshold", "parallel-builds", "speed", "features",
}

// LoadMachines reads and evaluates the machines.scm file, as Guix's
// offload hook does. A missing file means no machines: it returns nil and
// no error.
func LoadMachines(file string) ([]Machine, error) {
	data, err := boundedread.ReadFile(file, boundedread.Machines)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read machines file: %w", err)
	}
	return EvalMachines(data, file)
}

// EvalMachines evaluates data, the text of a machines.scm file named file,
// with the built-in evaluator and returns the machines that its last
// top-level form returns, like Guile's primitive-load. Errors about the
// file are [*Error] values naming FILE:LINE:COLUMN.
func EvalMachines(data []byte, file string) ([]Machine, error) {
	forms, err := Read(data, file)
	if err != nil {
		return nil, err
	}
	ev := newEvaluator()
	var last Value
	for _, f := range forms {
		last, err = ev.eval(f, ev.global)
		if err != nil {
			return nil, err
		}
	}
	if last == nil {
		return nil, &Error{At: Pos{File: file, Line: 1, Col: 1},
			Msg: "the file is empty; it must end with a list of build machines",
			Tip: "a file with no machines ends with '()"}
	}
	at := forms[len(forms)-1].Pos()
	items, ok := List(last)
	if !ok {
		return nil, &Error{At: at,
			Msg: fmt.Sprintf("the last expression returns %s, not a list of build machines", describe(last)),
			Tip: "end the file with (list (build-machine …) …)"}
	}
	ms := make([]Machine, 0, len(items))
	for i, it := range items {
		m, ok := it.(*machineVal)
		if !ok {
			if p := it.Pos(); p.Line > 0 {
				at = p
			}
			return nil, &Error{At: at,
				Msg: fmt.Sprintf("the last expression returns a list whose element %d is %s, not a build machine", i+1, describe(it))}
		}
		ms = append(ms, m.m.Clone())
	}
	return ms, nil
}

// Clone returns a copy of m that shares nothing with it.
func (m Machine) Clone() Machine {
	c := m
	c.Systems = append([]string{}, m.Systems...)
	c.Features = append([]string{}, m.Features...)
	if m.OverloadThreshold != nil {
		t := *m.OverloadThreshold
		c.OverloadThreshold = &t
	}
	if m.Status != nil {
		st := *m.Status
		c.Status = &st
	}
	return c
}

// machineVal is the value of a build-machine form: the fields as given or
// inherited, and the record with defaults applied.
type machineVal struct {
	fields map[string]Value
	at     Pos
	m      Machine
}

func (v *machineVal) Pos() Pos { return v.at }

// buildMachine evaluates (build-machine CLAUSE …).
func (ev *evaluator) buildMachine(form *Pair, args []Value, en *env) (Value, error) {
	mv := &machineVal{fields: map[string]Value{}, at: form.At}
	seen := map[string]bool{}
	for i, clause := range args {
		parts, ok := List(clause)
		if !ok || len(parts) == 0 {
			return nil, errorf(clause.Pos(), "build-machine: expected a field clause such as (name \"host\"), got %s", describe(clause))
		}
		sym, ok := parts[0].(Symbol)
		if !ok {
			return nil, errorf(clause.Pos(), "build-machine: a field clause must start with a field name, not %s", describe(parts[0]))
		}
		if len(parts) != 2 {
			return nil, errorf(clause.Pos(), "build-machine: field %s needs exactly one value, got %d", sym.Name, len(parts)-1)
		}
		if sym.Name == "inherit" {
			if i != 0 {
				return nil, errorf(clause.Pos(), "build-machine: (inherit …) must be the first clause")
			}
			v, err := ev.eval(parts[1], en)
			if err != nil {
				return nil, err
			}
			base, ok := v.(*machineVal)
			if !ok {
				return nil, errorf(parts[1].Pos(), "build-machine: inherit needs a build machine, got %s", describe(v))
			}
			for k, fv := range base.fields {
				mv.fields[k] = fv
			}
			continue
		}
		if !isMachineField(sym.Name) {
			e := errorf(sym.At, "build-machine: unknown field %s", sym.Name)
			if s := closest(sym.Name, machineFields); s != "" {
				e.Tip = fmt.Sprintf("did you mean %s?", s)
			}
			return nil, e
		}
		if seen[sym.Name] {
			return nil, errorf(sym.At, "build-machine: field %s is given twice", sym.Name)
		}
		seen[sym.Name] = true
		v, err := ev.eval(parts[1], en)
		if err != nil {
			return nil, err
		}
		if err := checkField(sym.Name, v, parts[1].Pos()); err != nil {
			return nil, err
		}
		mv.fields[sym.Name] = v
	}
	var missing []string
	for _, f := range []string{"name", "user", "host-key"} {
		if mv.fields[f] == nil {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		word := "field"
		if len(missing) > 1 {
			word = "fields"
		}
		return nil, errorf(form.At, "build-machine: missing %s %s", word, strings.Join(missing, ", "))
	}
	if mv.fields["systems"] == nil && mv.fields["system"] == nil {
		return nil, &Error{At: form.At, Msg: "build-machine: missing field systems",
			Tip: `add (systems (list "x86_64-linux")) or the system types the machine builds`}
	}
	mv.m = mv.machine()
	return mv, nil
}

func isMachineField(name string) bool {
	for _, f := range machineFields {
		if f == name {
			return true
		}
	}
	return false
}

// checkField checks the type of a build-machine field's value; at is the
// position of the expression that gave it.
func checkField(name string, v Value, at Pos) error {
	bad := func(want string) error {
		return errorf(at, "build-machine: field %s must be %s, got %s", name, want, describe(v))
	}
	switch name {
	case "name", "system", "user", "private-key", "host-key", "compression", "daemon-socket":
		if _, ok := v.(String); !ok {
			return bad("a string")
		}
	case "systems", "features":
		items, ok := List(v)
		if !ok {
			return bad("a list of strings")
		}
		for _, it := range items {
			if _, ok := it.(String); !ok {
				return errorf(at, "build-machine: field %s must be a list of strings, but it holds %s", name, describe(it))
			}
		}
	case "port":
		n, ok := exactInt(v)
		if !ok || n < 1 || n > 65535 {
			return bad("an integer from 1 to 65535")
		}
	case "compression-level":
		n, ok := exactInt(v)
		if !ok || n < 0 || n > 9 {
			return bad("an integer from 0 to 9")
		}
	case "parallel-builds":
		n, ok := exactInt(v)
		if !ok || n < 0 || n > 1<<20 {
			return bad("a non-negative integer")
		}
	case "speed":
		if _, ok := finiteReal(v); !ok {
			return bad("a real number")
		}
	case "overload-threshold":
		if b, ok := v.(Bool); ok && !b.V {
			return nil
		}
		if _, ok := finiteReal(v); !ok {
			return bad("a real number or #f")
		}
	}
	return nil
}

// machine applies Guix's defaults to the checked fields.
func (mv *machineVal) machine() Machine {
	str := func(name, def string) string {
		if s, ok := mv.fields[name].(String); ok {
			return s.S
		}
		return def
	}
	num := func(name string, def int) int {
		if v := mv.fields[name]; v != nil {
			n, _ := exactInt(v)
			return n
		}
		return def
	}
	strs := func(v Value) []string {
		out := []string{}
		items, _ := List(v)
		for _, it := range items {
			out = append(out, it.(String).S)
		}
		return out
	}
	m := Machine{
		Name:             str("name", ""),
		Port:             num("port", DefaultPort),
		User:             str("user", ""),
		PrivateKey:       str("private-key", DefaultPrivateKey()),
		HostKey:          str("host-key", ""),
		Compression:      str("compression", DefaultCompression),
		CompressionLevel: num("compression-level", DefaultCompressionLevel),
		DaemonSocket:     str("daemon-socket", DefaultDaemonSocket),
		ParallelBuilds:   num("parallel-builds", DefaultParallelBuilds),
		Speed:            DefaultSpeed,
		Features:         []string{},
	}
	if v := mv.fields["systems"]; v != nil {
		m.Systems = strs(v)
	} else {
		m.Systems = []string{str("system", "")}
	}
	if v := mv.fields["features"]; v != nil {
		m.Features = strs(v)
	}
	if v := mv.fields["speed"]; v != nil {
		m.Speed, _ = finiteReal(v)
	}
	t := DefaultOverloadThreshold
	m.OverloadThreshold = &t
	if v := mv.fields["overload-threshold"]; v != nil {
		if f, ok := finiteReal(v); ok {
			m.OverloadThreshold = &f
		} else {
			m.OverloadThreshold = nil
		}
	}
	return m
}

// closest returns the candidate within edit distance 2 of s, if any.
// closest returns the candidate nearest to s when it is near enough to be
// a typo of it: one edit in a short name, up to two in a longer one, none
// for names under three characters (where any guess is noise).
func closest(s string, candidates []string) string {
	if len(s) < 3 {
		return ""
	}
	best, bestD := "", min(2, max(1, len(s)/3))+1
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
