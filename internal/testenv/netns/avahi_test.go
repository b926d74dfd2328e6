package netns

import (
	"slices"
	"strings"
	"testing"
)

func TestParseBrowse(t *testing.T) {
	out := `+;eth0;IPv4;build\032box;_guix-offload._tcp;local
=;eth0;IPv4;build\032box;_guix-offload._tcp;local;box.local;169.254.1.2;22;"b=x \"y\" \\z" "a=1;2"
-;eth0;IPv4;build\032box;_guix-offload._tcp;local
Failed to resolve service 'x'
`
	got := ParseBrowse(out)
	if len(got) != 3 || got[0].Event != "+" || got[2].Event != "-" {
		t.Fatalf("ParseBrowse: %+v", got)
	}
	if partial := ParseBrowse("+;eth0;IPv4;box;_guix-offload._tcp;local\n=;eth0;IPv4;box;_guix-offload._tcp;local;box.local;169.254.1.2;22;\"a=1"); len(partial) != 1 {
		t.Errorf("unterminated last line parsed: %+v", partial)
	}
	r := got[1]
	if r.Instance != "build box" || r.Host != "box.local" || r.Addr != "169.254.1.2" || r.Port != "22" ||
		!slices.Equal(r.TXT, []string{`b=x "y" \z`, "a=1;2"}) {
		t.Errorf("resolved line %+v", r)
	}
}

// FuzzParseBrowse: TXT strings rendered as avahi-browse renders them
// (quoted, with \" and \\ escaped) come back unchanged, and arbitrary
// input never crashes the parser.
func FuzzParseBrowse(f *testing.F) {
	f.Add("k=v", `x="1" \2`, "+;;;\\0;;\n=;;;;;;;;;\"\\")
	f.Fuzz(func(t *testing.T, a, b, junk string) {
		ParseBrowse(junk)
		if strings.ContainsAny(a+b, "\n") {
			return
		}
		quote := func(s string) string {
			return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
		}
		line := "=;eth0;IPv4;inst;_t._tcp;local;h.local;169.254.1.2;22;" + quote(a) + " " + quote(b) + "\n"
		got := ParseBrowse(line)
		if len(got) != 1 || !slices.Equal(got[0].TXT, []string{a, b}) {
			t.Fatalf("ParseBrowse(%q) = %+v; want TXT %q", line, got, []string{a, b})
		}
	})
}
