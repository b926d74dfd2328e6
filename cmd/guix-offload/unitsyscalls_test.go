package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

// TestUnitsAllowWhatTheProgramsDo runs the agent and the watcher for
// real, the agent advertising and the watcher hearing it and writing its
// snapshot, in two network namespaces, under strace, and checks that
// every system call and socket address family they used is one their
// systemd unit allows (SystemCallFilter=, RestrictAddressFamilies=): a
// program killed or refused by its own hardening would be a service that
// does not work. systemd itself is not needed; systemd-analyze expands
// the system-call groups.
func TestUnitsAllowWhatTheProgramsDo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both programs and runs them in namespaces")
	}
	analyze := testenv.LookPath(t, "systemd-analyze", "systemd")
	strace := testenv.LookPath(t, "strace", "strace")
	testenv.LookPath(t, "make", "make")
	n := netns.New(t, 2)
	builder, master := n.Hosts()[0], n.Hosts()[1]

	bin := t.TempDir()
	build := exec.Command("make", "-s", "-C", filepath.Join("..", ".."), "build", "OUT="+bin)
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, b)
	}
	groups := syscallGroups(t, analyze)
	dir := t.TempDir()
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key.pub")
	os.WriteFile(hostKey, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@b\n"), 0o644)
	config := filepath.Join(dir, "agent.toml")
	os.WriteFile(config, nil, 0o644)
	key := filepath.Join("..", "..", "agent", "testdata", "signing-key.sec")
	snapshot := filepath.Join(dir, "machines.json")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var logs []*strings.Builder
	defer func() {
		if t.Failed() {
			for _, l := range logs {
				t.Logf("a program said:\n%s", l.String())
			}
		}
	}()
	traced := func(h *netns.Host, out string, argv ...string) *exec.Cmd {
		cmd := h.Command(ctx, strace, append([]string{"-f", "-qq", "-o", out}, argv...)...)
		log := &strings.Builder{}
		logs = append(logs, log)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	stop := func(cmd *exec.Cmd) {
		// The program gets SIGTERM, as from systemd, through strace.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	agentTrace, discoverTrace := filepath.Join(dir, "agent.strace"), filepath.Join(dir, "discover.strace")
	agent := traced(builder, agentTrace, filepath.Join(bin, "guix-offload-agent"), "--config", config,
		"--host-key-file", hostKey, "--signing-key", key, "--interfaces", builder.Iface, "--refresh-interval", "1")
	watcher := traced(master, discoverTrace, filepath.Join(bin, "guix-offload"), "discover", "--watch",
		"--cache", snapshot, "--trust", "any", "--interface", master.Iface)
	if !netns.Poll(60*time.Second, func() bool {
		b, err := os.ReadFile(snapshot)
		return err == nil && strings.Contains(string(b), builder.Addr.String())
	}) {
		t.Error("the watcher wrote no snapshot with the agent in it")
	}
	time.Sleep(2 * time.Second) // a refresh or two
	stop(agent)
	stop(watcher)

	for _, tc := range []struct{ unit, trace string }{
		{"guix-offload-agent.service", agentTrace},
		{"guix-offload-discover.service", discoverTrace},
	} {
		allowed, families := unitFilters(t, filepath.Join("..", "..", "examples", tc.unit), groups)
		calls, used := tracedCalls(t, tc.trace)
		if len(calls) < 20 {
			t.Fatalf("%s: only %d system calls traced", tc.trace, len(calls))
		}
		t.Logf("%s: %d distinct system calls, address families %v", tc.unit, len(calls), used)
		var denied []string
		for c := range calls {
			if !allowed[c] {
				denied = append(denied, c)
			}
		}
		sort.Strings(denied)
		if len(denied) > 0 {
			t.Errorf("%s: SystemCallFilter= denies system calls the program made: %v", tc.unit, denied)
		}
		for f := range used {
			if !families[f] {
				t.Errorf("%s: RestrictAddressFamilies= lacks %s, which the program used", tc.unit, f)
			}
		}
	}
}

// syscallGroups reads systemd's system-call groups, expanded.
func syscallGroups(t *testing.T, analyze string) map[string]map[string]bool {
	t.Helper()
	out, err := exec.Command(analyze, "syscall-filter", "--no-pager").Output()
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter: %v", err)
	}
	raw := map[string][]string{}
	var group string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "@"):
			group = strings.TrimSpace(line)
		case strings.HasPrefix(line, "    ") && group != "":
			if m := strings.TrimSpace(line); m != "" && !strings.HasPrefix(m, "#") {
				raw[group] = append(raw[group], m)
			}
		default:
			group = ""
		}
	}
	expanded := map[string]map[string]bool{}
	var expand func(string) map[string]bool
	expand = func(g string) map[string]bool {
		if s, ok := expanded[g]; ok {
			return s
		}
		s := map[string]bool{}
		expanded[g] = s
		for _, m := range raw[g] {
			if strings.HasPrefix(m, "@") {
				for c := range expand(m) {
					s[c] = true
				}
			} else {
				s[m] = true
			}
		}
		return s
	}
	for g := range raw {
		expand(g)
	}
	if len(expanded["@system-service"]) < 100 {
		t.Fatalf("systemd-analyze syscall-filter: @system-service has only %d calls", len(expanded["@system-service"]))
	}
	return expanded
}

