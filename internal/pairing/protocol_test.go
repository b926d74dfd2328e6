package pairing

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/pki"
)

// seeded is a deterministic random source, so every run of a test sees
// the same keys and nonces.
func seeded(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

func testIdentity(t testing.TB, role, name string, seed uint64) Identity {
	t.Helper()
	r := seeded(seed)
	gk, err := pki.GenerateKey(pki.TypeECDSA, r)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := ed25519.GenerateKey(r)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{Role: role, Name: name, SigningKey: string(gk.Public().MarshalSexp()),
		SSHKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sk)))}
	if role == RoleMachine {
		id.User, id.Port = "offload", 22
	}
	return id
}

// side records what happened on one side of a pairing.
type side struct {
	mu      sync.Mutex
	code    Code
	applied *Identity
	undone  bool
}

func (s *side) options(self Identity, seed uint64, decide func(ctx context.Context, code Code) (bool, error)) Options {
	return Options{
		Self: self,
		Rand: seeded(seed),
		Confirm: func(ctx context.Context, code Code, _ *Identity) (bool, error) {
			s.mu.Lock()
			s.code = code
			s.mu.Unlock()
			return decide(ctx, code)
		},
		Apply: func(_ context.Context, peer *Identity) (Undo, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.applied = peer
			return func() error {
				s.mu.Lock()
				defer s.mu.Unlock()
				s.undone = true
				return nil
			}, nil
		},
	}
}

// changed reports whether this side kept a change.
func (s *side) changed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied != nil && !s.undone
}

func accept(context.Context, Code) (bool, error) { return true, nil }

type outcome struct {
	res *Result
	err error
}

// pair runs both sides over an in-memory pipe.
func pair(ctx context.Context, master, machine Options) (m, b outcome) {
	mc, bc := net.Pipe()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); m.res, m.err = Initiate(ctx, mc, master) }()
	go func() { defer wg.Done(); b.res, b.err = Respond(ctx, bc, machine) }()
	wg.Wait()
	return m, b
}

func TestPairing(t *testing.T) {
	master := testIdentity(t, RoleMaster, "master", 1)
	machine := testIdentity(t, RoleMachine, "builder1", 2)
	var ms, bs side
	m, b := pair(t.Context(), ms.options(master, 10, accept), bs.options(machine, 11, accept))
	if m.err != nil || b.err != nil {
		t.Fatalf("master: %v; machine: %v", m.err, b.err)
	}
	if ms.code != bs.code || len(ms.code) != 6 {
		t.Fatalf("codes %q and %q, want the same six digits", ms.code, bs.code)
	}
	if m.res.Code != ms.code || b.res.Code != bs.code {
		t.Errorf("results carry other codes")
	}
	if *ms.applied != machine || *bs.applied != master {
		t.Errorf("applied %+v and %+v, want each other's identity", ms.applied, bs.applied)
	}
	if !ms.changed() || !bs.changed() {
		t.Errorf("a side undid its changes after success")
	}
	if got := ms.code.String(); len(got) != 7 || got[3] != ' ' {
		t.Errorf("code prints as %q, want DDD DDD", got)
	}
	if !ms.code.Matches(ms.code.String()) || !ms.code.Matches(string(ms.code)) || ms.code.Matches("12345") {
		t.Errorf("Code.Matches is wrong")
	}
}

// The code changes with every input.
func TestDeriveCode(t *testing.T) {
	base := [][]byte{[]byte("master"), []byte("machine"), []byte("nonce-m"), []byte("nonce-b")}
	code := DeriveCode(base[0], base[1], base[2], base[3])
	for i := range base {
		alt := append([][]byte(nil), base...)
		alt[i] = append([]byte("x"), base[i]...)
		if c := DeriveCode(alt[0], alt[1], alt[2], alt[3]); c == code {
			t.Errorf("changing input %d leaves the code %s", i, c)
		}
	}
	// Framing: moving a byte between fields changes it too.
	if DeriveCode([]byte("ab"), []byte("c"), base[2], base[3]) == DeriveCode([]byte("a"), []byte("bc"), base[2], base[3]) {
		t.Errorf("fields are not framed")
	}
}

