package tomlconf

import (
	"fmt"
	"strconv"
	"time"
)

// ParseDuration reads a duration the way Guix's options take one, a plain
// number of seconds ("30", "1.5"), or as a Go duration ("30s", "5m",
// "1h30m"). Negative durations are refused.
func ParseDuration(s string) (time.Duration, error) {
	var d time.Duration
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if secs > float64(1<<63-1)/float64(time.Second) {
			return 0, fmt.Errorf("%q: too long a duration", s)
		}
		d = time.Duration(secs * float64(time.Second))
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("%q is not a duration: give seconds (30) or a unit (30s, 5m, 1h)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q: a duration cannot be negative", s)
	}
	return d, nil
}

// Duration is a time.Duration that a configuration file writes as a Go
// duration string ("30s", "5m") and the command line (it is a
// pflag.Value) also as a plain number of seconds, as Guix's options take
// it ([ParseDuration]): `--timeout 30` and `--timeout 30s` are the same.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q (write it like \"30s\" or \"5m\")", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String formats d as a Go duration ("1m0s").
func (d Duration) String() string { return time.Duration(d).String() }

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Set parses s with [ParseDuration].
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Type names the flag's value in help texts.
func (d *Duration) Type() string { return "duration" }
