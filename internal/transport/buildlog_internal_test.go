package transport

import (
	"bytes"
	"strings"
	"testing"
)

const logDrv = "/gnu/store/b6z186f8ndd4jf2d57cwqiir87ansz4i-rg-failpartial12079.drv"

// filterLog writes in through a logFilter in pieces of n bytes (all at
// once for n ≤ 0) and returns what reached the log.
func filterLog(in string, n int) string {
	var out bytes.Buffer
	f := newLogFilter(&out, "/gnu/store")
	if n <= 0 {
		n = len(in) + 1
	}
	for i := 0; i < len(in); i += n {
		_, _ = f.Write([]byte(in[i:min(i+n, len(in))]))
	}
	f.Flush()
	return out.String()
}

// The remote `guix build`'s stderr as real Guix printed it (see the
// fixtures of issue 10): only the builder's output and the daemon's
// messages reach the log.
func TestLogFilter(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"failure after a partial line",
			"The following derivation will be built:\n   " + logDrv + "\nbuilding " + logDrv + "...\n" +
				"partialbuilder for `" + logDrv + "' failed with exit code 7\n" +
				"build of " + logDrv + " failed\nView build log at '/var/log/guix/drvs/b6/z186f8ndd4jf2d57cwqiir87ansz4i-rg-failpartial12079.drv.gz'.\n" +
				"guix build: error: build of `" + logDrv + "' failed\n",
			"partialbuilder for `" + logDrv + "' failed with exit code 7\n"},
		{"success",
			"The following derivations will be built:\n   " + logDrv + "\n   /gnu/store/x-y.drv\nbuilding " + logDrv + "...\nhi from the builder\nsuccessfully built " + logDrv + "\n",
			"hi from the builder\n"},
		{"silence",
			"building " + logDrv + "...\nstart\nbuilding of `" + logDrv + "' timed out after 3 seconds of silence\nbuild of " + logDrv + " failed\n",
			"start\nbuilding of `" + logDrv + "' timed out after 3 seconds of silence\n"},
		{"builder lines that look alike stay",
			"building foo\nbuilding " + logDrv + "... done\n   indented\nbuild of the docs failed\nguix buildx\n",
			"building foo\nbuilding " + logDrv + "... done\n   indented\nbuild of the docs failed\nguix buildx\n"},
		{"a list ends at its first other line",
			"The following derivation will be built:\n   " + logDrv + "\nbuilding x\n   /gnu/store/a-b.drv\n",
			"building x\n   /gnu/store/a-b.drv\n"},
		{"progress without newlines", "...........", "..........."},
		{"last line without newline", "hello\nguix build: error: gone", "hello\n"},
		{"CRLF", "building " + logDrv + "...\r\nok\r\n", "ok\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{0, 1, 3, 7, 64} {
				if got := filterLog(tc.in, n); got != tc.want {
					t.Errorf("in pieces of %d:\n%q\nwant\n%q", n, got, tc.want)
				}
			}
		})
	}
}

// A builder printing progress without newlines reaches the log at once:
// the master's daemon must not see a silent build.
func TestLogFilterPassesPartialLines(t *testing.T) {
	var out bytes.Buffer
	f := newLogFilter(&out, "/gnu/store")
	_, _ = f.Write([]byte("compiling"))
	if out.String() != "compiling" {
		t.Fatalf("partial line held: %q", out.String())
	}
	_, _ = f.Write([]byte("..."))
	if out.String() != "compiling..." {
		t.Fatalf("rest of the partial line held: %q", out.String())
	}
	// A line that may be guix build's is held to its newline, but
	// never more than maxHeld bytes.
	out.Reset()
	_, _ = f.Write([]byte("\nbuilding "))
	if out.String() != "\n" {
		t.Fatalf("got %q", out.String())
	}
	_, _ = f.Write([]byte(strings.Repeat("x", maxHeld)))
	if out.Len() != 1+len("building ")+maxHeld {
		t.Fatalf("held %d bytes", len("building ")+maxHeld-out.Len()+1)
	}
}

// FuzzLogFilter: however the stream is cut, the log gets the same
// bytes, and every line that does not start like one of `guix build`'s
// reaches it.
func FuzzLogFilter(f *testing.F) {
	f.Add("The following derivation will be built:\n   "+logDrv+"\nbuilding "+logDrv+"...\npartialbuilder for `"+logDrv+"' failed with exit code 7\nguix build: error: x\n", uint8(3))
	f.Add("hi\nsuccessfully built "+logDrv+"\n", uint8(1))
	f.Fuzz(func(t *testing.T, in string, n uint8) {
		whole := filterLog(in, 0)
		if got := filterLog(in, int(n)); got != whole {
			t.Fatalf("in pieces of %d: %q, all at once: %q", n, got, whole)
		}
		// The log is the input less some whole lines, each of which
		// starts like one of guix build's.
		rest := whole
		for i, l := range strings.SplitAfter(in, "\n") {
			if l == "" {
				continue
			}
			if strings.HasPrefix(rest, l) {
				rest = rest[len(l):]
				continue
			}
			chatter := i > 0 && strings.HasPrefix(l, "   ")
			for _, p := range chatterPrefixes {
				chatter = chatter || strings.HasPrefix(l, p)
			}
			if !chatter {
				t.Fatalf("line %q dropped or changed: log %q from %q", l, whole, in)
			}
		}
		if rest != "" {
			t.Fatalf("log has %q that was not in %q", rest, in)
		}
	})
}
