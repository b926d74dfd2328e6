package transport

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// defaultStall is how long a transfer may move no byte before Run gives
// up on it, when [Build].Stall is 0. The remote import may wait for a
// store lock held by another build, hence the generous default.
const defaultStall = 10 * time.Minute

// stallGuard calls cancel when the streams it wraps have moved no byte
// for d. It watches from start until stop (or ctx done).
type stallGuard struct {
	d       time.Duration
	cancel  context.CancelFunc
	last    atomic.Int64 // UnixNano of the last byte moved
	fired   atomic.Bool
	done    chan struct{}
	stopper sync.Once
}

func newStallGuard(d time.Duration, cancel context.CancelFunc) *stallGuard {
	if d <= 0 {
		d = defaultStall
	}
	g := &stallGuard{d: d, cancel: cancel, done: make(chan struct{})}
	g.touch()
	return g
}

// start watches in a goroutine that ends when ctx is done or stop is
// called.
func (g *stallGuard) start(ctx context.Context) {
	tick := min(g.d/4, time.Second)
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-g.done:
				return
			case now := <-t.C:
				if now.Sub(time.Unix(0, g.last.Load())) > g.d {
					g.fired.Store(true)
					g.cancel()
					return
				}
			}
		}
	}()
}

func (g *stallGuard) stop() { g.stopper.Do(func() { close(g.done) }) }

// stalled reports whether the guard gave up on the transfer.
func (g *stallGuard) stalled() bool { return g.fired.Load() }

func (g *stallGuard) touch() { g.last.Store(time.Now().UnixNano()) }

func (g *stallGuard) reader(r io.Reader) io.Reader { return stallReader{r, g} }
func (g *stallGuard) writer(w io.Writer) io.Writer { return stallWriter{w, g} }

type stallReader struct {
	r io.Reader
	g *stallGuard
}

func (s stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.g.touch()
	}
	return n, err
}

type stallWriter struct {
	w io.Writer
	g *stallGuard
}

func (s stallWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if n > 0 {
		s.g.touch()
	}
	return n, err
}
