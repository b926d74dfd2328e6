//go:build bench

package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

// The suite's knobs. run.sh passes -bench.rows and -bench.out; the sizes
// default to what issue 7 asks for and are smaller only for a quick look.
var (
	flagRows           = flag.String("bench.rows", strings.Join(groupNames(), ","), "comma-separated row groups to measure")
	flagOut            = flag.String("bench.out", "", "also write the Markdown table to `FILE`")
	flagSummary        = flag.String("bench.summary", "", "also write the table without its notes to `FILE` (for docs/benchmarks.md)")
	flagManifest       = flag.String("bench.manifest", "", "append every namespace made to `FILE`, for run.sh's trap")
	flagProbes         = flag.Int("bench.probes", 15, "Guile-SSH probes (and process-level decisions) per measure")
	flagTransfer       = flag.Int("bench.transfer-mib", 512, "size of the random transfer in MiB")
	flagCorpus         = flag.Int("bench.corpus-mib", 256, "cap on the store-like corpus in MiB")
	flagRuns           = flag.Int("bench.runs", 3, "transfer runs per method")
	flagTransferBudget = flag.Duration("bench.transfer-budget", 5*time.Minute, "time budget of the transfer rows; runs beyond the first stop when exceeded")
	flagDiscovery      = flag.Int("bench.discover-runs", 20, "discovery runs per browser")
	flagAgents         = flag.Int("bench.agents", 32, "agents in the discovery measure")
	flagIdle           = flag.Duration("bench.idle", time.Minute, "idle period of the footprint measure")
	flagGuixStart      = flag.Duration("bench.guix-start", 500*time.Millisecond, "what one start of a real `guix` costs, for the offload rows' second pair")
)

// group is one of issue 7's rows; it adds one or more table rows.
type group struct {
	name  string
	issue string // the row number in issue 7
	run   func(t *testing.T, s *suite)
}

var groups = []group{
	{"decide", "1", runDecide},
	{"accept", "2", runAccept},
	{"transfer", "3", runTransfer},
	{"discover", "4", runDiscover},
	{"footprint", "5", runFootprint},
	{"offload", "14", runOffload},
	{"widearea", "15", runWideArea},
	{"hostile", "12", runHostile},
}

func groupNames() []string {
	var names []string
	for _, g := range groups {
		names = append(names, g.name)
	}
	return names
}

// suite is what the groups share: the table, and a context that ends on
// SIGINT or SIGTERM so that every group stops early and its t.Cleanup
// (namespaces, sshd, agents) still runs.
type suite struct {
	ctx   context.Context
	mu    sync.Mutex
	table Table
	issue string

	binDir string
	bins   map[string]string // built commands by name; "" when the build failed
}

func (s *suite) add(r Row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Group = s.issue
	s.table.Add(r)
}

// note adds a note under the table, prefixed with the group's row number.
func (s *suite) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.table.Note("Row " + s.issue + ": " + fmt.Sprintf(format, args...))
}

func TestMain(m *testing.M) {
	if len(os.Args) >= 2 && os.Args[1] == "bench-flood" {
		if err := floodHelper(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench-flood:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	flag.Parse()
	uncache := testenv.PrivateCache()
	code := m.Run()
	uncache()
	netns.CleanupBinaries() // the stand-in, built for the offload rows
	os.Exit(code)
}

// TestSuite measures the selected groups and prints the table.
func TestSuite(t *testing.T) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	selected := map[string]bool{}
	for _, name := range strings.Split(*flagRows, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(groupNames(), name) {
			t.Fatalf("unknown row group %q; known: %s", name, strings.Join(groupNames(), " "))
		}
		selected[name] = true
	}
	s := &suite{ctx: ctx, binDir: t.TempDir(), bins: map[string]string{}}
	start := time.Now()
	for _, g := range groups {
		if !selected[g.name] {
			continue
		}
		s.issue = g.issue
		before := len(s.table.Rows)
		groupStart := time.Now()
		t.Logf("measuring %s (issue 7 row %s) at %s", g.name, g.issue, time.Now().UTC().Format("15:04:05"))
		ok := t.Run(g.name, func(t *testing.T) { g.run(t, s) })
		if !ok && len(s.table.Rows) == before {
			s.add(Row{Measure: g.name, Ours: "not measured: the group failed (see the log above)"})
		}
		t.Logf("%s took %v (%d rows; %v since the start)", g.name, time.Since(groupStart).Round(time.Second),
			len(s.table.Rows)-before, time.Since(start).Round(time.Second))
		if ctx.Err() != nil {
			t.Fatal("interrupted")
		}
	}
	var b strings.Builder
	if err := s.table.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	if *flagOut == "" {
		fmt.Print("\n" + b.String())
	} else {
		if err := os.WriteFile(*flagOut, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if *flagSummary != "" {
		var sum strings.Builder
		if err := s.table.WriteSummary(&sum); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*flagSummary, []byte(sum.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// remember appends namespace names to the manifest run.sh's trap reads, so
// that a run killed without its cleanups (SIGKILL) leaves nothing behind.
func remember(t testing.TB, net *netns.Net) {
	t.Helper()
	if *flagManifest == "" {
		return
	}
	f, err := os.OpenFile(*flagManifest, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	defer f.Close()
	fmt.Fprintln(f, net.Switch)
	for _, h := range net.Hosts() {
		fmt.Fprintln(f, h.Name)
	}
}

// benchDir is the directory of this package's sources (guile/ scripts).
func benchDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot find the bench directory")
	}
	return filepath.Dir(file)
}

// buildBinary builds one of the project's commands (cmd/NAME) once per
// run and returns its path, or "" when it does not build in this tree
// right now: the rows that need it then say so instead of failing (the
// netns harness's BuildBinary would stop the test).
func (s *suite) buildBinary(t *testing.T, name string) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.bins[name]; ok {
		return p
	}
	out := filepath.Join(s.binDir, name)
	cmd := exec.CommandContext(s.ctx, "go", "build", "-o", out, "github.com/guix-offload/guix-offload/cmd/"+name)
	// As the Makefile builds what is installed: static.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Logf("go build cmd/%s: %v\n%s", name, err, b)
		out = ""
	}
	s.bins[name] = out
	return out
}
