package candidates

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/guix-offload/guix-offload/internal/atomicfile"
)

// FailureMemory is how long a machines.scm that could not be evaluated
// is taken as failing without evaluating it again, while it is unchanged:
// one that loops costs the Guile bound (scm.GuileTimeout) once in that
// time, not on every request of every hook process. Editing the file ends
// it at once. It is not forever, because a timeout may come from a
// machine too loaded to evaluate in time.
const FailureMemory = 5 * time.Minute

// failure is a remembered failed evaluation of one version of a file.
type failure struct {
	File string
	ID   fileID
	Salt string
	At   time.Time
	Msg  string
}

// failureMagic heads a kept NAME.failed file ([keptFile]): then a line
// with the file name, its identity, the salt and the time of the failure
// (as in a kept [reading]), then the error message.
const failureMagic = "guix-offload-failure 1"

func failurePath(o *Options, name string) string {
	return keptFile(o, name+".failed")
}

// failedBefore returns the remembered error of this version of file, if
// evaluating it failed less than [FailureMemory] ago, in this process or
// another.
func (l *Loader) failedBefore(o *Options, name, file, salt string, now time.Time) error {
	id, ok := statID(file)
	if !ok {
		return nil
	}
	valid := func(f *failure) bool {
		return f != nil && f.File == file && f.ID == id && f.Salt == salt &&
			!now.Before(f.At) && now.Sub(f.At) < FailureMemory
	}
	f := l.failed[name]
	if !valid(f) {
		data, err := os.ReadFile(failurePath(o, name))
		if err != nil {
			return nil
		}
		if f, err = decodeFailure(data); err != nil || !valid(f) {
			return nil
		}
	}
	return fmt.Errorf("%s (as at %s: this version of the file is evaluated again once changed, or after %v)",
		f.Msg, f.At.Local().Format(time.TimeOnly), FailureMemory)
}

// rememberFailure keeps err, the failure of evaluating file whose
// identity was id before, unless the file changed meanwhile or the
// evaluation was only interrupted.
func (l *Loader) rememberFailure(ctx context.Context, o *Options, name, file, salt string, id fileID, err error, now time.Time) {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	if id2, ok := statID(file); !ok || id2 != id {
		return
	}
	f := &failure{File: file, ID: id, Salt: salt, At: now, Msg: err.Error()}
	if l.failed == nil {
		l.failed = make(map[string]*failure)
	}
	l.failed[name] = f
	_ = atomicfile.Write(failurePath(o, name), encodeFailure(f), atomicfile.Private)
}

func encodeFailure(f *failure) []byte {
	return fmt.Appendf(nil, "%s\n%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\n%s\n", failureMagic,
		strconv.Quote(f.File), f.ID.Dev, f.ID.Ino, f.ID.Size, f.ID.Mtime, f.ID.Ctime,
		strconv.Quote(f.Salt), f.At.UnixNano(), strconv.Quote(f.Msg))
}

var errBadFailure = errors.New("bad failure record")

func decodeFailure(data []byte) (*failure, error) {
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 3 || lines[0] != failureMagic {
		return nil, errBadFailure
	}
	h := strings.Split(lines[1], "\t")
	if len(h) != 8 {
		return nil, errBadFailure
	}
	f := &failure{}
	var err error
	unq := func(s string) string {
		v, e := strconv.Unquote(s)
		err = errors.Join(err, e)
		return v
	}
	num := func(s string) int64 {
		v, e := strconv.ParseInt(s, 10, 64)
		err = errors.Join(err, e)
		return v
	}
	f.File = unq(h[0])
	f.ID = fileID{num(h[1]), num(h[2]), num(h[3]), num(h[4]), num(h[5])}
	f.Salt = unq(h[6])
	f.At = time.Unix(0, num(h[7]))
	f.Msg = unq(lines[2])
	if err != nil {
		return nil, errBadFailure
	}
	return f, nil
}
