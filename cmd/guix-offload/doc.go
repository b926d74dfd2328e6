// Command guix-offload is the master side of guix-offload: the offload
// hook guix-daemon runs, the discovery browser, and tools around them.
package main
