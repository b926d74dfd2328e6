package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/guix-offload/guix-offload/test/standin/internal/derivation"
	"github.com/guix-offload/guix-offload/test/standin/internal/store"
)

// buildOptions are the daemon build options `guix build` passes on.
type buildOptions struct {
	maxSilent time.Duration // 0: none
	timeout   time.Duration // 0: none
}

// daemonDefaults are the build machine daemon's own limits, its
// `guix-daemon --timeout=N --max-silent-time=N` (0 when unset, as in
// guix-daemon), from GUIX_STANDIN_DAEMON_TIMEOUT and
// GUIX_STANDIN_DAEMON_MAX_SILENT_TIME.
func daemonDefaults() (buildOptions, error) {
	var opts buildOptions
	for _, v := range []struct {
		env string
		d   *time.Duration
	}{
		{"GUIX_STANDIN_DAEMON_TIMEOUT", &opts.timeout},
		{"GUIX_STANDIN_DAEMON_MAX_SILENT_TIME", &opts.maxSilent},
	} {
		s := os.Getenv(v.env)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return opts, fmt.Errorf("%s=%q: want a number of seconds", v.env, s)
		}
		*v.d = time.Duration(n) * time.Second
	}
	return opts, nil
}

// errBuild is a failed build; its message is the daemon's, as `guix
// build` reports it, and status what the daemon's Worker::exitStatus
// (nix/libstore/build.cc) gives a client of its store protocol: 101 when
// the build timed out, 100 when it failed.
type errBuild struct {
	msg    string
	status int
}

func (e *errBuild) Error() string { return e.msg }

// cmdBuild is `guix build [OPTIONS] DRV…`: it builds each derivation the
// way guix-daemon does (inputs first, the builder with the derivation's
// environment in a fresh directory, outputs straight into the store) and
// prints the output paths. Like `guix build`, it exits 1 for any failure,
// after the daemon's messages on stderr.
func (g *guix) cmdBuild(ctx context.Context, args []string) int {
	// What the client does not set, the daemon's own --timeout and
	// --max-silent-time decide (guix/store.scm's set-build-options
	// sends "build-timeout" and "build-max-silent-time" only when
	// given; nix/nix-daemon/nix-daemon.cc applies them as overrides of
	// the daemon's settings).
	opts, err := daemonDefaults()
	if err != nil {
		return g.fail("build", err)
	}
	var drvs, exprs []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		takes := func() (string, bool) {
			if hasVal {
				return val, true
			}
			if i+1 < len(args) {
				i++
				return args[i], true
			}
			return "", false
		}
		switch name {
		case "--max-silent-time", "--timeout":
			v, ok := takes()
			n, err := strconv.Atoi(v)
			if !ok || err != nil || n < 0 {
				return g.fail("build", fmt.Errorf("%s: invalid number of seconds %q", name, v))
			}
			if name == "--timeout" {
				opts.timeout = time.Duration(n) * time.Second
			} else {
				opts.maxSilent = time.Duration(n) * time.Second
			}
		case "-e", "--expression":
			v, ok := takes()
			if !ok {
				return g.fail("build", fmt.Errorf("%s: missing argument", name))
			}
			exprs = append(exprs, v)
		case "-v", "--verbosity", "-c", "--cores", "-M", "--max-jobs":
			if _, ok := takes(); !ok {
				return g.fail("build", fmt.Errorf("%s: missing argument", name))
			}
		case "--no-offload", "--no-grafts", "--no-substitutes", "-K", "--keep-failed", "-q", "--quiet", "-L":
		default:
			if strings.HasPrefix(a, "-") {
				return g.fail("build", fmt.Errorf("%s: unrecognized option", a))
			}
			drvs = append(drvs, a)
		}
	}
	if len(drvs)+len(exprs) == 0 {
		return g.fail("build", errors.New("no derivation specified"))
	}
	var outs []string
	if len(exprs) > 0 {
		o, err := g.plainFile(exprs[0])
		if err != nil {
			return g.fail("build", err)
		}
		// As real Guix (observed at 210a42dd63): a plain-file lowers to
		// a store item, not a derivation, and guix/scripts/build.scm
		// hands it to show-derivation-outputs (guix/ui.scm), whose
		// match has no clause for it. The item is in the store;
		// nothing is printed on stdout; the exit status is 1.
		fmt.Fprintf(g.stderr, "Backtrace:\nIn guix/ui.scm:\n    910:2  0 (show-derivation-outputs %q)\n\n", o)
		fmt.Fprintf(g.stderr, "guix/ui.scm:910:2: Throw to key `match-error' with args `(\"match\" \"no matching pattern\" %q)'.\n", o)
		return 1
	}
	// `guix build` renders the daemon's build traces as its own lines
	// on stderr, which a hook must not pass on as the build log: "The
	// following derivation will be built:" and the list
	// (show-what-to-build, guix/ui.scm), then "building DRV...",
	// "successfully built DRV", "build of DRV failed" and "View build
	// log at 'LOG'." (print-build-event, guix/status.scm).
	g.events = g.stderr
	var todo []string
	for _, d := range drvs {
		if !strings.HasSuffix(d, ".drv") {
			return g.fail("build", fmt.Errorf("%s: only derivation files can be built by the stand-in", d))
		}
		if !g.built(d) {
			todo = append(todo, d)
		}
	}
	switch len(todo) {
	case 0:
	case 1:
		g.eventf("The following derivation will be built:\n   %s", todo[0])
	default:
		g.eventf("The following derivations will be built:\n   %s", strings.Join(todo, "\n   "))
	}
	for _, d := range drvs {
		o, err := g.build(ctx, d, opts)
		if err != nil {
			return g.fail("build", err)
		}
		outs = append(outs, o...)
	}
	for _, o := range outs {
		fmt.Fprintln(g.stdout, o)
	}
	return 0
}

