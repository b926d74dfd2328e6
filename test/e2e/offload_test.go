package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/bind"
	"github.com/guix-offload/guix-offload/internal/testenv/daemon"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
	"github.com/guix-offload/guix-offload/internal/transport"
	"github.com/guix-offload/guix-offload/test/standin/standintest"
)

func TestMain(m *testing.M) {
	uncache := testenv.PrivateCache()
	code := m.Run()
	uncache()
	netns.CleanupBinaries()
	os.Exit(code)
}

const (
	x86   = "x86_64-linux"
	arm   = "aarch64-linux"
	store = "/gnu/store"
)

// machine is a build machine of the cluster.
type machine struct {
	net   *netns.Host
	guix  *standintest.Host
	sshd  *sshd.Server
	name  string // its machines.scm name: its address
	speed float64
}

// cluster is the master and two build machines:
//
//	builder1: x86_64-linux, speed 2, guix-offload-agent installed (zstd)
//	builder2: x86_64-linux and aarch64-linux, feature kvm, speed 1, plain
//
// each with one build slot.
type cluster struct {
	master   *netns.Host
	guix     *standintest.Host // the master's
	builders []*machine
	shim     string // the guix-offload shim, named guix
	config   string // the hook's configuration file
	dir      string
	agents   []*netns.Proc
}

// clusterOptions: with discovered, machines.scm is empty and the build
// machines are found on the LAN: each runs guix-offload-agent, announcing
// itself signed with its Guix key, and the master runs `guix-offload
// discover --watch --cache` for the hook.
//
// With wideArea too, the build machines also register in a DNS zone
// (BIND's named on the master's host) and the master browses only that
// zone (hook.toml's domains, mdns = false), which the watcher takes from
// hook.toml: the machines are found through DNS alone.
type clusterOptions struct {
	discovered bool
	wideArea   bool
}

