// Package netns builds throwaway test networks out of Linux network
// namespaces, so tests can run real multicast DNS peers (our agent and
// browser, avahi-daemon, sshd) without ever touching this machine's own
// network namespace.
//
// Start with [New]: it makes n hosts, each a network namespace with one
// veth interface, all joined by a bridge that lives in a namespace of its
// own (the "switch"). Every veth pair is created directly inside those
// namespaces (ip -n NS link add … peer … netns OTHER), so nothing ever
// appears in the root namespace. Host i gets 169.254.R.(i+1)/16, where R is
// random per network, plus the IPv6 link-local address the kernel assigns
// (duplicate address detection is off, so it is usable at once). lo is up
// in every host and multicast is on and unfiltered (no IGMP/MLD snooping on
// the bridge). Names carry a random suffix, so parallel test runs never
// collide. Everything is torn down in t.Cleanup, even when the test fails;
// when the test binary is killed before its cleanup can run (its
// -timeout), the processes started in the namespaces die with it
// (Pdeathsig), and the namespaces, whose names carry the test process's
// pid, are deleted by the next [New] in any test process.
//
// A Go thread that switches namespace does not take its other goroutines
// along, so tests run one process per namespace: build the program with
// [BuildBinary] and start it with [Host.Start]. A [Proc]'s output is
// captured and printed with t.Log when the test fails; its process group is
// killed at cleanup. Wait for readiness with [WaitFor] (polling with a
// deadline), never with a bare sleep.
//
//	net := netns.New(t, 2)
//	a, b := net.Hosts()[0], net.Hosts()[1]
//	agent := netns.BuildBinary(t, "github.com/guix-offload/guix-offload/cmd/guix-offload-agent")
//	p := a.Start(t, agent, "--config", cfg)
//	netns.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(p.Output(), "advertising") })
//	out, err := b.Command(ctx, browser, "discover").Output()
//
// [Host.StartAvahi] runs Avahi on a host as the independent DNS-SD peer
// (its own dbus-daemon and avahi-daemon); [ParseBrowse] reads
// avahi-browse --parsable --resolve output.
//
// [New] needs root and iproute2's ip; without them the test is skipped (a
// failure under CI=true, see package testenv).
package netns