// plainFileRE is the one expression the stand-in evaluates:
// (plain-file "NAME" "CONTENT"), strings with \" and \\ escapes.
var plainFileRE = regexp.MustCompile(`^\s*\(plain-file\s+"((?:[^"\\]|\\.)*)"\s+"((?:[^"\\]|\\.)*)"\s*\)\s*$`)

// plainFile is `guix build -e '(plain-file "NAME" "CONTENT")'`: the file
// is added to the store as the daemon's add-text-to-store does.
func (g *guix) plainFile(expr string) (string, error) {
	m := plainFileRE.FindStringSubmatch(expr)
	if m == nil {
		return "", fmt.Errorf("%s: the stand-in evaluates only (plain-file \"NAME\" \"CONTENT\")", expr)
	}
	name, content := unescapeScheme(m[1]), unescapeScheme(m[2])
	if !store.ValidName(name) {
		return "", fmt.Errorf("invalid name for a store item: %q", name)
	}
	return g.addText(name, content, nil)
}

// addText adds a text file to the store as the daemon's add-text-to-store
// does, and returns its path.
func (g *guix) addText(name, content string, refs []string) (string, error) {
	if !store.ValidName(name) {
		return "", fmt.Errorf("invalid name for a store item: %q", name)
	}
	for _, r := range refs {
		if !g.store.Valid(r) {
			return "", fmt.Errorf("path `%s' is not valid", r)
		}
	}
	p := store.TextPath(g.store.Dir, name, content, refs)
	if g.store.Valid(p) {
		return p, nil
	}
	tmp, err := os.CreateTemp(g.store.Dir, ".add-")
	if err != nil {
		return "", err
	}
	_, werr := tmp.WriteString(content)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), 0o444)); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return p, g.store.Register(store.Info{Path: p, References: refs})
}

// built reports whether drvPath's outputs are all valid already (false
// when it cannot tell).
func (g *guix) built(drvPath string) bool {
	data, err := os.ReadFile(drvPath)
	if err != nil {
		return false
	}
	drv, err := derivation.Parse(data)
	if err != nil {
		return false
	}
	for _, o := range drv.Outputs {
		if !g.store.Valid(o.Path) {
			return false
		}
	}
	return true
}

// failedEvent prints what `guix build` says when the daemon reports the
// build of drvPath failed: "build of DRV failed" and where its log is
// (guix/status.scm, print-build-event, 'build-failed).
func (g *guix) failedEvent(drvPath string) {
	base := filepath.Base(drvPath)
	g.eventf("build of %s failed", drvPath)
	g.eventf("View build log at '/var/log/guix/drvs/%s/%s.gz'.", base[:min(2, len(base))], base[min(2, len(base)):])
}

