package hook

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/candidates"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/sshconn"
	"github.com/guix-offload/guix-offload/internal/transport"
	"github.com/guix-offload/guix-offload/scm"
)

// Options are what [Serve] works with. [Main] fills them for the real
// program; tests replace what talks to the world.
type Options struct {
	// Stdin carries the daemon's requests; Out is stdout and stderr (one
	// pipe, replies and messages); BuildLog is file descriptor 4.
	Stdin    io.Reader
	Out      io.Writer
	BuildLog io.Writer
	// Env reads the environment (GUIX_OFFLOAD_CONFIG, HOME, PATH).
	Env func(string) string

	// Config, when set, is used instead of reading the configuration file.
	Config *Config
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Dial opens the SSH connection; nil means sshconn.Dial.
	Dial func(ctx context.Context, t sshconn.Target, o *sshconn.Options) (*ssh.Client, error)
	// Transport runs an accepted build; nil means transport.Run.
	Transport func(ctx context.Context, b *transport.Build) error
	// Sources loads the machines (static and discovered); nil means the
	// machines file and the discovery snapshot of the configuration.
	Sources Sources
	// ACL verifies retrieved outputs; nil means reading the configured
	// ACL file.
	ACL *pki.ACL
}

// Sources loads candidate machines.
type Sources interface {
	// Machines returns the static and the discovered machines, and notes
	// worth a line in the daemon's log (a stale snapshot, say). An error
	// means the hook cannot decide and declines.
	Machines(ctx context.Context, cfg *Config, now time.Time) (static, discovered []*scm.Machine, notes []string, err error)
}

// loaderSources are the machines of the configuration, through one
// [candidates.Loader] for the whole process.
type loaderSources struct {
	env    func(string) string
	loader candidates.Loader
}

func (l *loaderSources) Machines(ctx context.Context, cfg *Config, now time.Time) (static, discovered []*scm.Machine, notes []string, err error) {
	return l.loader.Load(ctx, cfg.Candidates(l.env), now)
}

// Args are the hook's four arguments after "offload".
type Args struct {
	System          string
	MaxSilentTime   time.Duration
	PrintBuildTrace bool
	BuildTimeout    time.Duration
}

// ParseArgs parses SYSTEM MAX-SILENT-TIME PRINT-BUILD-TRACE BUILD-TIMEOUT.
func ParseArgs(args []string) (Args, error) {
	var a Args
	if len(args) != 4 {
		return a, fmt.Errorf("want 4 arguments SYSTEM MAX-SILENT-TIME PRINT-BUILD-TRACE BUILD-TIMEOUT, got %d", len(args))
	}
	a.System = args[0]
	secs := func(name, s string) (time.Duration, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > 1<<31 {
			return 0, fmt.Errorf("%s %q is not a number of seconds", name, s)
		}
		return time.Duration(n) * time.Second, nil
	}
	var err error
	if a.MaxSilentTime, err = secs("MAX-SILENT-TIME", args[1]); err != nil {
		return a, err
	}
	switch args[2] {
	case "1":
		a.PrintBuildTrace = true
	case "0":
	default:
		return a, fmt.Errorf("PRINT-BUILD-TRACE %q is not 0 or 1", args[2])
	}
	if a.BuildTimeout, err = secs("BUILD-TIMEOUT", args[3]); err != nil {
		return a, err
	}
	return a, nil
}

// Main is the offload hook: it serves the daemon's requests on stdin,
// answering on out (the daemon's stdout and stderr pipe), writing the
// build log to buildLog (file descriptor 4). args are the arguments after
// "offload". It returns the exit status for the daemon: 0 at the end of
// the requests or after a successful build, 100 when the build failed,
// 101 when it timed out, 1 for any other failure (see DESIGN §2).
func Main(ctx context.Context, args []string, stdin io.Reader, out io.Writer, buildLog io.Writer, env func(string) string) int {
	return Serve(ctx, args, &Options{Stdin: stdin, Out: out, BuildLog: buildLog, Env: env})
}

