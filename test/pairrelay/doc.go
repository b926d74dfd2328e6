// Command pairrelay is the attacker of the pairing tests (never shipped):
// a host in the middle that accepts a master's pairing connection as if
// it were the build machine and pairs with the real machine as if it were
// the master, each time with keys of its own, accepting every code. The
// codes the real sides show must then differ.
package main
