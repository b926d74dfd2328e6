package hook

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/candidates"
	"github.com/guix-offload/guix-offload/scm"
)

func f64(v float64) *float64 { return &v }

func mach(origin, name string, port int, hostKey string, systems, features []string, speed float64) *scm.Machine {
	m := &scm.Machine{Name: name, Port: port, User: "offload", HostKey: hostKey, Systems: systems, Features: features,
		ParallelBuilds: 1, Speed: speed, OverloadThreshold: f64(0.8)}
	if origin == scm.OriginDiscovered {
		m.Status = &scm.Status{Instance: name, Load: scm.Unknown, FreeDisk: scm.Unknown}
	}
	return m
}

func sameLoad(m *scm.Machine, load float64, disk int64) bool {
	l, d := m.LoadAndDisk()
	return l == load && d == disk
}

func names(ms []*scm.Machine) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Origin()+":"+m.Key())
	}
	return out
}

func TestMergeAndMatch(t *testing.T) {
	x86 := []string{"x86_64-linux"}
	both := []string{"x86_64-linux", "aarch64-linux"}
	kvm := []string{"kvm"}
	const keyA, keyB, keyC = "ssh-ed25519 AAAAA comment", "ssh-ed25519 BBBBB", "ssh-ed25519 CCCCC"

	static := func() []*scm.Machine {
		return []*scm.Machine{mach(scm.OriginStatic, "a", 22, keyA, x86, nil, 1)}
	}
	tests := []struct {
		name       string
		discovered []*scm.Machine
		system     string
		features   []string
		want       []string // Plan.Try, in order
	}{
		{"static only", nil, "x86_64-linux", nil, []string{"machines.scm:a:22"}},
		{"static lacks system", nil, "aarch64-linux", nil, nil},
		{"static lacks feature", nil, "x86_64-linux", kvm, nil},
		{"discovered adds a machine", []*scm.Machine{mach(scm.OriginDiscovered, "b", 22, keyB, both, kvm, 2)},
			"x86_64-linux", nil, []string{"discovered:b:22", "machines.scm:a:22"}},
		{"discovered with feature", []*scm.Machine{mach(scm.OriginDiscovered, "b", 22, keyB, both, kvm, 0.5)},
			"x86_64-linux", kvm, []string{"discovered:b:22"}},
		{"discovered other system", []*scm.Machine{mach(scm.OriginDiscovered, "b", 22, keyB, both, nil, 1)},
			"aarch64-linux", nil, []string{"discovered:b:22"}},
		{"same host key: static wins", []*scm.Machine{mach(scm.OriginDiscovered, "a.local", 22, "ssh-ed25519 AAAAA", both, kvm, 9)},
			"x86_64-linux", nil, []string{"machines.scm:a:22"}},
		{"same host key, discovered-only system: static wins, no match", []*scm.Machine{mach(scm.OriginDiscovered, "a.local", 22, keyA, both, kvm, 9)},
			"aarch64-linux", nil, nil},
		{"same name and port: static wins", []*scm.Machine{mach(scm.OriginDiscovered, "a", 22, keyC, both, kvm, 9)},
			"x86_64-linux", kvm, nil},
		{"same name, other port: both", []*scm.Machine{mach(scm.OriginDiscovered, "a", 2222, keyC, x86, nil, 1)},
			"x86_64-linux", nil, []string{"machines.scm:a:22", "discovered:a:2222"}},
		{"two discovered with one name: first wins", []*scm.Machine{
			mach(scm.OriginDiscovered, "b", 22, keyB, x86, nil, 1), mach(scm.OriginDiscovered, "b", 22, keyC, x86, nil, 3)},
			"x86_64-linux", nil, []string{"machines.scm:a:22", "discovered:b:22"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Decide(Request{Willing: true, System: tc.system, Drv: "/gnu/store/x.drv", Features: tc.features},
				candidates.Merge(static(), tc.discovered), nil)
			if got := names(p.Try); !slices.Equal(got, tc.want) {
				t.Errorf("try %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMergeTakesLoadFromAnnouncement(t *testing.T) {
	s := mach(scm.OriginStatic, "a", 22, "ssh-ed25519 AAAA", []string{"x86_64-linux"}, nil, 1)
	d := mach(scm.OriginDiscovered, "10.0.0.1", 22, "ssh-ed25519 AAAA", []string{"x86_64-linux"}, nil, 1)
	d.Status.Load, d.Status.FreeDisk = 0.95, 5000
	p := Decide(Request{System: "x86_64-linux", Drv: "/gnu/store/x.drv"}, candidates.Merge([]*scm.Machine{s}, []*scm.Machine{d}), nil)
	if len(p.Try) != 0 || len(p.Busy) != 1 || !strings.Contains(p.Busy[0].Reason, "load 0.95") {
		t.Fatalf("plan %+v", p)
	}
}

// A discovered machine with the name and port of a static one but another
// host key is another host: its load and free disk are not the static
// machine's.
func TestMergeLoadNeedsSameHostKey(t *testing.T) {
	s := mach(scm.OriginStatic, "a", 22, "ssh-ed25519 AAAA", []string{"x86_64-linux"}, nil, 1)
	d := mach(scm.OriginDiscovered, "a", 22, "ssh-ed25519 BBBB other", []string{"x86_64-linux"}, nil, 1)
	d.Status.Load, d.Status.FreeDisk = 0.95, 5
	ms := candidates.Merge([]*scm.Machine{s}, []*scm.Machine{d})
	if load, disk := ms[0].LoadAndDisk(); len(ms) != 1 || load != scm.Unknown || disk != scm.Unknown {
		t.Fatalf("merged %+v", ms[0])
	}
	p := Decide(Request{System: "x86_64-linux", Drv: "/gnu/store/x.drv"}, ms, nil)
	if len(p.Try) != 1 || len(p.Busy) != 0 {
		t.Fatalf("plan %+v", p)
	}
	// The same host key (another comment) is the same host.
	d.HostKey = "ssh-ed25519 AAAA root@a"
	if ms := candidates.Merge([]*scm.Machine{s}, []*scm.Machine{d}); !sameLoad(ms[0], 0.95, 5) {
		t.Fatalf("same host key: merged %+v", ms[0])
	}
}

func TestRanking(t *testing.T) {
	x86 := []string{"x86_64-linux"}
	slow := mach(scm.OriginStatic, "slow", 22, "", x86, nil, 0.5)
	fastBusy := mach(scm.OriginDiscovered, "fastbusy", 22, "", x86, nil, 3)
	fastBusy.Status.Load = 0.9
	fastLoaded := mach(scm.OriginDiscovered, "fastloaded", 22, "", x86, nil, 2)
	fastLoaded.Status.Load = 0.5
	fastIdle := mach(scm.OriginDiscovered, "fastidle", 22, "", x86, nil, 2)
	fastIdle.Status.Load = 0.1
	fastUnknown := mach(scm.OriginStatic, "fastunknown", 22, "", x86, nil, 2)
	noLimit := mach(scm.OriginDiscovered, "nolimit", 22, "", x86, nil, 1)
	noLimit.Status.Load, noLimit.OverloadThreshold = 5, nil
	full := mach(scm.OriginDiscovered, "full", 22, "", x86, nil, 9)
	full.Status.FreeDisk = 99
	down := mach(scm.OriginStatic, "down", 22, "", x86, nil, 10)
	p := Decide(Request{System: "x86_64-linux", Drv: "/gnu/store/x.drv"},
		[]*scm.Machine{slow, fastBusy, fastLoaded, fastUnknown, fastIdle, noLimit, full, down},
		map[string]string{"down:22": "down for 1m more: refused"})
	want := []string{"discovered:fastidle:22", "discovered:fastloaded:22", "machines.scm:fastunknown:22",
		"discovered:nolimit:22", "machines.scm:slow:22"}
	if got := names(p.Try); !slices.Equal(got, want) {
		t.Errorf("try %v, want %v", got, want)
	}
	if len(p.Busy) != 2 || len(p.Down) != 1 || p.Matching != 8 {
		t.Errorf("busy %v, down %v, matching %d", p.Busy, p.Down, p.Matching)
	}
}

func TestFinal(t *testing.T) {
	now := time.Unix(1e9, 0)
	m := mach(scm.OriginStatic, "a", 22, "", []string{"x86_64-linux"}, nil, 1)
	busy := []Skip{{m, "all 1 build slots taken"}}
	down := []Skip{{m, "refused"}}
	tests := []struct {
		name     string
		plan     Plan
		first    time.Time
		want     Answer
		contains string
	}{
		{"no match", Plan{Request: Request{Willing: true, System: "x86_64-linux"}}, time.Time{}, Decline, "no machine builds"},
		{"busy, willing", Plan{Request: Request{Willing: true, System: "x86_64-linux"}, Matching: 1, Busy: busy}, time.Time{}, Postpone, "busy"},
		{"down, willing, local", Plan{Request: Request{Willing: true, System: "x86_64-linux"}, Matching: 1, Down: down}, time.Time{}, Decline, "building locally"},
		{"down, willing, foreign", Plan{Request: Request{Willing: true, System: "armhf-linux"}, Matching: 1, Down: down}, now, Postpone, "waiting"},
		{"down, willing, i686 on x86_64", Plan{Request: Request{Willing: true, System: "i686-linux"}, Matching: 1, Down: down}, time.Time{}, Decline, "building locally"},
		{"down, unwilling", Plan{Request: Request{System: "x86_64-linux"}, Matching: 1, Down: down}, now.Add(-time.Minute), Postpone, "waiting"},
		{"down too long", Plan{Request: Request{System: "x86_64-linux"}, Matching: 1, Down: down}, now.Add(-time.Hour), Decline, "giving up"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, msg := tc.plan.Final(LocalSystems("x86_64-linux"), now, tc.first, 30*time.Minute)
			if a != tc.want || !strings.Contains(msg, tc.contains) || strings.HasPrefix(msg, "#") {
				t.Errorf("%s %q", a, msg)
			}
		})
	}
}

func TestLocalSystems(t *testing.T) {
	for sys, want := range map[string][]string{
		"x86_64-linux":  {"x86_64-linux", "i686-linux"},
		"i686-linux":    {"i686-linux"},
		"riscv64-linux": {"riscv64-linux"},
		"x86_64-gnu":    {"x86_64-gnu"},
	} {
		if got := LocalSystems(sys); !slices.Equal(got, want) {
			t.Errorf("LocalSystems(%q) = %q, want %q", sys, got, want)
		}
	}
	got := LocalSystems("aarch64-linux")
	if runtime.GOARCH != "arm64" && !slices.Equal(got, []string{"aarch64-linux"}) {
		t.Errorf("LocalSystems(aarch64-linux) on %s = %q", runtime.GOARCH, got)
	}
	if len(got) > 2 || got[0] != "aarch64-linux" || (len(got) == 2 && got[1] != "armhf-linux") {
		t.Errorf("LocalSystems(aarch64-linux) = %q", got)
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		line string
		want Request
		err  string
	}{
		{"1 x86_64-linux /gnu/store/q6j-t-a2.drv ", Request{Willing: true, System: "x86_64-linux", Drv: "/gnu/store/q6j-t-a2.drv"}, ""},
		{"1 x86_64-linux /gnu/store/f-t3.drv kvm,big-parallel", Request{true, "x86_64-linux", "/gnu/store/f-t3.drv", []string{"kvm", "big-parallel"}}, ""},
		{"0 x86_64-linux /gnu/store/w-t.drv ", Request{System: "x86_64-linux", Drv: "/gnu/store/w-t.drv"}, ""},
		{"0 x86_64-linux /gnu/store/w-t.drv", Request{System: "x86_64-linux", Drv: "/gnu/store/w-t.drv"}, ""},
		{"", Request{}, "want"},
		{"1 x86_64-linux", Request{}, "want"},
		{"yes x86_64-linux /gnu/store/a.drv ", Request{}, "WILLING"},
		{"1 x86_64-linux /gnu/store/a.tar ", Request{}, "not a derivation"},
		{"1  /gnu/store/a.drv ", Request{}, "bad system"},
		{"1 x86_64-linux /gnu/store/a.drv kvm,", Request{}, "empty feature"},
		{"1 x86_64-linux /gnu/store/a.drv kvm extra", Request{}, "want"},
	}
	for _, tc := range tests {
		got, err := ParseRequest(tc.line)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.line, err, tc.err)
			}
			continue
		}
		if err != nil || got.Willing != tc.want.Willing || got.System != tc.want.System || got.Drv != tc.want.Drv || !slices.Equal(got.Features, tc.want.Features) {
			t.Errorf("%q: %+v, %v", tc.line, got, err)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"1 x86_64-linux /gnu/store/q6j-t-a2.drv ", "0 i686-linux /gnu/store/x.drv kvm,big-parallel", "", "1 a b c d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRequest(line)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "bad request") {
				t.Fatalf("error %q", err)
			}
			return
		}
		// A parsed request prints back as the daemon would write it.
		w := "0"
		if r.Willing {
			w = "1"
		}
		back := w + " " + r.System + " " + r.Drv + " " + strings.Join(r.Features, ",")
		if back != line && back != line+" " {
			t.Fatalf("%q parsed as %+v, prints as %q", line, r, back)
		}
	})
}