// Serve is [Main] with every dependency in o.
func Serve(ctx context.Context, args []string, o *Options) int {
	s := &server{o: o, out: &lineWriter{w: o.Out}}
	if o.Env == nil {
		o.Env = func(string) string { return "" }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Dial == nil {
		o.Dial = sshconn.Dial
	}
	if o.Transport == nil {
		o.Transport = transport.Run
	}
	if o.Sources == nil {
		o.Sources = &loaderSources{env: o.Env}
	}
	s.args, s.argsErr = ParseArgs(args)
	s.local.systems = LocalSystems(s.args.System)
	s.cfg = o.Config
	if s.cfg == nil {
		path := ConfigPath(o.Env)
		s.cfg, s.cfgErr = LoadConfig(path, path == DefaultConfigFile)
	}
	if s.cfg != nil {
		s.state = State{Dir: s.cfg.StateDirectory}
	}
	return s.serve(ctx)
}

type server struct {
	o       *Options
	out     *lineWriter
	args    Args
	argsErr error
	cfg     *Config
	cfgErr  error
	state   State
	local   localReady
	// postponed remembers, by derivation, when this process first
	// postponed it for want of a usable machine: the daemon sends the
	// same request to the same process again, so the bound on
	// postponing holds even when the state directory cannot be written.
	postponed map[string]time.Time
	// stateWarned is set once the unwritable state directory was logged.
	stateWarned bool
}

// sayf writes one message line for the daemon's log. It never starts with
// "# ": every message starts with "guix-offload: ".
func (s *server) sayf(format string, a ...any) {
	s.out.line("guix-offload: " + fmt.Sprintf(format, a...))
}

func (s *server) reply(a Answer) { s.out.line("# " + string(a)) }

func (s *server) serve(ctx context.Context) int {
	in := bufio.NewReader(s.o.Stdin)
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				// The daemon closed our stdin: the client's request is over.
				return 0
			}
			s.sayf("error: read request: %v", err)
			return 1
		}
		line = strings.TrimSuffix(line, "\n")
		acc := s.handle(ctx, line)
		if acc == nil {
			continue
		}
		// From here on this process serves this one build only.
		return s.build(ctx, in, acc)
	}
}

// accepted is a build we said yes to: the machine, its slot and the open
// connection, all held until the process exits.
type accepted struct {
	req     Request
	machine *scm.Machine
	slot    *Slot
	client  *ssh.Client
}

// handle answers one request line. It returns the accepted build after
// replying "# accept", or nil after any other reply. It never panics:
// an internal error is a decline with a message.
func (s *server) handle(ctx context.Context, line string) (acc *accepted) {
	replied := false
	defer func() {
		if r := recover(); r != nil {
			if acc != nil {
				acc.slot.Release()
				acc.client.Close()
				acc = nil
			}
			s.sayf("internal error, declining: %v", r)
			if debugEnabled(s.o.Env) {
				s.sayf("%s", strings.ReplaceAll(string(debug.Stack()), "\n", " | "))
			}
			if !replied {
				s.reply(Decline)
			}
		}
	}()
	if s.argsErr != nil {
		s.sayf("error: bad hook arguments, declining: %v", s.argsErr)
		replied = true
		s.reply(Decline)
		return nil
	}
	if s.cfgErr != nil {
		s.sayf("error: bad configuration, declining: %v", s.cfgErr)
		replied = true
		s.reply(Decline)
		return nil
	}
	req, err := ParseRequest(line)
	if err != nil {
		s.sayf("error: %v; declining", err)
		replied = true
		s.reply(Decline)
		return nil
	}
	answer, acc, msg := s.decide(ctx, req)
	s.sayf("%s %s: %s", answer, req.Drv, msg)
	replied = true
	s.reply(answer)
	return acc
}

