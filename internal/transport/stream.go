package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/klauspost/compress/zstd"
)

// Agent is the program that, when the build machine has it on PATH, is
// the far end of the compressed archive pipe (see [StreamCommand]).
const Agent = "guix-offload-agent"

// Compress copies r to w zstd-compressed and returns the bytes read and
// written. It uses zstd's fastest level: on store items that compresses
// about 3.5:1 at some 150 MB/s on one core, against 3.9:1 at 80 MB/s for
// the default level (BenchmarkCompress) — and only a compressor faster
// than the link pays, which on a gigabit LAN the default level is not.
func Compress(w io.Writer, r io.Reader) (in, out int64, err error) {
	cw := &countWriter{w: w}
	enc, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return 0, 0, err
	}
	in, err = io.Copy(enc, r)
	if err != nil {
		enc.Close()
		return in, cw.n, err
	}
	if err := enc.Close(); err != nil {
		return in, cw.n, fmt.Errorf("compress: %w", err)
	}
	return in, cw.n, nil
}

// NewDecompressor returns a reader of the data zstd-compressed in r. Close
// it when done.
func NewDecompressor(r io.Reader) (io.ReadCloser, error) {
	dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return nil, err
	}
	return dec.IOReadCloser(), nil
}

// Decompress copies the zstd stream r to w, decompressed.
func Decompress(w io.Writer, r io.Reader) (int64, error) {
	dec, err := NewDecompressor(r)
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	n, err := io.Copy(w, dec)
	if err != nil {
		return n, fmt.Errorf("decompress: %w", err)
	}
	return n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// StreamCommand is the far end of the compressed pipe, run on the build
// machine as `guix-offload-agent stream import|export [ITEMS…]`:
//
//   - "import": decompresses stdin into `GUIX archive --import`;
//   - "export": compresses the stdout of `GUIX archive --export ITEMS…`
//     onto stdout.
//
// GUIX's stderr goes to stderr. It returns the exit status GUIX ended
// with (so the master sees Guix's own verdict), or an error when the pipe
// itself failed.
func StreamCommand(ctx context.Context, guix, op string, items []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	var cmd *exec.Cmd
	switch op {
	case "import":
		if len(items) != 0 {
			return 1, fmt.Errorf("stream import takes no arguments")
		}
		cmd = exec.CommandContext(ctx, guix, "archive", "--import")
		pw, err := cmd.StdinPipe()
		if err != nil {
			return 1, err
		}
		cmd.Stdout = stderr
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			return 1, fmt.Errorf("start %s archive --import: %w", guix, err)
		}
		_, derr := Decompress(pw, stdin)
		pw.Close()
		werr := cmd.Wait()
		if code, ok := exitStatus(werr); ok {
			if code == 0 && derr != nil {
				return 1, derr
			}
			return code, nil
		}
		if werr != nil {
			return 1, fmt.Errorf("run %s archive --import: %w", guix, werr)
		}
		if derr != nil {
			return 1, derr
		}
		return 0, nil
	case "export":
		args := append([]string{"archive", "--export"}, items...)
		cmd = exec.CommandContext(ctx, guix, args...)
		pr, err := cmd.StdoutPipe()
		if err != nil {
			return 1, err
		}
		cmd.Stdin = stdin
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			return 1, fmt.Errorf("start %s archive --export: %w", guix, err)
		}
		_, _, cerr := Compress(stdout, pr)
		if cerr != nil {
			// Drain so that guix is not stuck writing to a full pipe.
			_, _ = io.Copy(io.Discard, pr)
		}
		werr := cmd.Wait()
		if code, ok := exitStatus(werr); ok {
			if code == 0 && cerr != nil {
				return 1, cerr
			}
			return code, nil
		}
		if werr != nil {
			return 1, fmt.Errorf("run %s archive --export: %w", guix, werr)
		}
		if cerr != nil {
			return 1, cerr
		}
		return 0, nil
	}
	return 1, fmt.Errorf("unknown stream operation %q (want import or export)", op)
}

func exitStatus(err error) (int, bool) {
	if err == nil {
		return 0, true
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return ee.ExitCode(), true
	}
	return 0, false
}

// lookGuix returns guix, or "guix" when empty, for running locally.
func lookGuix(guix string) string {
	if guix != "" {
		return guix
	}
	if p, err := exec.LookPath("guix"); err == nil {
		return p
	}
	return "guix"
}
