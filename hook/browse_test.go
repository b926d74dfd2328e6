package hook_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/daemon"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
)

// Without a discovery snapshot the hook browses the LAN itself, once, and
// offloads to what it found; the next hook process reuses that browse.
// Everything runs in network namespaces: a master and a builder (Avahi
// announcing it, OpenSSH serving it), nothing in this machine's own.
func TestLiveBrowseInNamespaces(t *testing.T) {
	ipPath := testenv.LookPath(t, "ip", "iproute2")
	n := netns.New(t, 2)
	master, builder := n.Hosts()[0], n.Hosts()[1]
	s := sshd.Start(t, sshd.Options{Prefix: []string{ipPath, "netns", "exec", builder.Name},
		ListenAddress: builder.Addr.String() + ":22"})
	av := builder.StartAvahi(t)
	pub := av.Start(t, "avahi-publish", "-s", "builder", "_guix-offload._tcp", "22",
		"txtvers=1", "systems=x86_64-linux", "user=root", "host-key="+s.HostKey, "parallel-builds=1", "speed=2")

	e := newEnv(t)
	e.writeMachines()
	e.writeConfig(fmt.Sprintf("discovery = true\ncache = %q\nbrowse-timeout = \"5s\"\ntrust = \"any\"\nprivate-key = %q\n",
		filepath.Join(e.dir, "no-cache.json"), s.ClientKeyFile))
	exe, _ := os.Executable()
	start := func() *daemon.Hook {
		return daemon.Start(t, daemon.Options{Program: exe, Prefix: []string{ipPath, "netns", "exec", master.Name},
			System: "x86_64-linux", MaxSilentTime: 60, BuildTimeout: 60, ReplyTimeout: 30 * time.Second,
			Env: append(os.Environ(), modeEnv+"=hook", "GUIX_OFFLOAD_CONFIG="+e.config, transportEnv+"=ok")})
	}
	// The announcement may take a moment to leave Avahi (probing, and much
	// longer on a loaded machine).
	var rep daemon.Reply
	deadline := time.Now().Add(60 * time.Second)
	for {
		h := start()
		var err error
		rep, err = h.Request(ctxT(t), req(true, "x86_64-linux", "b"))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Answer == daemon.Accept || time.Now().After(deadline) {
			break
		}
		os.Remove(filepath.Join(e.state, "cache", "browse.json"))
		h.Kill()
	}
	if rep.Answer != daemon.Accept || !chatterHas(rep, "browsed the LAN", "building on 'builder' ("+builder.Addr.String()+":22)") {
		t.Fatalf("answer %q, chatter %q\navahi-publish: %s", rep.Answer, rep.Chatter, pub.Output())
	}
	// A second hook process (the first still holds the only slot) uses
	// the first one's browse: no browsing, and the machine is busy.
	h2 := start()
	rep = mustReply(t, h2, req(false, "x86_64-linux", "c"), daemon.Postpone)
	if strings.Contains(strings.Join(rep.Chatter, "\n"), "browsed") || !chatterHas(rep, "'builder' ("+builder.Addr.String()+":22): all 1 build slots taken") {
		t.Errorf("chatter %q", rep.Chatter)
	}
}
