// Package boundedread reads the files guix-offload is pointed at —
// configurations, machines.scm, ACLs, keys, snapshots — without trusting
// what the path names: only a regular file is read, at most a size cap
// that fits the kind of file, and opening never blocks (a FIFO or a
// device such as /dev/zero is refused at once, so a process that reads
// one still answers and stops on SIGTERM).
package boundedread
