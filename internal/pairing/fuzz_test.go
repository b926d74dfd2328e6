package pairing

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"testing"
)

// stream is a connection whose peer sent in and reads nothing back.
type stream struct{ io.Reader }

func (stream) Write(p []byte) (int, error) { return len(p), nil }
func (stream) Close() error                { return nil }

// masterTranscript is what a genuine master sends, accepting: its
// commitment does not depend on the machine's nonce, so it is a valid
// exchange for any machine.
func masterTranscript(t testing.TB) []byte {
	id := testIdentity(t, RoleMaster, "master", 1)
	self, err := id.encode()
	if err != nil {
		t.Fatal(err)
	}
	n := bytes.Repeat([]byte{7}, nonceSize)
	c := Commitment(self, n)
	var b bytes.Buffer
	for _, m := range []message{
		{Type: msgCommit, Version: Version, Commit: hex.EncodeToString(c[:])},
		{Type: msgReveal, Identity: string(self), Nonce: hex.EncodeToString(n)},
		{Type: msgConfirm, Accept: true},
		{Type: msgDone},
	} {
		line, _ := json.Marshal(m)
		b.Write(append(line, '\n'))
	}
	return b.Bytes()
}

// FuzzRespond feeds the build machine's side whatever a stranger on the
// LAN may send: it must not panic, and it applies changes only for a
// master whose reveal matched its commitment, once.
func FuzzRespond(f *testing.F) {
	f.Add(masterTranscript(f))
	machine := testIdentity(f, RoleMachine, "builder1", 2)
	f.Fuzz(func(t *testing.T, in []byte) {
		applied := 0
		var peer *Identity
		o := Options{
			Self:    machine,
			Rand:    seeded(3),
			Confirm: func(context.Context, Code, *Identity) (bool, error) { return true, nil },
			Apply: func(_ context.Context, p *Identity) (Undo, error) {
				applied++
				peer = p
				return func() error { applied--; return nil }, nil
			},
		}
		res, err := Respond(t.Context(), stream{bytes.NewReader(in)}, o)
		if err == nil {
			if applied != 1 || res.Peer != peer || peer.Validate() != nil {
				t.Fatalf("paired with %+v after %d applies", peer, applied)
			}
		} else if applied != 0 {
			t.Fatalf("failed (%v) but kept %d applied changes", err, applied)
		}
	})
}

// The fuzz target's seed is a complete pairing.
func TestMasterTranscript(t *testing.T) {
	machine := testIdentity(t, RoleMachine, "builder1", 2)
	var s side
	res, err := Respond(t.Context(), stream{bytes.NewReader(masterTranscript(t))}, s.options(machine, 3, accept))
	if err != nil || res.Peer.Name != "master" || !s.changed() {
		t.Fatalf("Respond: %v", err)
	}
}
