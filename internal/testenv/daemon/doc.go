// Package daemon plays guix-daemon's side of the offload-hook protocol in
// tests, following Guix's nix/libstore/build.cc (tryBuildHook, buildDone)
// and nix/libutil/util.cc (Agent) and what a real daemon was seen doing
// (../shared/fixtures/HOOK-PROTOCOL.md). It is a test stand-in, never
// shipped.
//
// Start with [Start]: it runs `GUIX offload SYSTEM MAX-SILENT-TIME
// PRINT-BUILD-TRACE BUILD-TIMEOUT` with cwd /, in its own session, stdin a
// pipe, stdout and stderr one pipe, fd 4 the build-log pipe (fd 3 is
// /dev/null). [Hook.Request] writes one request line and reads until the
// first line starting with "# ", like the daemon; [Hook.Accept] writes the
// inputs and outputs lines (each path followed by a space, as the daemon
// does), closes stdin, collects the hook's messages and fd 4 until both
// pipes are closed, waits, and interprets the exit status as the daemon
// does ([Outcome]). [Hook.Kill] ends a hook the daemon's way: SIGKILL to
// its process group.
//
//	h := daemon.Start(t, daemon.Options{Program: bin, System: "x86_64-linux"})
//	r, err := h.Request(ctx, daemon.Req{Willing: true, System: "x86_64-linux", Drv: drv})
//	if r.Answer == daemon.Accept {
//		res, err := h.Accept(ctx, inputs, outputs)
//		// res.Outcome, res.Log, res.Messages
//	}
package daemon
