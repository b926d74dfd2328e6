package hook

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/guix-offload/guix-offload/internal/transport"
)

// build serves the accepted build: it reads the inputs and outputs lines,
// hands the build to the transport and maps the result to the exit
// status. The slot and the connection are held until it returns; the
// kernel releases the slot lock if the daemon kills us first.
func (s *server) build(ctx context.Context, in *bufio.Reader, acc *accepted) (code int) {
	defer acc.slot.Release()
	defer acc.client.Close()
	defer func() {
		if r := recover(); r != nil {
			s.sayf("error: internal error while offloading %s to %s: %v", acc.req.Drv, acc.machine.Label(), r)
			code = 1
		}
	}()
	inputs, err := readPaths(in)
	if err != nil {
		s.sayf("error: read the inputs line after accept: %v", err)
		return 1
	}
	outputs, err := readPaths(in)
	if err != nil {
		s.sayf("error: read the outputs line after accept: %v", err)
		return 1
	}
	if err := s.ready(); err != nil { // checked before accepting; never fails here
		s.sayf("error: %v", err)
		return 1
	}
	b := &transport.Build{
		Client:          acc.client,
		Host:            acc.machine.Name,
		Drv:             acc.req.Drv,
		Inputs:          inputs,
		Outputs:         outputs,
		MaxSilent:       s.args.MaxSilentTime,
		Timeout:         s.args.BuildTimeout,
		PrintBuildTrace: s.args.PrintBuildTrace,
		Store:           s.cfg.Store,
		ACL:             s.local.acl,
		Guix:            s.local.guix,
		Log:             s.o.BuildLog,
		Msg:             s.o.Out,
		Compress:        s.cfg.Compress,
		// The machine's guix-daemon, reached over the SSH connection
		// (the record's daemon-socket, as for Guix's own hook).
		RemoteDaemon: acc.machine.DaemonSocket,
		// Guix keeps the signing key beside the ACL (/etc/guix).
		SigningKey: SigningKeyBeside(s.cfg.ACL),
	}
	err = s.o.Transport(ctx, b)
	code = transport.ExitCode(err)
	switch {
	case err == nil:
		s.sayf("done with offloaded '%s' on %s", acc.req.Drv, acc.machine.Label())
	case code == transport.ExitBuildFailed:
		s.sayf("build of '%s' failed on %s: %v", acc.req.Drv, acc.machine.Label(), err)
	case code == transport.ExitTimedOut:
		s.sayf("build of '%s' timed out on %s: %v", acc.req.Drv, acc.machine.Label(), err)
	default:
		s.sayf("error: %v", err)
		if code != transport.ExitError {
			code = transport.ExitError // never claim success or a permanent failure for our own problem
		}
		if ctx.Err() == nil && machineProblem(err) {
			// Other hook processes skip it instead of failing their builds too.
			until := s.o.Now().Add(s.cfg.DownTime.D())
			if werr := s.state.MarkDown(acc.machine.Key(), err.Error(), until); werr != nil {
				s.sayf("warning: cannot remember %s as down: %v", acc.machine.Label(), werr)
			} else {
				s.sayf("%s is skipped for the next %s", acc.machine.Label(), s.cfg.DownTime.D())
			}
		}
	}
	return code
}

// machineProblem reports whether a transport error says the machine
// itself is unusable, whatever the derivation: the connection broke, a
// remote step got no answer in time (a login shell that hangs), or a
// remote command failed (guix missing, exit 127; the import refused
// because our signing key is not in the machine's ACL; the stream helper
// missing). Build failures and timeouts are the derivation's; problems on
// our side (exporting inputs, verifying outputs) are not the machine's.
func machineProblem(err error) bool {
	var re *transport.RemoteError
	switch {
	case errors.Is(err, transport.ErrBuildFailed), errors.Is(err, transport.ErrTimeout):
		return false
	case errors.Is(err, transport.ErrConnectionLost), errors.Is(err, transport.ErrRemoteCommandMissing),
		errors.Is(err, transport.ErrUnresponsive), errors.Is(err, transport.ErrRefused),
		errors.As(err, &re):
		return true
	}
	return false
}

// readPaths reads one line of space-separated store paths.
func readPaths(in *bufio.Reader) ([]string, error) {
	line, err := in.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the daemon closed the pipe")
		}
		return nil, err
	}
	paths := strings.Fields(line)
	for _, p := range paths {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("%q is not an absolute store path", abbrev(p))
		}
	}
	return paths, nil
}

// SigningKeyBeside is the signing key in the directory of the ACL file
// acl, where Guix keeps both; "" (the default) when acl is empty.
func SigningKeyBeside(acl string) string {
	if acl == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(acl), "signing-key.sec")
}
