package pairing

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Prompt asks an operator to confirm a code: it prints the peer and
// "pairing code: DDD DDD", then, without Code, asks on Out and reads one
// line from In (y or yes accepts; anything else, end of input or ctx's
// end refuses; six digits accept when they are the code); with Code it accepts exactly when Code is the code.
type Prompt struct {
	In   io.Reader
	Out  io.Writer
	Code string
}

// Confirm implements [Options].Confirm.
func (p Prompt) Confirm(ctx context.Context, code Code, peer *Identity) (bool, error) {
	fmt.Fprintf(p.Out, "%s\npairing code: %s\n", peer.Describe(), code)
	if p.Code != "" {
		if code.Matches(p.Code) {
			fmt.Fprintln(p.Out, "the code given with --code matches")
			return true, nil
		}
		fmt.Fprintf(p.Out, "the code given with --code (%s) is not this one: refusing\n", printable(p.Code))
		return false, nil
	}
	fmt.Fprint(p.Out, "Does the other side show the same code? [y/N, or type its code] ")
	line := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		s, err := bufio.NewReader(p.In).ReadString('\n')
		if err != nil && s == "" {
			errc <- err
			return
		}
		line <- s
	}()
	select {
	case s := <-line:
		a := strings.ToLower(strings.TrimSpace(s))
		if isCode(a) {
			// The operator typed the other side's code: accept when it
			// is this one.
			return code.Matches(a), nil
		}
		return a == "y" || a == "yes", nil
	case err := <-errc:
		fmt.Fprintln(p.Out)
		return false, fmt.Errorf("read the answer: %w", err)
	case <-ctx.Done():
		fmt.Fprintln(p.Out)
		// Unblock the reader when it is a terminal or pipe.
		if f, ok := p.In.(*os.File); ok {
			_ = f.SetReadDeadline(time.Now())
		}
		return false, context.Cause(ctx)
	}
}

func isCode(s string) bool {
	s = strings.ReplaceAll(s, " ", "")
	if len(s) != 6 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
