package candidates

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/guix-offload/guix-offload/internal/atomicfile"
	"github.com/guix-offload/guix-offload/scm"

	"github.com/guix-offload/guix-offload/internal/boundedread"
)

// Options say where the machines come from and how discovered ones are
// judged: the hook's configuration (hook.Config.Candidates makes them).
type Options struct {
	// MachinesFile is Guix's static machines.scm ("" for none; a missing
	// file means no static machines), evaluated by Evaluator: "builtin",
	// "guile" (the program Guile), or "auto" (builtin, and Guile for a
	// file builtin cannot evaluate).
	MachinesFile, Evaluator, Guile string
	// Discovery turns discovered machines on. They come from Snapshot,
	// the discovery snapshot file `guix-offload discover --watch --cache`
	// keeps (hook.toml's key "cache"), or when it is missing or stale from
	// a live browse bounded by BrowseTimeout (0: none).
	Discovery     bool
	Snapshot      string
	BrowseTimeout time.Duration
	// Domains, MDNS and ResolvConf say where a live browse looks: the
	// wide-area DNS-SD domains (none: the browse domains the network
	// offers), whether the LAN too, and the resolver configuration.
	Domains    []string
	MDNS       bool
	ResolvConf string
	// Trust, ACL and Pins are the trust policy for discovered machines
	// (see discovery.ParsePolicy).
	Trust, ACL, Pins string
	// User is the SSH user for a discovered machine that names none;
	// PrivateKey the SSH key for every discovered machine ("" for
	// $HOME/.ssh/id_rsa).
	User, PrivateKey string
	// StateDirectory keeps what is worth keeping between processes, under
	// StateDirectory/cache (see [keptFile]): readings of files, failed
	// evaluations, the trust policy's judgments, the last live browse.
	StateDirectory string
	// Env reads the environment (HOME); nil reads none.
	Env func(string) string
}

func (o *Options) env(name string) string {
	if o.Env == nil {
		return ""
	}
	return o.Env(name)
}

// Considered returns the machines the hook would consider at now, in
// its order (see [Merge]), and notes worth showing (a stale snapshot,
// machines the trust policy leaves out). An error means the static
// machines cannot be read.
func Considered(ctx context.Context, o *Options, now time.Time) ([]*scm.Machine, []string, error) {
	var l Loader
	static, discovered, notes, err := l.Load(ctx, o, now)
	if err != nil {
		return nil, notes, err
	}
	return Merge(static, discovered), notes, nil
}

// Loader loads the static machines from machines.scm and the discovered
// ones from the discovery snapshot (or a bounded live browse, once per
// Loader, when the snapshot is missing or stale). A hook process keeps
// one for all its requests. The zero Loader is ready to use.
type Loader struct {
	// mem keeps this process's readings, by name.
	mem map[string]*reading
	// browsed keeps the result of the one live browse of this Loader.
	browsed     []*scm.Machine
	browsedOnce bool
	// failed keeps the failed evaluations of this process, by name.
	failed map[string]*failure
}

// Load returns the static and the discovered machines, and notes worth a
// line in the daemon's log (a stale snapshot, say). Problems with
// discovery are notes, not errors: static machines still work. An error
// means the static machines cannot be read.
func (l *Loader) Load(ctx context.Context, o *Options, now time.Time) (static, discovered []*scm.Machine, notes []string, err error) {
	if o.MachinesFile != "" {
		const name = "machines-scm"
		salt := o.Evaluator + "\x00" + o.Guile
		// A version of the file that failed is not evaluated again for
		// a while: one that loops would cost every request the Guile
		// bound.
		if err := l.failedBefore(o, name, o.MachinesFile, salt, now); err != nil {
			return nil, nil, nil, err
		}
		id, _ := statID(o.MachinesFile)
		static, _, err = l.remembered(o, name, o.MachinesFile, salt, func() ([]*scm.Machine, time.Time, error) {
			ms, err := evalMachines(ctx, o)
			return pointers(ms), time.Time{}, err
		})
		if err != nil {
			l.rememberFailure(ctx, o, name, o.MachinesFile, salt, id, err, now)
			return nil, nil, nil, err
		}
	}
	if o.Discovery {
		discovered, notes = l.discovered(ctx, o, now)
	}
	return static, discovered, notes, nil
}