// build makes the outputs of drvPath valid and returns them.
func (g *guix) build(ctx context.Context, drvPath string, opts buildOptions) ([]string, error) {
	st := g.store
	if !st.Valid(drvPath) {
		return nil, fmt.Errorf("path `%s' is not valid", drvPath)
	}
	data, err := os.ReadFile(drvPath)
	if err != nil {
		return nil, err
	}
	drv, err := derivation.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parse derivation %s: %w", drvPath, err)
	}
	var outs []string
	done := true
	for _, o := range drv.Outputs {
		if err := st.CheckPath(o.Path); err != nil {
			return nil, fmt.Errorf("derivation %s: %w", drvPath, err)
		}
		outs = append(outs, o.Path)
		done = done && st.Valid(o.Path)
	}
	if done {
		return outs, nil
	}

	if !g.supports(drv.System) {
		return nil, fmt.Errorf("a `%s' is required to build `%s', but I am a `%s'", drv.System, drvPath, g.systems()[0])
	}
	// Inputs first, as the daemon would (with no substitutes).
	var inputs []string
	for _, in := range drv.Inputs {
		sub, err := g.build(ctx, in.Drv, opts)
		if err != nil {
			status := 1
			var eb *errBuild
			if errors.As(err, &eb) {
				status = eb.status
			}
			return nil, &errBuild{fmt.Sprintf("build of `%s' failed", drvPath), status}
		}
		inputs = append(inputs, in.Drv)
		inputs = append(inputs, sub...)
	}
	for _, src := range drv.Sources {
		if !st.Valid(src) {
			return nil, fmt.Errorf("path `%s' is not valid", src)
		}
		inputs = append(inputs, src)
	}
	closure, err := st.Closure(inputs)
	if err != nil {
		return nil, err
	}

	g.eventf("building %s...", drvPath)
	if err := g.runBuilder(ctx, drvPath, drv, opts); err != nil {
		for _, o := range outs {
			_ = os.RemoveAll(o)
		}
		// The daemon's verdict comes right after the builder's last
		// output, on its line if that lacks a newline (printMsg in
		// nix/libstore/build.cc).
		fmt.Fprintln(g.stderr, err)
		g.failedEvent(drvPath)
		status := 100
		if errors.Is(err, errTimedOut) {
			status = 101
		}
		return nil, &errBuild{fmt.Sprintf("build of `%s' failed", drvPath), status}
	}
	for _, o := range outs {
		if _, err := os.Lstat(o); err != nil {
			for _, o := range outs {
				_ = os.RemoveAll(o)
			}
			fmt.Fprintf(g.stderr, "builder for `%s' failed to produce output path `%s'\n", drvPath, o)
			g.failedEvent(drvPath)
			return nil, &errBuild{fmt.Sprintf("build of `%s' failed", drvPath), 100}
		}
	}
	for _, o := range outs {
		refs, err := store.ScanReferences(o, append(append([]string(nil), closure...), outs...))
		if err != nil {
			return nil, fmt.Errorf("scan references of %s: %w", o, err)
		}
		if err := st.Register(store.Info{Path: o, References: refs, Deriver: drvPath}); err != nil {
			return nil, fmt.Errorf("register %s: %w", o, err)
		}
	}
	g.eventf("successfully built %s", drvPath)
	return outs, nil
}

func (g *guix) systems() []string {
	if s := os.Getenv("GUIX_STANDIN_SYSTEMS"); s != "" {
		return strings.Split(s, ",")
	}
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return []string{arch + "-linux"}
}

func (g *guix) supports(system string) bool {
	if system == "builtin" {
		return true
	}
	for _, s := range g.systems() {
		if s == system {
			return true
		}
	}
	return false
}

// runBuilder runs the builder in a fresh build directory with the
// derivation's environment, enforcing max-silent-time and the timeout as
// the daemon does (the builder's process group is killed).
func (g *guix) runBuilder(ctx context.Context, drvPath string, drv *derivation.Derivation, opts buildOptions) error {
	tmp, err := os.MkdirTemp("", "guix-build-"+strings.TrimSuffix(filepath.Base(drvPath)[min(33, len(filepath.Base(drvPath))):], ".drv")+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(drv.Builder, drv.Args...)
	cmd.Dir = tmp
	env := []string{
		"PATH=/path-not-set", "HOME=/homeless-shelter",
		"NIX_STORE=" + g.store.Dir, "NIX_BUILD_CORES=1",
		"NIX_BUILD_TOP=" + tmp, "TMPDIR=" + tmp, "TEMPDIR=" + tmp, "TMP=" + tmp, "TEMP=" + tmp, "PWD=" + tmp,
	}
	for _, kv := range drv.Env {
		env = append(env, kv[0]+"="+kv[1])
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fmt.Errorf("builder for `%s' failed: %v", drvPath, err)
	}
	pw.Close()

	var mu sync.Mutex
	last := time.Now()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 4096)
		for {
			n, err := pr.Read(buf)
			if n > 0 {
				mu.Lock()
				last = time.Now()
				mu.Unlock()
				_, _ = g.stderr.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	kill := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-waited
		pr.Close()
		<-copied
	}
	for {
		select {
		case err := <-waited:
			<-copied
			pr.Close()
			if err == nil {
				return nil
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return fmt.Errorf("builder for `%s' failed due to signal %d (%s)", drvPath, ws.Signal(), ws.Signal())
				}
				return fmt.Errorf("builder for `%s' failed with exit code %d", drvPath, ee.ExitCode())
			}
			return fmt.Errorf("builder for `%s' failed: %v", drvPath, err)
		case <-ctx.Done():
			kill()
			return fmt.Errorf("building of `%s' interrupted", drvPath)
		case now := <-tick.C:
			mu.Lock()
			silent := now.Sub(last)
			mu.Unlock()
			if opts.maxSilent > 0 && silent >= opts.maxSilent {
				kill()
				return &timedOut{fmt.Sprintf("building of `%s' timed out after %d seconds of silence", drvPath, int(opts.maxSilent/time.Second))}
			}
			if opts.timeout > 0 && now.Sub(start) >= opts.timeout {
				kill()
				return &timedOut{fmt.Sprintf("building of `%s' timed out after %d seconds", drvPath, int(opts.timeout/time.Second))}
			}
		}
	}
}

// errTimedOut is matched (errors.Is) by a builder the daemon killed for
// max-silent-time or the build timeout.
var errTimedOut = errors.New("timed out")

type timedOut struct{ msg string }

func (e *timedOut) Error() string        { return e.msg }
func (e *timedOut) Is(target error) bool { return target == errTimedOut }