// decide chooses a machine for req: everything up to the reply.
func (s *server) decide(ctx context.Context, req Request) (Answer, *accepted, string) {
	now := s.o.Now()
	static, discovered, notes, err := s.machines(ctx, now)
	for _, n := range notes {
		s.sayf("%s", n)
	}
	if err != nil {
		return Decline, nil, fmt.Sprintf("cannot read the build machines: %v", err)
	}
	machines := candidates.Merge(static, discovered)
	// Only the down records of machines that could take it are read.
	keys := make(map[string]bool)
	for _, m := range machines {
		if ok, _ := m.Matches(req.System, req.Features); ok {
			keys[m.Key()] = true
		}
	}
	plan := Decide(req, machines, s.state.DownOf(now, keys))
	if len(plan.Try) > 0 {
		if err := s.ready(); err != nil {
			return Decline, nil, fmt.Sprintf("cannot offload, building locally: %v", err)
		}
	}
	// One deadline for all connection attempts: the daemon waits for
	// the reply, and trying N silent machines one after the other would
	// cost it N connect-timeouts.
	budget := decisionBudget * s.cfg.ConnectTimeout.D()
	dctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	var keyFiles []string // our private keys that could not be used
	for i, m := range plan.Try {
		if dctx.Err() != nil && ctx.Err() == nil {
			for _, m := range plan.Try[i:] {
				plan.Busy = append(plan.Busy, Skip{m, fmt.Sprintf("not tried: no time left (connection attempts are bounded by %s)", budget)})
			}
			break
		}
		slot, err := AcquireSlot(s.cfg.StateDirectory, m.Key(), m.ParallelBuilds)
		if err != nil {
			plan.Down = append(plan.Down, Skip{m, err.Error()})
			continue
		}
		if slot == nil {
			plan.Busy = append(plan.Busy, Skip{m, fmt.Sprintf("all %d build slots taken", m.ParallelBuilds)})
			continue
		}
		deadline, _ := dctx.Deadline()
		short := time.Until(deadline) < s.cfg.ConnectTimeout.D()
		client, err := s.connect(dctx, m, slot)
		if err != nil {
			slot.Release()
			if ctx.Err() == nil && (dctx.Err() != nil || short && errors.Is(err, sshconn.ErrTimeout)) {
				// Cut short by the deadline (it had less than its
				// connect-timeout), not the machine's fault.
				plan.Busy = append(plan.Busy, Skip{m, fmt.Sprintf("not tried to the end: no time left (connection attempts are bounded by %s)", budget)})
				continue
			}
			reason := err.Error()
			var ke *localKeyError
			if errors.As(err, &ke) {
				// Ours, not the machine's: other hook processes must not
				// skip the machine for it.
				if !slices.Contains(keyFiles, ke.file) {
					keyFiles = append(keyFiles, ke.file)
				}
				plan.Down = append(plan.Down, Skip{m, reason})
				continue
			}
			if ctx.Err() == nil {
				until := s.o.Now().Add(s.cfg.DownTime.D())
				if werr := s.state.MarkDown(m.Key(), reason, until); werr != nil {
					s.sayf("warning: cannot remember %s as down: %v", m.Label(), werr)
				}
			}
			plan.Down = append(plan.Down, Skip{m, reason})
			continue
		}
		s.clearPostponed(req.Drv)
		msg := fmt.Sprintf("building on %s (%s, slot %s)%s%s", m.Label(), m.Origin(), slot.Path,
			listText("; skipped", plan.Busy), listText("; down", plan.Down))
		return Accept, &accepted{req: req, machine: m, slot: slot, client: client}, msg
	}
	if len(keyFiles) > 0 && len(plan.Busy) == 0 {
		// Waiting does not mend a key file: say so now.
		s.clearPostponed(req.Drv)
		return Decline, nil, fmt.Sprintf("cannot use the SSH private key %s (private-key in machines.scm or hook.toml), not offloading%s",
			strings.Join(keyFiles, ", "), listText("", plan.Down))
	}
	var first time.Time
	allDown := plan.Matching > 0 && len(plan.Busy) == 0 && !(req.Willing && buildsLocally(s.local.systems, req.System))
	if allDown {
		first = s.firstPostponed(req.Drv, now)
	}
	answer, msg := plan.Final(s.local.systems, now, first, s.cfg.MaxPostpone.D())
	if answer == Decline {
		s.clearPostponed(req.Drv)
	}
	return answer, nil, msg
}

// firstPostponed is when drv was first postponed for want of a usable
// machine: the earlier of the state directory's record (shared with
// other hook processes) and this process's memory.
func (s *server) firstPostponed(drv string, now time.Time) time.Time {
	first, err := s.state.FirstPostponed(drv, now)
	if err != nil && !s.stateWarned {
		s.stateWarned = true
		s.sayf("warning: the state directory %s is not writable, postponements are remembered by this process only: %v", s.cfg.StateDirectory, err)
	}
	if s.postponed == nil {
		s.postponed = make(map[string]time.Time)
	}
	if mem, ok := s.postponed[drv]; ok && mem.Before(first) && now.Sub(mem) < postponedLife {
		return mem
	}
	s.postponed[drv] = first
	return first
}

