package transport

import (
	"regexp"
	"strings"
)

// verdict is what the remote daemon said about how the build of our
// derivation ended.
type verdict int

const (
	verdictNone      verdict = iota // nothing said: a transient failure
	verdictTransient                // it failed for a reason of the machine's (disk full)
	verdictTimeout                  // max-silent-time, build timeout or max log size: exit 101
	verdictFailed                   // the builder failed: exit 100
)

// verdicts reads `guix build` output line by line and keeps the last
// verdict the daemon gave about this one derivation. Only the daemon's
// own lines count (nix/libstore/build.cc), and only those naming this
// derivation or its outputs, matched whole at the end of a line: a builder that prints "test
// foo timed out after 60 seconds" or "failed to produce output path"
// in its log must not turn a failure into a timeout, or a transient
// failure into a permanent one the daemon caches. The builder's log all
// comes before the daemon's verdict on it, so the last verdict wins.
type verdicts struct {
	timeout, failed, cached, mismatch *regexp.Regexp
	outputs                           map[string]bool
	diskNote                          bool // the previous line was the daemon's disk-space note
	last                              verdict
}

// diskNote is what the daemon prints just before "builder for … failed"
// when the store's file system is nearly full; it then treats the failure
// as transient and does not cache it, and so do we.
const diskNote = "note: build failure may have been caused by lack of free disk space"

// newVerdicts returns the scanner for the build of drv with outputs.
//
// The daemon's messages end their line: it prints each one with a
// newline right after whatever the builder wrote last, so when the
// builder's last output lacks a newline the message shares its line
// ("partialbuilder for `…' failed with exit code 7", as observed with
// real Guix), and `guix build` may relay one after "error: " or "guix
// build: error: ". Whatever precedes a message on its line is
// therefore allowed; what follows it is not: each pattern is anchored
// at the end of the line only.
func newVerdicts(drv string, outputs []string) *verdicts {
	d := regexp.QuoteMeta(drv)
	v := &verdicts{
		// Goal name "building of `DRV'": "… timed out after N seconds
		// of silence", "… timed out after N seconds", "… killed after
		// writing more than N bytes of log output" (handled as a
		// timeout).
		timeout: regexp.MustCompile("building of `" + d + "' (?:timed out after [0-9]+ seconds(?: of silence)?|killed after writing more than [0-9]+ bytes of log output)$"),
		// "builder for `DRV' " + statusToString(status), or its output
		// check.
		failed: regexp.MustCompile("builder for `" + d + "' (?:failed with exit code [0-9]+|failed due to signal [0-9]+(?: \\(.*\\))?|died abnormally|failed to produce output path `[^`']+')$"),
		// A failure the daemon cached earlier names the output.
		cached: regexp.MustCompile("builder for `([^`']+)' failed previously \\(cached\\)$"),
		// A fixed-output derivation's hash check names the output.
		mismatch: regexp.MustCompile("hash mismatch for store item '([^`']+)'$"),
		outputs:  make(map[string]bool, len(outputs)),
	}
	for _, o := range outputs {
		v.outputs[o] = true
	}
	return v
}

func (v *verdicts) scan(line string) {
	line = strings.TrimRight(line, "\r")
	if strings.TrimSpace(line) == "" {
		return
	}
	afterNote := v.diskNote
	v.diskNote = false
	switch {
	case strings.HasSuffix(line, diskNote):
		v.diskNote = true
	case v.timeout.MatchString(line):
		v.last = verdictTimeout
	case v.failed.MatchString(line):
		v.last = verdictFailed
		if afterNote {
			v.last = verdictTransient
		}
	default:
		for _, re := range []*regexp.Regexp{v.cached, v.mismatch} {
			if m := re.FindStringSubmatch(line); m != nil && v.outputs[m[1]] {
				v.last = verdictFailed
			}
		}
	}
}