func FuzzParseArgs(f *testing.F) {
	f.Add("x86_64-linux", "3600", "1", "7200")
	f.Add("", "-1", "2", "x")
	f.Fuzz(func(t *testing.T, a, b, c, d string) {
		got, err := ParseArgs([]string{a, b, c, d})
		if err == nil && (got.MaxSilentTime < 0 || got.BuildTimeout < 0) {
			t.Fatalf("negative durations from %q %q", b, d)
		}
	})
}

func TestState(t *testing.T) {
	st := State{Dir: t.TempDir()}
	now := time.Unix(2e9, 0)
	if err := st.MarkDown("b1:22", "connection refused", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := st.Down(now); !strings.Contains(got["b1:22"], "down for 1m0s more: connection refused") {
		t.Errorf("down %v", got)
	}
	if got := st.Down(now.Add(2 * time.Minute)); len(got) != 0 {
		t.Errorf("still down after its time: %v", got)
	}
	first, err := st.FirstPostponed("/gnu/store/a.drv", now)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := st.FirstPostponed("/gnu/store/a.drv", now.Add(time.Minute)); !again.Equal(first) {
		t.Errorf("first postponement moved: %v, %v", first, again)
	}
	st.ClearPostponed("/gnu/store/a.drv")
	if again, _ := st.FirstPostponed("/gnu/store/a.drv", now.Add(time.Hour)); !again.Equal(now.Add(time.Hour)) {
		t.Errorf("cleared record still used: %v", again)
	}
	// Garbage in a record is ignored, not trusted.
	os.WriteFile(filepath.Join(st.Dir, "down", "b2:22"), []byte("{not json"), 0o644)
	if got := st.Down(now); len(got) != 1 {
		t.Errorf("down %v", got)
	}
}