// evalMachines evaluates the machines file with the configured
// evaluator: the built-in one, the real Guile, or (auto) the built-in one
// and, for a file it cannot evaluate, Guile.
func evalMachines(ctx context.Context, o *Options) ([]scm.Machine, error) {
	withGuile := func() ([]scm.Machine, error) {
		// Bounded by scm.GuileTimeout.
		return scm.EvalWithGuile(ctx, o.Guile, o.MachinesFile)
	}
	switch o.Evaluator {
	case "guile":
		return withGuile()
	case "builtin":
		return scm.LoadMachines(o.MachinesFile)
	}
	ms, err := scm.LoadMachines(o.MachinesFile)
	var serr *scm.Error
	if err == nil || !errors.As(err, &serr) {
		return ms, err
	}
	if _, lerr := exec.LookPath(o.Guile); lerr != nil {
		return nil, fmt.Errorf("%w (and Guile, which might evaluate it, is not installed: set guile in hook.toml)", err)
	}
	ms, gerr := withGuile()
	if gerr != nil {
		return nil, fmt.Errorf("%w; Guile cannot either: %v", err, gerr)
	}
	return ms, nil
}

// pointers returns pointers to the elements of ms.
func pointers(ms []scm.Machine) []*scm.Machine {
	out := make([]*scm.Machine, len(ms))
	for i := range ms {
		out[i] = &ms[i]
	}
	return out
}

// reading is a remembered reading of a file: the machines read from it
// (machines.scm, evaluated, or the discovery snapshot, parsed and
// converted) and the identity of that file: device, inode, size,
// modification and change times. Reading those files is most of a
// decision's cost, a hook process serves many requests, and many hook
// processes run one after the other; so the reading is kept in memory and,
// in a format quick to read, in the state directory ([keptFile] NAME), and
// used only while the file is unchanged and Salt (what else the
// conversion depended on) is the same.
type reading struct {
	File     string
	ID       fileID
	Salt     string
	Updated  time.Time // the snapshot's own time, for staleness
	Machines []*scm.Machine
}

type fileID struct {
	Dev, Ino, Size, Mtime, Ctime int64
}

func statID(path string) (fileID, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileID{}, false
	}
	return fileID{Dev: int64(st.Dev), Ino: int64(st.Ino), Size: st.Size,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}, true
}

// keptDir is the directory under the state directory where a hook process
// keeps what the next can use: readings, failed evaluations, judgments,
// its own browse. It is named "cache" on disk (the name predates this
// code, and operators may know it); in code it is "kept", because "cache"
// means the mDNS record cache (package discovery).
const keptDir = "cache"

// keptFile returns the file called name in the kept directory of o's
// state directory.
func keptFile(o *Options, name string) string {
	return filepath.Join(o.StateDirectory, keptDir, name)
}

// remembered returns the machines of file from its remembered reading, in
// memory or kept on disk, calling load when there is none or it is
// outdated. The machines returned are shared with the remembered reading:
// callers must not modify them ([Merge] does not).
func (l *Loader) remembered(o *Options, name, file, salt string, load func() ([]*scm.Machine, time.Time, error)) ([]*scm.Machine, time.Time, error) {
	id, ok := statID(file)
	if !ok {
		// Missing or unreadable: let load say what it makes of it.
		ms, updated, err := load()
		return ms, updated, err
	}
	valid := func(c *reading) bool {
		return c != nil && c.File == file && c.ID == id && c.Salt == salt
	}
	if c := l.mem[name]; valid(c) {
		return c.Machines, c.Updated, nil
	}
	kept := keptFile(o, name)
	if data, err := boundedread.ReadFile(kept, boundedread.Snapshot); err == nil {
		if c, err := decodeReading(data); err == nil && valid(c) {
			l.remember(name, c)
			return c.Machines, c.Updated, nil
		}
	}
	ms, updated, err := load()
	if err != nil {
		return nil, time.Time{}, err
	}
	// Remember only when the file did not change while it was read, and is
	// not so new that a change within the file system's timestamp
	// granularity could go unnoticed.
	if id2, ok := statID(file); ok && id2 == id && time.Since(time.Unix(0, id.Mtime)) > 100*time.Millisecond {
		c := &reading{File: file, ID: id, Salt: salt, Updated: updated, Machines: ms}
		l.remember(name, c)
		_ = atomicfile.Write(kept, encodeReading(c), atomicfile.Private)
	}
	return ms, updated, nil
}

func (l *Loader) remember(name string, c *reading) {
	if l.mem == nil {
		l.mem = make(map[string]*reading)
	}
	l.mem[name] = c
}

