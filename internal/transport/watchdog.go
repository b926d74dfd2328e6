package transport

import (
	"context"
	"fmt"
	"time"
)

// progress is what the watchdog needs to know of a remote build: when
// it last wrote to the log, and whether anything came at all.
type progress interface {
	lastOutput() time.Time
	startedOutput() bool
}

// watchBuild guards a remote build on both paths. Every 250 ms it checks
// the build against the master's limits plus b.Grace (30 s when unset)
// and, for a build that has sent nothing yet, against the stall guard.
// When one is passed it asks the machine once, because silence from a
// dead link looks like a silent build and the connection's keepalive
// would notice only much later: no answer is a lost connection
// (transient), an answer a timeout, or, for a build that never started,
// an unresponsive machine (a login shell or a guix that hangs: the
// machine's problem, not the derivation's). It then sends that error on
// the returned channel, calls stop to end the build, and returns. It also
// returns when ctx is done, sending nothing.
func watchBuild(ctx context.Context, b *Build, p progress, stop func()) <-chan error {
	grace := b.Grace
	if grace <= 0 {
		grace = 30 * time.Second
	}
	start := time.Now()
	notStarted := b.Stall
	if notStarted <= 0 {
		notStarted = defaultStall
	}
	if b.MaxSilent > 0 {
		notStarted = min(notStarted, b.MaxSilent+grace)
	}
	if b.Timeout > 0 {
		notStarted = min(notStarted, b.Timeout+grace)
	}
	errc := make(chan error, 1)
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				var why string
				silent := false // nothing at all from the build yet
				switch {
				case !p.startedOutput() && now.Sub(start) > notStarted:
					why = fmt.Sprintf("nothing from guix build on '%s' for %v: the build did not start", b.Host, notStarted)
					silent = true
				case b.MaxSilent > 0 && now.Sub(p.lastOutput()) > b.MaxSilent+grace:
					why = fmt.Sprintf("no output from '%s' for %v", b.Host, b.MaxSilent+grace)
				case b.Timeout > 0 && now.Sub(start) > b.Timeout+grace:
					why = fmt.Sprintf("build on '%s' still running after %v", b.Host, b.Timeout+grace)
				default:
					continue
				}
				alive := answers(ctx, b.Client, probeTimeout)
				switch {
				case alive && silent:
					errc <- fmt.Errorf("build %s: %w: %s", b.Drv, ErrUnresponsive, why)
				case alive:
					errc <- fmt.Errorf("%w: %s", ErrTimeout, why)
				default:
					errc <- fmt.Errorf("build %s: %w: %s, and it did not answer a keepalive within %v", b.Drv, ErrConnectionLost, why, probeTimeout)
				}
				stop()
				return
			}
		}
	}()
	return errc
}