// compare plays two operators reading each other's code: each accepts
// only when the code shown on the other side is the one shown here.
func compare() (master, machine func(context.Context, Code) (bool, error)) {
	mc, bc := make(chan Code, 1), make(chan Code, 1)
	f := func(mine, theirs chan Code) func(context.Context, Code) (bool, error) {
		return func(ctx context.Context, code Code) (bool, error) {
			mine <- code
			select {
			case c := <-theirs:
				return c == code, nil
			case <-ctx.Done():
				return false, ctx.Err()
			}
		}
	}
	return f(mc, bc), f(bc, mc)
}

// A relay between the two that substitutes its own keys runs a full
// pairing with each side: the two codes differ, both operators refuse,
// and nothing is written on either side.
func TestRelaySubstitutingKeys(t *testing.T) {
	master := testIdentity(t, RoleMaster, "master", 1)
	machine := testIdentity(t, RoleMachine, "builder1", 2)
	for trial := range uint64(20) {
		fakeMachine := testIdentity(t, RoleMachine, "builder1", 100+trial)
		fakeMaster := testIdentity(t, RoleMaster, "master", 200+trial)
		var ms, bs, rs side
		decideM, decideB := compare()
		m1, r1 := net.Pipe()
		r2, b2 := net.Pipe()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		var wg sync.WaitGroup
		var merr, berr error
		wg.Add(4)
		go func() { defer wg.Done(); _, merr = Initiate(ctx, m1, ms.options(master, 1000+trial, decideM)) }()
		go func() { defer wg.Done(); _, berr = Respond(ctx, b2, bs.options(machine, 2000+trial, decideB)) }()
		go func() { defer wg.Done(); _, _ = Respond(ctx, r1, rs.options(fakeMachine, 3000+trial, accept)) }()
		go func() { defer wg.Done(); _, _ = Initiate(ctx, r2, rs.options(fakeMaster, 4000+trial, accept)) }()
		wg.Wait()
		cancel()
		if ms.code == bs.code {
			t.Errorf("trial %d: the relay made both sides show %s", trial, ms.code)
		}
		if !errors.Is(merr, ErrRefused) || !errors.Is(berr, ErrRefused) {
			t.Errorf("trial %d: master %v, machine %v; want both refused", trial, merr, berr)
		}
		if ms.changed() || bs.changed() {
			t.Errorf("trial %d: a side kept changes", trial)
		}
	}
}

// relay forwards lines from one side to the other, rewriting each with
// edit.
func relay(t *testing.T, from, to net.Conn, edit func(message) message) {
	c := newConn(from)
	for {
		line, err := c.r.ReadBytes('\n')
		if err != nil {
			to.Close()
			return
		}
		var m message
		if json.Unmarshal(line, &m) == nil {
			line, _ = json.Marshal(edit(m))
			line = append(line, '\n')
		}
		if _, err := to.Write(line); err != nil {
			from.Close()
			return
		}
	}
}

