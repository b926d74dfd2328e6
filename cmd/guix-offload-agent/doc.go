// Command guix-offload-agent runs on a build machine and advertises what it
// offers on the LAN with DNS-SD over multicast DNS.
package main
