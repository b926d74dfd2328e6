// Package bind runs BIND 9's named as a real DNS server for tests of
// wide-area DNS-SD: inside a network namespace of package netns (never
// in this machine's own), in the foreground, as root, from a temporary
// directory of its own, with one primary zone that accepts DNS UPDATEs
// signed with a TSIG key (as a site's administrator would set it up, see
// docs/wide-area.md). The server is killed and its directory removed
// when the test ends, even when it fails.
//
//	net := netns.New(t, 2)
//	srv := bind.Start(t, net.Hosts()[0], bind.Options{Zone: "builders.test."})
//	out := srv.Dig(t, "_guix-offload._tcp.builders.test.", "PTR")
//
// It needs named (Debian's bind9), tsig-keygen (bind9-utils) and dig
// (bind9-dnsutils); without them the test is skipped (failed under
// CI=true).
package bind
