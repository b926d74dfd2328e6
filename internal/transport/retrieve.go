package transport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/guix-offload/guix-offload/internal/nar"
)

// ErrUnexpectedItem: the machine sent a store item that was not asked
// for, or one twice.
var ErrUnexpectedItem = errors.New("unexpected store item")

// retrieve reads the remote export of b.Outputs, restores each item under
// a temporary name inside the store, verifies it, and renames them onto
// their paths only when all arrived intact.
func retrieve(ctx context.Context, b *Build, compress bool) error {
	noun := "store item"
	if len(b.Outputs) != 1 {
		noun += "s"
	}
	b.msgf("retrieving %d %s from '%s'...", len(b.Outputs), noun, b.Host)
	sweepStale(b.Store)

	var cmd string
	if compress {
		cmd = Command(append([]string{Agent, "stream", "export"}, b.Outputs...)...)
	} else {
		cmd = Command(append([]string{b.RemoteGuix, "archive", "--export"}, b.Outputs...)...)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	remoteErr := &tail{max: 2048}
	done := make(chan result, 1)
	guard := newStallGuard(b.Stall, cancel)
	guard.start(ctx)
	defer guard.stop()
	go func() {
		code, err := Exec(ctx, b.Client, cmd, nil, guard.writer(pw), remoteErr)
		pw.Close()
		done <- result{code, err}
	}()

	temps := map[string]string{} // output path → temporary name
	cleanup := func() {
		for _, tmp := range temps {
			_ = os.RemoveAll(tmp)
		}
	}
	err := receive(b, pr, compress, temps)
	guard.stop() // from here on awaitEnd bounds the wait
	if err != nil {
		cleanup()
		pr.CloseWithError(err)
		// A stream cut short usually means the far end failed or the
		// connection broke; give it a moment to say which.
		var res result
		select {
		case res = <-done:
		case <-time.After(time.Second):
			cancel()
			res = <-done
		}
		switch {
		case guard.stalled():
			return fmt.Errorf("retrieve outputs: stalled: nothing came from '%s' for %v (archive cut short): %w", b.Host, guard.d, ErrUnresponsive)
		case res.err == nil && res.code != 0:
			return fmt.Errorf("retrieve outputs: %w", &RemoteError{Command: cmd, Status: res.code, Stderr: remoteErr.String()})
		case errors.Is(res.err, ErrConnectionLost):
			return fmt.Errorf("retrieve outputs: %w (archive cut short)", res.err)
		}
		return fmt.Errorf("retrieve outputs: %w", err)
	}
	// The archive is complete. Hear how the remote command ended,
	// draining a little of whatever follows so that it can exit, but
	// neither endlessly nor for ever: a machine that keeps writing or
	// stalls after the end must not hold the build (and its slot).
	res, err := awaitEnd(pr, done, cancel)
	if err != nil {
		cleanup()
		return fmt.Errorf("retrieve outputs: '%s' %w", b.Host, err)
	}
	switch {
	case res.err != nil:
		cleanup()
		return fmt.Errorf("retrieve outputs: %w", res.err)
	case res.code != 0:
		cleanup()
		return fmt.Errorf("retrieve outputs: %w", &RemoteError{Command: cmd, Status: res.code, Stderr: remoteErr.String()})
	}

	return place(b, temps)
}

// place renames the verified outputs, restored under the temporary names
// temps (output path → name), onto their paths. If one rename fails, it
// undoes the ones done and removes the rest.
func place(b *Build, temps map[string]string) error {
	var placed []string
	for _, out := range b.Outputs {
		if err := unix.Renameat2(unix.AT_FDCWD, temps[out], unix.AT_FDCWD, out, unix.RENAME_NOREPLACE); err != nil {
			for _, p := range placed {
				_ = os.RemoveAll(p)
			}
			removeTemps(temps)
			return fmt.Errorf("retrieve outputs: move %s into place: %w", out, err)
		}
		placed = append(placed, out)
		delete(temps, out)
	}
	return nil
}

// After the archive's end, the remote export may write at most
// maxTrailing more bytes and must exit within endWait.
const (
	maxTrailing = 64 << 10
	endWait     = 10 * time.Second
)

// result is how a remote command ended: [Exec]'s two results.
type result struct {
	code int
	err  error
}

// awaitEnd waits for the remote export, whose output is read from pr, to
// end after its archive did. It reads and discards up to maxTrailing
// bytes meanwhile. When the command writes more or does not end within
// endWait, awaitEnd closes pr (so the session's copy of its output stops
// blocking), cancels the session, and returns an error.
func awaitEnd(pr *io.PipeReader, done <-chan result, cancel context.CancelFunc) (result, error) {
	drained := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, io.LimitReader(pr, maxTrailing+1))
		drained <- n
	}()
	timer := time.NewTimer(endWait)
	defer timer.Stop()
	var why error
	for why == nil {
		select {
		case res := <-done:
			pr.Close()
			return res, nil
		case n := <-drained:
			if n > maxTrailing {
				why = fmt.Errorf("sent more than %d KiB after the end of the archive", maxTrailing>>10)
			}
			drained = nil // its end of output came; wait for its status
		case <-timer.C:
			why = fmt.Errorf("did not end its export within %v of the end of the archive", endWait)
		}
	}
	pr.CloseWithError(why)
	cancel()
	<-done // bounded: Exec gives up on a cancelled session within seconds
	return result{}, why
}