// unitFilters returns the system calls a unit's SystemCallFilter= lines
// allow (an allow list, then ~ deny lists), plus those systemd always
// allows, and its RestrictAddressFamilies=.
func unitFilters(t *testing.T, unit string, groups map[string]map[string]bool) (allowed, families map[string]bool) {
	t.Helper()
	text, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	allowed = map[string]bool{}
	families = map[string]bool{}
	names := func(list string) map[string]bool {
		s := map[string]bool{}
		for _, w := range strings.Fields(list) {
			if strings.HasPrefix(w, "@") {
				if groups[w] == nil {
					t.Fatalf("%s: unknown group %s", unit, w)
				}
				for c := range groups[w] {
					s[c] = true
				}
			} else {
				s[w] = true
			}
		}
		return s
	}
	for _, m := range regexp.MustCompile(`(?m)^SystemCallFilter=(.*)$`).FindAllSubmatch(text, -1) {
		v := string(m[1])
		if strings.HasPrefix(v, "~") {
			for c := range names(v[1:]) {
				delete(allowed, c)
			}
		} else {
			for c := range names(v) {
				allowed[c] = true
			}
		}
	}
	// What systemd lets through whatever the filter (the exec that starts
	// the program, and returning from signals).
	for _, c := range []string{"execve", "exit", "exit_group", "rt_sigreturn", "getrlimit", "arch_prctl"} {
		allowed[c] = true
	}
	for _, m := range regexp.MustCompile(`(?m)^RestrictAddressFamilies=(.*)$`).FindAllSubmatch(text, -1) {
		for _, f := range strings.Fields(string(m[1])) {
			families[f] = true
		}
	}
	return allowed, families
}

// tracedCalls returns the system calls in an strace -f output and the
// socket address families used.
func tracedCalls(t *testing.T, file string) (calls, families map[string]bool) {
	t.Helper()
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	calls, families = map[string]bool{}, map[string]bool{}
	call := regexp.MustCompile(`(?m)^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]`)
	for _, m := range call.FindAllSubmatch(text, -1) {
		c := string(m[1])
		switch {
		case c == "exited" || c == "killed":
		case strings.HasPrefix(c, "syscall_0x"):
			// strace's name for a number it does not know. Seen
			// only on a loaded machine, for a thread caught as it
			// exits (its registers are no system call); no Go
			// program here makes one, and a real one would be
			// killed by the unit's filter, not pass this test.
			t.Logf("%s: ignoring strace's %s", filepath.Base(file), c)
		default:
			calls[c] = true
		}
	}
	for _, m := range regexp.MustCompile(`socket\((AF_[A-Z0-9]+)`).FindAllSubmatch(text, -1) {
		families[string(m[1])] = true
	}
	return calls, families
}