// A kept reading is line-oriented and quick to read: a header line
// "guix-offload-machines 4"; a line with the file name, its identity, the
// salt and the time; then one line per machine: the build-machine fields
// in Guix's order, then "-" for a machine without a [scm.Status] or else
// its instance, load, free disk space and signature time (Unix
// nanoseconds, 0 for none). Fields are separated by tabs, strings quoted
// with strconv.Quote, lists joined by commas inside the quotes.
const readingMagic = "guix-offload-machines 4"

const (
	recordFields = 13 // the build-machine fields
	statusFields = 4  // instance, load, free disk, signed
)

func encodeReading(c *reading) []byte {
	var b strings.Builder
	b.WriteString(readingMagic + "\n")
	fmt.Fprintf(&b, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\n", strconv.Quote(c.File), c.ID.Dev, c.ID.Ino, c.ID.Size,
		c.ID.Mtime, c.ID.Ctime, strconv.Quote(c.Salt), c.Updated.UnixNano())
	ff := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, m := range c.Machines {
		threshold := "#f"
		if m.OverloadThreshold != nil {
			threshold = ff(*m.OverloadThreshold)
		}
		fmt.Fprintf(&b, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s",
			strconv.Quote(m.Name), m.Port, strconv.Quote(strings.Join(m.Systems, ",")), strconv.Quote(m.User),
			strconv.Quote(m.PrivateKey), strconv.Quote(m.HostKey), strconv.Quote(m.Compression), strconv.Quote(m.DaemonSocket),
			m.CompressionLevel, threshold, ff(m.Speed), m.ParallelBuilds, strconv.Quote(strings.Join(m.Features, ",")))
		if st := m.Status; st == nil {
			b.WriteString("\t-\n")
		} else {
			var signed int64
			if !st.Signed.IsZero() {
				signed = st.Signed.UnixNano()
			}
			fmt.Fprintf(&b, "\t%s\t%s\t%d\t%d\n", strconv.Quote(st.Instance), ff(st.Load), st.FreeDisk, signed)
		}
	}
	return []byte(b.String())
}

var errBadReading = errors.New("bad kept reading")

func decodeReading(data []byte) (*reading, error) {
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) < 2 || lines[0] != readingMagic {
		return nil, errBadReading
	}
	c := &reading{}
	h := strings.Split(lines[1], "\t")
	if len(h) != 8 {
		return nil, errBadReading
	}
	var err error
	unq := func(s string) string {
		if err != nil {
			return ""
		}
		var v string
		v, err = strconv.Unquote(s)
		return v
	}
	num := func(s string) int64 {
		if err != nil {
			return 0
		}
		var v int64
		v, err = strconv.ParseInt(s, 10, 64)
		return v
	}
	flt := func(s string) float64 {
		if err != nil {
			return 0
		}
		var v float64
		v, err = strconv.ParseFloat(s, 64)
		return v
	}
	list := func(s string) []string {
		v := unq(s)
		if v == "" {
			return []string{}
		}
		return strings.Split(v, ",")
	}
	c.File = unq(h[0])
	c.ID = fileID{num(h[1]), num(h[2]), num(h[3]), num(h[4]), num(h[5])}
	c.Salt = unq(h[6])
	if ns := num(h[7]); ns != (time.Time{}).UnixNano() {
		c.Updated = time.Unix(0, ns)
	}
	c.Machines = make([]*scm.Machine, 0, len(lines)-2)
	for _, line := range lines[2:] {
		f := strings.Split(line, "\t")
		switch {
		case len(f) == recordFields+1 && f[recordFields] == "-":
		case len(f) == recordFields+statusFields:
		default:
			return nil, errBadReading
		}
		m := &scm.Machine{
			Name: unq(f[0]), Port: int(num(f[1])), Systems: list(f[2]), User: unq(f[3]),
			PrivateKey: unq(f[4]), HostKey: unq(f[5]), Compression: unq(f[6]), DaemonSocket: unq(f[7]),
			CompressionLevel: int(num(f[8])), Speed: flt(f[10]), ParallelBuilds: int(num(f[11])), Features: list(f[12]),
		}
		if f[9] != "#f" {
			t := flt(f[9])
			m.OverloadThreshold = &t
		}
		if len(f) == recordFields+statusFields {
			st := &scm.Status{Instance: unq(f[13]), Load: flt(f[14]), FreeDisk: num(f[15])}
			if ns := num(f[16]); ns != 0 {
				st.Signed = time.Unix(0, ns)
			}
			m.Status = st
		}
		if err != nil {
			return nil, errBadReading
		}
		c.Machines = append(c.Machines, m)
	}
	return c, nil
}

func note(format string, a ...any) string { return fmt.Sprintf(format, a...) }