func newCluster(t *testing.T, opts ...clusterOptions) *cluster {
	t.Helper()
	var o clusterOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	nw := netns.New(t, 3)
	hosts := nw.Hosts()
	offload := netns.BuildBinary(t, "github.com/guix-offload/guix-offload/cmd/guix-offload")
	agent := netns.BuildBinary(t, "github.com/guix-offload/guix-offload/cmd/guix-offload-agent")
	c := &cluster{master: hosts[0], dir: t.TempDir()}
	c.guix = standintest.NewHost(t, "master", store, "GUIX_STANDIN_SYSTEMS="+x86)
	// The master's daemon exports the inputs for the direct path.
	c.guix.StartDaemon(t)

	// The shim: guix-offload under the name guix.
	c.shim = filepath.Join(c.dir, "shim", "guix")
	if err := os.MkdirAll(filepath.Dir(c.shim), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(offload, c.shim); err != nil {
		t.Fatal(err)
	}

	specs := []struct {
		systems  []string
		features []string
		speed    float64
		agent    bool
	}{
		{[]string{x86}, nil, 2, true},
		{[]string{x86, arm}, []string{"kvm"}, 1, false},
	}
	// For discovered machines the hook uses one key of its own
	// (hook.toml's private-key), which every machine authorizes.
	masterKey := filepath.Join(c.dir, "id_ed25519")
	masterPub := sshd.GenerateKey(t, "", masterKey, "ed25519", "")
	var dnsServer *bind.Server
	var agentConfig, resolvConf string
	if o.wideArea {
		dnsServer = bind.Start(t, c.master, bind.Options{Zone: "builders.test."})
		agentConfig = filepath.Join(c.dir, "agent.toml")
		resolvConf = filepath.Join(c.dir, "resolv.conf")
		for name, text := range map[string]string{
			agentConfig: fmt.Sprintf("[wide-area]\ndomain = \"builders.test\"\ntsig-key = %q\nresolv-conf = %q\n", dnsServer.KeyFile, resolvConf),
			resolvConf:  "nameserver " + dnsServer.Addr.String() + "\n",
		} {
			if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var scm strings.Builder
	scm.WriteString(";; machines.scm written by the end-to-end test\n(list\n")
	for i, s := range specs {
		h := hosts[i+1]
		g := standintest.NewHost(t, fmt.Sprintf("builder%d", i+1), store, "GUIX_STANDIN_SYSTEMS="+strings.Join(s.systems, ","))
		if s.agent {
			if err := os.Symlink(agent, filepath.Join(g.Bin, transport.Agent)); err != nil {
				t.Fatal(err)
			}
		}
		g.Authorize(t, c.guix.SigningKey)
		if !s.agent {
			// builder2 runs guix-daemon (the stand-in's): the hook
			// talks to it directly. builder1 has none: guix commands
			// there, compressed through guix-offload-agent.
			g.StartDaemon(t)
		}
		srv := sshd.Start(t, sshd.Options{
			Prefix:         append([]string{"ip", "netns", "exec", h.Name}, g.Prefix()...),
			ListenAddress:  h.Addr.String() + ":22",
			ExtraConfig:    "SetEnv PATH=" + g.Bin + ":/usr/sbin:/usr/bin:/sbin:/bin",
			AuthorizedKeys: []string{masterPub},
		})
		m := &machine{net: h, guix: g, sshd: srv, name: h.Addr.String(), speed: s.speed}
		c.builders = append(c.builders, m)
		if o.discovered {
			prefix := g.Prefix()
			args := append(prefix[1:], agent,
				"--name", g.Name, "--systems", strings.Join(s.systems, ","),
				"--speed", fmt.Sprint(s.speed), "--parallel-builds", "1",
				"--features", strings.Join(s.features, ","), "--user", "root", "--port", "22",
				"--overload-threshold", "#f", "--host-key-file", srv.HostKeyFile+".pub",
				"--signing-key", g.SigningKeyFile, "--interfaces", h.Iface, "--store", store)
			if o.wideArea {
				args = append(args, "--config", agentConfig)
			}
			cmd := h.Command(context.Background(), prefix[0], args...)
			c.agents = append(c.agents, h.StartCmd(t, cmd))
			continue
		}
		fmt.Fprintf(&scm, "  (build-machine\n    (name %q)\n    (port 22)\n    (systems (list %s))\n    (user \"root\")\n    (host-key %q)\n    (private-key %q)\n    (speed %.1f)\n    (parallel-builds 1)\n    ;; The namespaces share this machine's load: ignore it.\n    (overload-threshold #f)",
			m.name, quoteList(s.systems), srv.HostKey, srv.ClientKeyFile, s.speed)
		if len(s.features) > 0 {
			fmt.Fprintf(&scm, "\n    (features (list %s))", quoteList(s.features))
		}
		scm.WriteString(")\n")
	}
	scm.WriteString(")\n")
	c.guix.Authorize(t, c.builders[0].guix.SigningKey, c.builders[1].guix.SigningKey)

	machines := filepath.Join(c.dir, "machines.scm")
	if err := os.WriteFile(machines, []byte(scm.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c.config = filepath.Join(c.dir, "hook.toml")
	snapshot := filepath.Join(c.dir, "machines.json")
	cfg := fmt.Sprintf(`machines-file = %q
state-directory = %q
acl = %q
discovery = %v
cache = %q
browse-timeout = "0s"
private-key = %q
user = "root"
real-guix = %q
store = %q
compress = true
connect-timeout = "10s"
`, machines, filepath.Join(c.dir, "state"), c.guix.ACLFile, o.discovered, snapshot, masterKey, c.guix.Guix, store)
	if o.wideArea {
		cfg += fmt.Sprintf("domains = [\"builders.test\"]\nmdns = false\nresolv-conf = %q\n", resolvConf)
	}
	if err := os.WriteFile(c.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if o.discovered {
		// The master keeps the discovery snapshot the hook reads.
		prefix := c.guix.Prefix()
		cmd := c.master.Command(context.Background(), prefix[0], append(prefix[1:], offload, "discover", "--watch",
			"--cache", snapshot, "--acl", c.guix.ACLFile, "--interface", c.master.Iface)...)
		// The watcher browses where hook.toml says.
		cmd.Env = append(os.Environ(), "GUIX_OFFLOAD_CONFIG="+c.config)
		watcher := c.master.StartCmd(t, cmd)
		ok := netns.Poll(30*time.Second, func() bool {
			snap, err := discovery.ReadSnapshot(snapshot)
			if err != nil || len(snap.Trusted()) != 2 {
				return false
			}
			for _, m := range snap.Trusted() {
				if o.wideArea && m.Source != "dns:builders.test" {
					t.Fatalf("with mdns = false, %s was found through %s", m.Instance, m.Source)
				}
			}
			return true
		})
		if !ok {
			t.Fatalf("the master did not discover both machines within 30 s; discover said:\n%s\nagents said:\n%s\n%s",
				watcher.Output(), c.agents[0].Output(), c.agents[1].Output())
		}
	}
	return c
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, " ")
}

// job is a derivation on the master with inputs: a dependency built on the
// master first, and a source file.
type job struct {
	system   string
	features []string
	drv, out string
	inputs   []string
}

func (c *cluster) job(t *testing.T, name, system string, features []string, script string) job {
	t.Helper()
	m := c.guix
	src := m.AddFile(t, name+"-greeting.txt", "hello from the master\n")
	dep := m.ShellDerivation(name+"-dep", x86, `printf 'dep-output' > "$out"`, nil, nil)
	depDrv := m.AddDerivation(t, name+"-dep", dep)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := c.master.Command(ctx, c.guix.Prefix()[0], append(c.guix.Prefix()[1:], c.guix.Guix, "build", depDrv)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the dependency on the master: %v\n%s", err, out)
	}
	var env [][2]string
	env = append(env, [2]string{"dep", dep.Outputs[0].Path}, [2]string{"src", src})
	if len(features) > 0 {
		env = append(env, [2]string{"requiredSystemFeatures", strings.Join(features, " ")})
	}
	d := m.ShellDerivation(name, system, script, []string{depDrv}, []string{src}, env...)
	drv := m.AddDerivation(t, name, d)
	out := d.Outputs[0].Path
	return job{system: system, features: features, drv: drv, out: out,
		inputs: []string{dep.Outputs[0].Path, depDrv, drv, src}}
}

// hook starts `guix offload SYSTEM …` as guix-daemon would, in the
// master's namespaces.
func (c *cluster) hook(t *testing.T, system string, maxSilent, timeout int) *daemon.Hook {
	t.Helper()
	return daemon.Start(t, daemon.Options{
		Program:         c.shim,
		Prefix:          append([]string{"ip", "netns", "exec", c.master.Name}, c.guix.Prefix()...),
		System:          system,
		MaxSilentTime:   maxSilent,
		PrintBuildTrace: true,
		BuildTimeout:    timeout,
		Env:             append(os.Environ(), "GUIX_OFFLOAD_CONFIG="+c.config),
		OutputExists:    c.guix.Exists,
		ReplyTimeout:    30 * time.Second,
	})
}

// offload sends j to a fresh hook and, when it accepts, serves the build
// to the end.
func (c *cluster) offload(t *testing.T, j job, maxSilent, timeout int) (daemon.Reply, *daemon.Result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := c.hook(t, j.system, maxSilent, timeout)
	rep, err := h.Request(ctx, daemon.Req{Willing: true, System: j.system, Drv: j.drv, Features: j.features})
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if rep.Answer != daemon.Accept {
		return rep, nil
	}
	res, err := h.Accept(ctx, j.inputs, []string{j.out})
	if err != nil {
		t.Fatalf("accepted build: %v", err)
	}
	return rep, res
}

func (c *cluster) builderWith(out string) string {
	var on []string
	for _, b := range c.builders {
		if b.guix.Exists(out) {
			on = append(on, b.guix.Name)
		}
	}
	return strings.Join(on, ",")
}

const goodScript = `echo "building on the machine"; cat "$src" "$dep" > "$out"`

// TestOffload: derivations with inputs go to the machine that matches
// their system and features (the fastest among several), their log
// arrives on fd 4, and the output lands in the master's store intact.
func TestOffload(t *testing.T) {
	c := newCluster(t)
	for _, tc := range []struct {
		name     string
		system   string
		features []string
		builder  string
	}{
		{"x86_64 goes to the fastest", x86, nil, "builder1"},
		{"feature kvm", x86, []string{"kvm"}, "builder2"},
		{"system aarch64", arm, nil, "builder2"},
	} {
		c.offloadCase(t, tc.name, tc.system, tc.features, tc.builder)
	}
}

// TestOffloadDiscovered is TestOffload with no machines.scm at all: the
// machines announce themselves (guix-offload-agent, signed with their Guix
// keys, which the master's ACL authorizes) and the hook reads what
// `guix-offload discover --watch` keeps in its snapshot.
func TestOffloadDiscovered(t *testing.T) {
	c := newCluster(t, clusterOptions{discovered: true})
	c.offloadCase(t, "discovered x86_64", x86, nil, "builder1")
	c.offloadCase(t, "discovered kvm", x86, []string{"kvm"}, "builder2")

	// guix-offload test sees them too, from the same snapshot.
	out, err := c.command(t, "test")
	t.Logf("guix-offload test:\n%s", out)
	if err != nil {
		t.Fatalf("guix-offload test: %v", err)
	}
	if strings.Count(out, ", discovered)") != 2 || strings.Count(out, "verdict: usable") != 2 {
		t.Errorf("want two usable discovered machines")
	}
}

// offloadCase offloads a fresh job for system and features and checks
// that it succeeded on builder, with its log on fd 4 and its output in
// the master's store.
// TestOffloadWideArea: build machines that register in a DNS zone with
// signed dynamic updates (BIND's named), found by a master that browses
// only that zone (multicast DNS off), take builds as LAN-discovered ones
// do.
func TestOffloadWideArea(t *testing.T) {
	c := newCluster(t, clusterOptions{discovered: true, wideArea: true})
	c.offloadCase(t, "found through DNS, x86_64", x86, nil, "builder1")
	c.offloadCase(t, "found through DNS, kvm", x86, []string{"kvm"}, "builder2")
}

func (c *cluster) offloadCase(t *testing.T, name, system string, features []string, builder string) {
	t.Run(name, func(t *testing.T) {
		j := c.job(t, strings.ReplaceAll(name, " ", "-"), system, features, goodScript)
		rep, res := c.offload(t, j, 60, 120)
		if rep.Answer != daemon.Accept {
			t.Fatalf("answer %q, want accept; chatter:\n%s", rep.Answer, strings.Join(rep.Chatter, "\n"))
		}
		msgs := strings.Join(res.Messages, "\n")
		if res.Outcome != daemon.Succeeded {
			t.Fatalf("outcome %v (%s), want succeeded\nmessages:\n%s\nlog:\n%s", res.Outcome, res.Reason, msgs, res.Log)
		}
		got, err := os.ReadFile(c.guix.Local(j.out))
		if err != nil {
			t.Fatalf("output missing from the master's store: %v", err)
		}
		if want := "hello from the master\ndep-output"; string(got) != want {
			t.Errorf("output holds %q, want %q", got, want)
		}
		if on := c.builderWith(j.out); on != builder {
			t.Errorf("built on %q, want %s", on, builder)
		}
		if !strings.Contains(string(res.Log), "building on the machine") {
			t.Errorf("fd 4 lacks the build log:\n%s", res.Log)
		}
		// The builder's output only, as with Guix's hook: not the
		// remote guix build's own lines nor the output path.
		for _, chatter := range []string{"will be built", "successfully built", j.out + "\n"} {
			if strings.Contains(string(res.Log), chatter) {
				t.Errorf("fd 4 has %q, which is guix build's, not the build's:\n%s", chatter, res.Log)
			}
		}
		if !strings.Contains(msgs, "@ build-remote "+j.drv) {
			t.Errorf("no @ build-remote trace:\n%s", msgs)
		}
		// builder2 has a daemon, builder1 not: one line says which path.
		path := "using guix commands there"
		if builder == "builder2" {
			path = "directly (store protocol 0x"
		}
		if !strings.Contains(msgs, path) {
			t.Errorf("messages do not say %q:\n%s", path, msgs)
		}
		t.Logf("hook messages:\n%s", msgs)
	})
}

// TestOffloadFailures: each way a build can go wrong gives the daemon the
// right exit status and leaves nothing in the master's store.
func TestOffloadFailures(t *testing.T) {
	c := newCluster(t)
	for _, tc := range []struct {
		name      string
		features  []string
		script    string
		maxSilent int
		setup     func(t *testing.T)
		outcome   daemon.Outcome
		status    int
		says      string
	}{
		{name: "build fails", script: `echo "about to fail"; exit 1`,
			outcome: daemon.Failed, status: 100, says: "failed"},
		{name: "silent build", script: `sleep 20; echo late > "$out"`, maxSilent: 1,
			outcome: daemon.TimedOut, status: 101, says: "timed out"},
		{name: "sshd killed mid-transfer", script: `echo started; head -c 64000000 /dev/urandom > "$out"`,
			setup: func(t *testing.T) {
				// Kill builder1's sshd once the output starts arriving.
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				t.Cleanup(cancel)
				go func() {
					for ctx.Err() == nil {
						for _, e := range c.guix.Entries(t) {
							if strings.HasPrefix(e, ".guix-offload-") {
								c.builders[0].sshd.Stop()
								return
							}
						}
						time.Sleep(2 * time.Millisecond)
					}
				}()
			},
			outcome: daemon.HookFailed, status: 1, says: "connection lost"},
		{name: "unauthorized signer", features: []string{"kvm"}, script: goodScript,
			setup: func(t *testing.T) {
				// The master no longer authorizes builder2's key.
				c.guix.Authorize(t, c.builders[0].guix.SigningKey)
			},
			outcome: daemon.HookFailed, status: 1, says: "not authorized"},
		{name: "tampered archive", features: []string{"kvm"}, script: goodScript,
			setup: func(t *testing.T) {
				c.guix.Authorize(t, c.builders[0].guix.SigningKey, c.builders[1].guix.SigningKey)
				c.builders[1].guix.AddEnv(t, "GUIX_STANDIN_TAMPER=hello=HELLO")
			},
			outcome: daemon.HookFailed, status: 1, says: "hash mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := c.job(t, strings.ReplaceAll(tc.name, " ", "-"), x86, tc.features, tc.script)
			if tc.setup != nil {
				tc.setup(t)
			}
			before := c.guix.Entries(t)
			maxSilent := tc.maxSilent
			if maxSilent == 0 {
				maxSilent = 60
			}
			rep, res := c.offload(t, j, maxSilent, 120)
			if rep.Answer != daemon.Accept {
				t.Fatalf("answer %q, want accept; chatter:\n%s", rep.Answer, strings.Join(rep.Chatter, "\n"))
			}
			msgs := strings.Join(res.Messages, "\n")
			if res.Outcome != tc.outcome || res.Status.ExitStatus() != tc.status {
				t.Fatalf("outcome %v, exit %d (%s); want %v, exit %d\nmessages:\n%s\nlog:\n%s",
					res.Outcome, res.Status.ExitStatus(), res.Reason, tc.outcome, tc.status, msgs, res.Log)
			}
			if !strings.Contains(msgs, tc.says) {
				t.Errorf("messages do not say %q:\n%s", tc.says, msgs)
			}
			if after := c.guix.Entries(t); strings.Join(after, " ") != strings.Join(before, " ") {
				t.Errorf("the master's store changed:\nbefore %v\nafter  %v", before, after)
			}
			t.Logf("hook messages:\n%s", msgs)
		})
	}
}

// TestOffloadParallel: two builds at once go to the two machines (one slot
// each); a third is postponed until one of them is done, then accepted.
func TestOffloadParallel(t *testing.T) {
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var jobs []job
	for i := range 3 {
		jobs = append(jobs, c.job(t, fmt.Sprintf("parallel%d", i), x86, nil,
			`echo start; sleep 4; cat "$src" "$dep" > "$out"`))
	}
	type run struct {
		res *daemon.Result
		err error
	}
	results := make([]chan run, 2)
	for i := range 2 {
		h := c.hook(t, x86, 60, 120)
		rep, err := h.Request(ctx, daemon.Req{Willing: true, System: x86, Drv: jobs[i].drv})
		if err != nil || rep.Answer != daemon.Accept {
			t.Fatalf("build %d: answer %q, %v; want accept; chatter:\n%s", i, rep.Answer, err, strings.Join(rep.Chatter, "\n"))
		}
		results[i] = make(chan run, 1)
		go func() {
			res, err := h.Accept(ctx, jobs[i].inputs, []string{jobs[i].out})
			results[i] <- run{res, err}
		}()
	}
	// Both machines are busy: the third is postponed, asked again as
	// the daemon does, and accepted once a slot is free.
	third := c.hook(t, x86, 60, 120)
	postponed, accepted := 0, false
	for !accepted {
		rep, err := third.Request(ctx, daemon.Req{Willing: true, System: x86, Drv: jobs[2].drv})
		if err != nil {
			t.Fatalf("third build: %v", err)
		}
		switch rep.Answer {
		case daemon.Postpone:
			postponed++
			select {
			case <-ctx.Done():
				t.Fatal("third build never accepted")
			case <-time.After(500 * time.Millisecond):
			}
		case daemon.Accept:
			accepted = true
		default:
			t.Fatalf("third build: answer %q; chatter:\n%s", rep.Answer, strings.Join(rep.Chatter, "\n"))
		}
	}
	if postponed == 0 {
		t.Errorf("third build was accepted at once while both machines were busy")
	}
	res3, err := third.Accept(ctx, jobs[2].inputs, []string{jobs[2].out})
	if err != nil || res3.Outcome != daemon.Succeeded {
		t.Fatalf("third build: %v %+v", err, res3)
	}
	on := map[string]bool{}
	for i := range 2 {
		r := <-results[i]
		if r.err != nil || r.res.Outcome != daemon.Succeeded {
			t.Fatalf("build %d: %v, %+v", i, r.err, r.res)
		}
		on[c.builderWith(jobs[i].out)] = true
	}
	if !on["builder1"] || !on["builder2"] {
		t.Errorf("the two parallel builds ran on %v, want builder1 and builder2", on)
	}
	for _, j := range jobs {
		if got, err := os.ReadFile(c.guix.Local(j.out)); err != nil || string(got) != "hello from the master\ndep-output" {
			t.Errorf("%s: %q, %v", j.out, got, err)
		}
	}
	t.Logf("third build postponed %d times before it was accepted", postponed)
}

// TestTestAndStatus runs `guix-offload test` and `guix-offload status`
// on the master against both machines.
func TestTestAndStatus(t *testing.T) {
	c := newCluster(t)
	run := func(args ...string) (string, error) { return c.command(t, args...) }
	out, err := run("test")
	t.Logf("guix-offload test:\n%s", out)
	if err != nil {
		t.Fatalf("guix-offload test: %v", err)
	}
	if n := strings.Count(out, "verdict: usable"); n != 2 {
		t.Errorf("%d machines usable, want 2", n)
	}
	for _, step := range []string{"import", "export", "clock"} {
		if strings.Count(out, "  "+step+" ") != 2 {
			t.Errorf("step %s not reported for both machines", step)
		}
	}

	// Only builder2, by REGEXP; then make it distrusted: test fails.
	c.guix.Authorize(t, c.builders[0].guix.SigningKey)
	out, err = run("test", filepath.Join(c.dir, "machines.scm"), regexpQuote(c.builders[1].name))
	t.Logf("guix-offload test (builder2, not authorized):\n%s", out)
	if err == nil || !strings.Contains(out, "unusable: export") || strings.Contains(out, c.builders[0].name) {
		t.Errorf("want builder2 alone, unusable at the export step; err %v", err)
	}

	out, err = run("status")
	t.Logf("guix-offload status:\n%s", out)
	if err != nil {
		t.Fatalf("guix-offload status: %v", err)
	}
	for _, b := range c.builders {
		if !strings.Contains(out, b.name) {
			t.Errorf("status lacks %s", b.name)
		}
	}
	if strings.Count(out, " usable\n") != 2 {
		t.Errorf("status does not call both machines usable")
	}
}

// command runs `guix-offload ARGS…` on the master, in its namespaces and
// with the hook's configuration.
func (c *cluster) command(t *testing.T, args ...string) (string, error) {
	t.Helper()
	offload := netns.BuildBinary(t, "github.com/guix-offload/guix-offload/cmd/guix-offload")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prefix := c.guix.Prefix()
	cmd := c.master.Command(ctx, prefix[0], append(append(prefix[1:], offload), args...)...)
	cmd.Env = append(os.Environ(), "GUIX_OFFLOAD_CONFIG="+c.config)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func regexpQuote(s string) string { return "^" + strings.ReplaceAll(s, ".", `\.`) + "$" }