func TestRelayAlteringMessages(t *testing.T) {
	master := testIdentity(t, RoleMaster, "master", 1)
	machine := testIdentity(t, RoleMachine, "builder1", 2)
	fakeMaster := testIdentity(t, RoleMaster, "master", 3)
	fakeMachine := testIdentity(t, RoleMachine, "builder1", 4)
	encode := func(id Identity) string { b, _ := json.Marshal(id); return string(b) }
	none := func(m message) message { return m }
	tests := []struct {
		name           string
		toMachine      func(message) message
		toMaster       func(message) message
		wantMachineErr error
	}{
		{"master's reveal replaced", func(m message) message {
			if m.Type == msgReveal {
				m.Identity = encode(fakeMaster)
			}
			return m
		}, none, ErrTampered},
		{"master's nonce replaced", func(m message) message {
			if m.Type == msgReveal {
				m.Nonce = strings.Repeat("00", nonceSize)
			}
			return m
		}, none, ErrTampered},
		{"machine's keys replaced", none, func(m message) message {
			if m.Type == msgHello {
				m.Identity = encode(fakeMachine)
			}
			return m
		}, ErrRefused},
		{"machine's nonce replaced", none, func(m message) message {
			if m.Type == msgHello {
				m.Nonce = strings.Repeat("11", nonceSize)
			}
			return m
		}, ErrRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ms, bs side
			decideM, decideB := compare()
			m1, r1 := net.Pipe()
			r2, b2 := net.Pipe()
			go relay(t, r1, r2, tc.toMachine)
			go relay(t, r2, r1, tc.toMaster)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			var merr, berr error
			wg.Add(2)
			go func() { defer wg.Done(); _, merr = Initiate(ctx, m1, ms.options(master, 10, decideM)) }()
			go func() {
				defer wg.Done()
				_, berr = Respond(ctx, b2, bs.options(machine, 11, decideB))
				if berr != nil {
					cancel() // the master's operator walks away too
				}
			}()
			wg.Wait()
			// When both operators refuse, either may be first.
			if !errors.Is(berr, tc.wantMachineErr) && !(tc.wantMachineErr == ErrRefused && errors.Is(berr, ErrPeerRefused)) {
				t.Errorf("machine: %v, want %v", berr, tc.wantMachineErr)
			}
			if merr == nil {
				t.Errorf("master paired")
			}
			if ms.changed() || bs.changed() {
				t.Errorf("a side kept changes")
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	master := testIdentity(t, RoleMaster, "master", 1)
	machine := testIdentity(t, RoleMachine, "builder1", 2)
	refuse := func(context.Context, Code) (bool, error) { return false, nil }
	wrong := func(_ context.Context, c Code) (bool, error) { return c.Matches("000000") && c.Matches("000001"), nil }
	eof := func(context.Context, Code) (bool, error) { return false, io.EOF }
	wait := func(ctx context.Context, _ Code) (bool, error) { <-ctx.Done(); return false, ctx.Err() }
	tests := []struct {
		name               string
		master, machine    func(context.Context, Code) (bool, error)
		window             time.Duration
		wantMaster, wantMc error
	}{
		{"machine refuses", accept, refuse, 0, ErrPeerRefused, ErrRefused},
		{"master refuses", refuse, accept, 0, ErrRefused, ErrPeerRefused},
		{"wrong code on the master", wrong, accept, 0, ErrRefused, ErrPeerRefused},
		{"wrong code on the machine", wait, wrong, 0, ErrPeerRefused, ErrRefused},
		{"end of input", eof, wait, 0, ErrRefused, ErrPeerRefused},
		{"window ends", wait, wait, 200 * time.Millisecond, context.DeadlineExceeded, context.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			if tc.window > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.window)
				defer cancel()
			}
			var ms, bs side
			m, b := pair(ctx, ms.options(master, 10, tc.master), bs.options(machine, 11, tc.machine))
			if !errors.Is(m.err, tc.wantMaster) || !errors.Is(b.err, tc.wantMc) {
				t.Errorf("master: %v (want %v); machine: %v (want %v)", m.err, tc.wantMaster, b.err, tc.wantMc)
			}
			if ms.changed() || bs.changed() || ms.applied != nil || bs.applied != nil {
				t.Errorf("a side applied changes")
			}
		})
	}
}