func (s *server) clearPostponed(drv string) {
	s.state.ClearPostponed(drv)
	delete(s.postponed, drv)
}

// decisionBudget bounds all connection attempts for one request, in
// connect-timeouts: the first candidate gets its whole connect-timeout,
// and the daemon never waits more than this for a reply.
const decisionBudget = 2

// machines loads the candidates. A panic while discovering machines
// (the live browse is the least tried code on the way) costs the
// discovered machines, with one warning line, never the reply: the
// static machines are loaded again with discovery off, for the rest of
// this process.
func (s *server) machines(ctx context.Context, now time.Time) (static, discovered []*scm.Machine, notes []string, err error) {
	load := func(cfg *Config) (static, discovered []*scm.Machine, notes []string, panicked any, err error) {
		defer func() {
			if r := recover(); r != nil {
				panicked = r
			}
		}()
		static, discovered, notes, err = s.o.Sources.Machines(ctx, cfg, now)
		return static, discovered, notes, nil, err
	}
	static, discovered, notes, p, err := load(s.cfg)
	if p == nil {
		return static, discovered, notes, err
	}
	if !s.cfg.Discovery {
		panic(p) // not discovery's: handle declines
	}
	cfg := *s.cfg
	cfg.Discovery = false
	static, _, notes, again, err := load(&cfg)
	if again != nil {
		panic(again)
	}
	s.cfg = &cfg
	notes = append(notes, fmt.Sprintf("warning: discovering build machines failed, using %s only: internal error: %v", cfg.MachinesFile, p))
	return static, nil, notes, err
}

func (s *server) connect(ctx context.Context, m *scm.Machine, slot *Slot) (c *ssh.Client, err error) {
	defer func() {
		// A panic here must not keep the slot until the process exits.
		if r := recover(); r != nil {
			slot.Release()
			panic(r)
		}
	}()
	key := m.PrivateKey
	if key == "" {
		key = scm.PrivateKeyFile(s.o.Env("HOME"))
	}
	t := sshconn.Target{Host: m.Name, Port: m.DialPort(), User: m.User, PrivateKeyFile: key, HostKey: m.HostKey}
	c, err = s.o.Dial(ctx, t, &sshconn.Options{Timeout: s.cfg.ConnectTimeout.D()})
	if err != nil {
		if errors.Is(err, sshconn.ErrBadKey) {
			if _, kerr := sshconn.LoadPrivateKey(key); kerr != nil {
				return nil, &localKeyError{file: key, err: kerr}
			}
		}
		return nil, describeDialError(err)
	}
	return c, nil
}

// localKeyError is our own private key that cannot be used: a problem of
// this master, not of the machine.
type localKeyError struct {
	file string
	err  error
}

func (e *localKeyError) Error() string {
	return fmt.Sprintf("private key %s cannot be used: %v", e.file, e.err)
}

func (e *localKeyError) Unwrap() error { return e.err }

// describeDialError turns an sshconn error into a short reason with a
// hint for people reading the daemon's log.
func describeDialError(err error) error {
	switch {
	case errors.Is(err, sshconn.ErrHostKeyMismatch):
		return fmt.Errorf("%w (check host-key in machines.scm, or the announcement)", err)
	case errors.Is(err, sshconn.ErrAuthRefused):
		return fmt.Errorf("%w (is our public key in the machine's authorized_keys?)", err)
	}
	return err
}

func debugEnabled(env func(string) string) bool { return env("GUIX_OFFLOAD_DEBUG") != "" }

// lineWriter writes whole lines and remembers the first write error
// (the daemon may be gone; nothing useful can be done about it).
type lineWriter struct {
	w   io.Writer
	err error
}

func (l *lineWriter) line(s string) {
	if l.err != nil {
		return
	}
	s = strings.ReplaceAll(s, "\n", " ")
	_, l.err = io.WriteString(l.w, s+"\n")
}
