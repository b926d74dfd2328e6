package transport

import (
	"context"
	"io"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/worker"
)

// checkDirect is the rest of [Check] when the machine's daemon answers
// over the SSH connection, the path builds then take: the round trip
// goes through it (add-text-to-store, import, export) and no guix
// command runs on the machine.
func checkDirect(ctx context.Context, client *ssh.Client, p Probe, r *Report, conn *daemonConn) {
	defer conn.ch.Close()
	defer context.AfterFunc(ctx, func() { conn.ch.Close() })()
	r.add("daemon", true, "guix-daemon answers over SSH (store protocol %#x, %s): builds talk to it directly", conn.DaemonVersion, conn.via)
	if p.RoundTrip && !roundTripDirect(ctx, p, r, conn) {
		return
	}
	r.vitals(ctx, client, p)
}

// roundTripDirect is roundTrip through the machine's daemon.
func roundTripDirect(ctx context.Context, p Probe, r *Report, conn *daemonConn) bool {
	token := randomToken()
	item, err := localTestItem(ctx, p, "guix-offload-test-import-"+token, token)
	if err != nil {
		r.add("import", false, "make a test item locally: %v", err)
		return false
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b := &Build{Host: p.Name, Guix: p.Guix, Store: p.Store, LocalDaemon: p.LocalDaemon, SigningKey: p.SigningKey, Msg: io.Discard, Log: io.Discard}
	if err := sendDirect(ctx, cancel, b, conn, []string{item}); err != nil {
		r.add("import", false, "%v", err)
		return false
	}
	if valid, err := conn.ValidPaths([]string{item}); err != nil || len(valid) != 1 {
		r.add("import", false, "%s is still missing on the machine after the import (%v)", item, err)
		return false
	}
	r.add("import", true, "the machine accepts our signature (%s)", filepath.Base(item))

	content := "export " + token
	remote, err := conn.AddText("guix-offload-test-export-"+token, content, nil)
	if err != nil {
		r.add("export", false, "make a test item on the machine: %v", err)
		return false
	}
	if err := checkExport(p, remote, content, func(w io.Writer) error {
		return conn.ExportStream([]string{remote}, true, w)
	}); err != nil {
		r.add("export", false, "%v", err)
		return false
	}
	r.add("export", true, "its signature is authorized here (%s)", filepath.Base(remote))
	return true
}

// localTestItem adds a text item to the local store: through the local
// daemon when it answers, else with the local `guix repl -t machine`.
func localTestItem(ctx context.Context, p Probe, name, content string) (string, error) {
	if p.LocalDaemon != NoDaemon {
		socket := p.LocalDaemon
		if socket == "" {
			socket = worker.DefaultSocket
		}
		if local, err := dialLocalDaemon(ctx, socket); err == nil {
			defer local.ch.Close()
			return local.AddText(name, content, nil)
		}
	}
	return localTextItem(ctx, p.Guix, p.Store, name, content)
}