func receive(b *Build, r io.Reader, compress bool, temps map[string]string) error {
	var wire, raw int64
	if compress {
		dec, err := NewDecompressor(&countReader{r: r, n: &wire})
		if err != nil {
			return err
		}
		defer dec.Close()
		r = &countReader{r: dec, n: &raw}
		defer func() {
			if len(temps) == len(b.Outputs) {
				b.msgf("received %s MiB from '%s' as %s MiB (zstd)", mib(raw), b.Host, mib(wire))
			}
		}()
	}
	want := map[string]bool{}
	for _, o := range b.Outputs {
		want[o] = true
	}
	xr := nar.NewExportReader(r)
	for {
		tmp, err := tempName(b.Store)
		if err != nil {
			return err
		}
		it, err := xr.Next(tmp)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		temps[it.Path+"\x00"+tmp] = tmp // removed on failure whatever happens next
		if !want[it.Path] {
			if _, seen := temps[it.Path]; seen {
				return fmt.Errorf("%w: %s sent twice", ErrUnexpectedItem, it.Path)
			}
			return fmt.Errorf("%w: %s is not an output of %s", ErrUnexpectedItem, it.Path, b.Drv)
		}
		if _, err := it.Verify(b.ACL); err != nil {
			return fmt.Errorf("refuse output from '%s': %w", b.Host, err)
		}
		delete(temps, it.Path+"\x00"+tmp)
		temps[it.Path] = tmp
		delete(want, it.Path)
		b.msgf("found valid signature for '%s'", it.Path)
	}
	for _, o := range b.Outputs {
		if want[o] {
			return fmt.Errorf("'%s' did not send %s", b.Host, o)
		}
	}
	return nil
}

// tempPrefix starts the temporary names of retrieved items in the store:
// .guix-offload-PID-RANDOM.
const tempPrefix = ".guix-offload-"

// tempName returns a fresh name inside the store directory, so the final
// rename stays on one file system. It carries our process id so that a
// later hook can tell it was left by a hook the daemon killed.
func tempName(store string) (string, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return filepath.Join(store, fmt.Sprintf("%s%d-%s", tempPrefix, os.Getpid(), hex.EncodeToString(r[:]))), nil
}

// sweepStale removes temporary names left in the store by hooks that the
// daemon killed mid-retrieval (it ends hooks with SIGKILL, so they cannot
// clean up): those whose process is gone and that are older than an hour.
func sweepStale(store string) {
	ents, err := os.ReadDir(store)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), tempPrefix)
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < time.Hour {
			continue
		}
		if unix.Kill(pid, 0) == unix.ESRCH {
			_ = os.RemoveAll(filepath.Join(store, e.Name()))
		}
	}
}
