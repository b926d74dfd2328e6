package transport

import (
	"bytes"
	"io"
	"regexp"
	"strings"
)

// logFilter passes the remote `guix build`'s stderr on to the build log
// without `guix build`'s own lines, so that the log holds what Guix's
// hook puts there: the builder's output and the daemon's messages. The
// dropped lines, whole and naming a store item, are those `guix build`
// prints as it renders the daemon's build traces:
//
//   - "The following derivation(s) will be built:" and the indented
//     list after it (show-what-to-build, guix/ui.scm);
//   - "building DRV...", "successfully built DRV", "build of DRV
//     failed", "View build log at 'LOG'." and "Could not find build log
//     for 'DRV'." (print-build-event, guix/status.scm);
//   - its closing "guix build: error: …" (and any other "guix build: "
//     line: `leave` and `warning` in guix/ui.scm).
//
// Everything else goes through as it arrives, partial lines included (a
// builder printing progress without newlines must not look silent to
// the master's daemon): only while the start of a line could still be
// one of those is it held, up to its newline.
type logFilter struct {
	w        io.Writer
	chatter  *regexp.Regexp
	listItem *regexp.Regexp
	pending  []byte // the start of the current line, held
	passing  bool   // the current line is not chatter: pass it on as it comes
	listing  bool   // after "… will be built:": indented store paths are chatter
}

// chatterPrefixes start every line logFilter may drop.
var chatterPrefixes = []string{
	"The following derivation",
	"building ",
	"successfully built ",
	"build of ",
	"View build log at '",
	"Could not find build log for '",
	"guix build: ",
}

// maxHeld bounds how much of one line logFilter holds back.
const maxHeld = 4096

func newLogFilter(w io.Writer, store string) *logFilter {
	s := regexp.QuoteMeta(strings.TrimSuffix(store, "/") + "/")
	item := s + "[^/\\s]+"
	return &logFilter{w: w, chatter: regexp.MustCompile(`^(?:` +
		`The following derivations? will be built:` +
		`|building ` + item + `\.drv\.\.\.` +
		`|successfully built ` + item + `\.drv` +
		`|build of ` + item + `\.drv failed` +
		`|View build log at '[^']*'\.` +
		`|Could not find build log for '` + item + `'\.` +
		`|guix build: .*` +
		`)\r?\n?$`), listItem: regexp.MustCompile(`^   ` + item + `\r?\n?$`)}
}

// Write passes p on, less `guix build`'s lines. It reports len(p) and
// no error: the build goes on whether or not the log's reader does.
func (f *logFilter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if f.passing {
			if i < 0 {
				_, _ = f.w.Write(p)
				return n, nil
			}
			_, _ = f.w.Write(p[:i+1])
			f.passing = false
			p = p[i+1:]
			continue
		}
		if i >= 0 {
			f.pending = append(f.pending, p[:i+1]...)
			f.line(f.pending)
			f.pending = f.pending[:0]
			p = p[i+1:]
			continue
		}
		f.pending = append(f.pending, p...)
		if !f.mayBeChatter(f.pending) {
			_, _ = f.w.Write(f.pending)
			f.pending = f.pending[:0]
			f.passing = true
		}
		return n, nil
	}
	return n, nil
}

// Flush decides the held start of a last line without a newline.
func (f *logFilter) Flush() {
	if len(f.pending) > 0 {
		f.line(f.pending)
		f.pending = f.pending[:0]
	}
}

// line passes on or drops one whole line (with its newline, if any).
func (f *logFilter) line(l []byte) {
	s := string(l)
	if f.listing && f.listItem.MatchString(s) {
		return
	}
	f.listing = false
	if f.chatter.MatchString(s) {
		f.listing = strings.HasPrefix(s, "The following derivation")
		return
	}
	_, _ = f.w.Write(l)
}

// mayBeChatter reports whether a line starting with start, no newline
// yet, could still turn out to be one logFilter drops.
func (f *logFilter) mayBeChatter(start []byte) bool {
	if len(start) > maxHeld {
		return false
	}
	s := string(start)
	prefixes := chatterPrefixes
	if f.listing {
		prefixes = append(prefixes[:len(prefixes):len(prefixes)], "   ")
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) || strings.HasPrefix(p, s) {
			return true
		}
	}
	return false
}