// When one side cannot make its changes, the other undoes its own.
func TestApplyFailure(t *testing.T) {
	master := testIdentity(t, RoleMaster, "master", 1)
	machine := testIdentity(t, RoleMachine, "builder1", 2)
	broken := func(context.Context, *Identity) (Undo, error) { return nil, errors.New("disk full") }
	t.Run("master", func(t *testing.T) {
		var ms, bs side
		mo := ms.options(master, 10, accept)
		mo.Apply = broken
		m, b := pair(t.Context(), mo, bs.options(machine, 11, accept))
		if !errors.Is(m.err, ErrApply) || !errors.Is(b.err, ErrApply) || !strings.Contains(b.err.Error(), "disk full") {
			t.Errorf("master: %v; machine: %v; want both ErrApply naming the cause", m.err, b.err)
		}
		if bs.changed() || !bs.undone {
			t.Errorf("the machine kept its changes")
		}
	})
	t.Run("machine", func(t *testing.T) {
		var ms, bs side
		bo := bs.options(machine, 11, accept)
		bo.Apply = broken
		m, b := pair(t.Context(), ms.options(master, 10, accept), bo)
		if !errors.Is(m.err, ErrApply) || !errors.Is(b.err, ErrApply) {
			t.Errorf("master: %v; machine: %v; want both ErrApply", m.err, b.err)
		}
		if ms.applied != nil {
			t.Errorf("the master applied changes")
		}
	})
}

// A peer that checks out badly (not the machine the operator picked) is
// refused before a code is shown.
func TestCheck(t *testing.T) {
	master := testIdentity(t, RoleMaster, "master", 1)
	machine := testIdentity(t, RoleMachine, "builder1", 2)
	var ms, bs side
	mo := ms.options(master, 10, accept)
	mo.Check = func(p *Identity) error { return errors.New("not the machine listed") }
	m, b := pair(t.Context(), mo, bs.options(machine, 11, accept))
	if m.err == nil || b.err == nil || ms.code != "" || bs.code != "" {
		t.Errorf("master: %v; machine: %v; codes %q %q", m.err, b.err, ms.code, bs.code)
	}
}

func TestIdentityValidate(t *testing.T) {
	good := testIdentity(t, RoleMachine, "builder1", 2)
	for name, edit := range map[string]func(*Identity){
		"path in name":   func(id *Identity) { id.Name = "../etc" },
		"empty name":     func(id *Identity) { id.Name = "" },
		"bad user":       func(id *Identity) { id.User = "root;rm" },
		"port":           func(id *Identity) { id.Port = 0 },
		"ssh comment":    func(id *Identity) { id.SSHKey += " evil@host" },
		"ssh options":    func(id *Identity) { id.SSHKey = "command=\"sh\" " + id.SSHKey },
		"two ssh keys":   func(id *Identity) { id.SSHKey += "\n" + id.SSHKey },
		"guix key":       func(id *Identity) { id.SigningKey = "(public-key)" },
		"role":           func(id *Identity) { id.Role = "admin" },
		"master w/ user": func(id *Identity) { id.Role = RoleMaster },
	} {
		id := good
		edit(&id)
		if err := id.Validate(); err == nil {
			t.Errorf("%s: accepted %+v", name, id)
		}
	}
	if err := good.Validate(); err != nil {
		t.Errorf("good identity: %v", err)
	}
}

// A master that goes away after the machine applied its changes (a crash,
// a cut cable) leaves nothing on the machine: without "done" it undoes.
func TestMasterVanishes(t *testing.T) {
	master := testIdentity(t, RoleMaster, "master", 1)
	machine := testIdentity(t, RoleMachine, "builder1", 2)
	mc, bc := net.Pipe()
	var ms, bs side
	mo := ms.options(master, 10, accept)
	ctx, cancel := context.WithCancel(t.Context())
	mo.Apply = func(context.Context, *Identity) (Undo, error) {
		mc.Close() // gone before it could say done
		<-ctx.Done()
		return nil, ctx.Err()
	}
	done := make(chan struct{})
	go func() { _, _ = Initiate(ctx, mc, mo); close(done) }()
	defer func() { cancel(); <-done }()
	_, err := Respond(t.Context(), bc, bs.options(machine, 11, accept))
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("machine: %v, want the lost connection", err)
	}
	if bs.applied == nil || !bs.undone {
		t.Errorf("the machine kept its changes (applied %v, undone %v)", bs.applied != nil, bs.undone)
	}
}
