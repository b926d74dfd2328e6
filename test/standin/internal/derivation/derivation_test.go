package derivation

import (
	"reflect"
	"strings"
	"testing"
)

const hello = `Derive([("out","/gnu/store/5kb9ixcyfjhm0j0k6gqqqasa1kskbpvk-hello-2.12","","")],[("/gnu/store/q6jsaildg29rkvg6glh32nwvywiw9p6b-bash-5.1.drv",["out"]),("/gnu/store/w2ghn9ad0s4f6bqp42xic69vhi0fqckc-gcc-11.drv",["lib","out"])],["/gnu/store/3qfa38x5ns7r5wn2mjnd2vnrsj1wircv-builder.sh"],"x86_64-linux","/bin/sh",["-e","/gnu/store/3qfa38x5ns7r5wn2mjnd2vnrsj1wircv-builder.sh"],[("name","hello"),("out","/gnu/store/5kb9ixcyfjhm0j0k6gqqqasa1kskbpvk-hello-2.12"),("script","echo \"hi\"\\n\n\ttab"),("system","x86_64-linux")])`

func TestParse(t *testing.T) {
	d, err := Parse([]byte(hello))
	if err != nil {
		t.Fatal(err)
	}
	want := &Derivation{
		Outputs: []Output{{Name: "out", Path: "/gnu/store/5kb9ixcyfjhm0j0k6gqqqasa1kskbpvk-hello-2.12"}},
		Inputs: []Input{
			{Drv: "/gnu/store/q6jsaildg29rkvg6glh32nwvywiw9p6b-bash-5.1.drv", Outputs: []string{"out"}},
			{Drv: "/gnu/store/w2ghn9ad0s4f6bqp42xic69vhi0fqckc-gcc-11.drv", Outputs: []string{"lib", "out"}},
		},
		Sources: []string{"/gnu/store/3qfa38x5ns7r5wn2mjnd2vnrsj1wircv-builder.sh"},
		System:  "x86_64-linux",
		Builder: "/bin/sh",
		Args:    []string{"-e", "/gnu/store/3qfa38x5ns7r5wn2mjnd2vnrsj1wircv-builder.sh"},
		Env: [][2]string{
			{"name", "hello"},
			{"out", "/gnu/store/5kb9ixcyfjhm0j0k6gqqqasa1kskbpvk-hello-2.12"},
			{"script", "echo \"hi\"\\n\n\ttab"},
			{"system", "x86_64-linux"},
		},
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("Parse:\n got %#v\nwant %#v", d, want)
	}
	if got := d.String(); got != hello {
		t.Fatalf("String does not round-trip:\n got %s\nwant %s", got, hello)
	}
	if v, ok := d.Getenv("name"); !ok || v != "hello" {
		t.Errorf("Getenv(name) = %q, %v", v, ok)
	}
	if o, ok := d.Output("out"); !ok || o.Path != want.Outputs[0].Path {
		t.Errorf("Output(out) = %v, %v", o, ok)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", `offset 0: expected "Derive("`},
		{"not a derivation", "(derivation)", `offset 0: expected "Derive("`},
		{"unterminated string", `Derive([("out`, "unterminated string"},
		{"short tuple", `Derive([("out","/p","")],[],[],"s","b",[],[])`, `expected ","`},
		{"no outputs", `Derive([],[],[],"s","b",[],[])`, "no outputs"},
		{"trailing", `Derive([("out","/p","","")],[],[],"s","b",[],[])x`, "trailing data"},
		{"missing field", `Derive([("out","/p","","")],[],[],"s","b",[])`, `expected ","`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) = %v, want error containing %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestTrailingNewline(t *testing.T) {
	if _, err := Parse([]byte(hello + "\n")); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(hello))
	f.Add([]byte(`Derive([("out","/p","","")],[],[],"s","b",[],[])`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			return
		}
		// What parses must print back to something that parses to the
		// same derivation, and printing that must be stable.
		s := d.String()
		d2, err := Parse([]byte(s))
		if err != nil {
			t.Fatalf("re-parse %q: %v", s, err)
		}
		if !reflect.DeepEqual(d, d2) {
			t.Fatalf("round trip changed the derivation:\n%#v\n%#v", d, d2)
		}
		if d2.String() != s {
			t.Fatalf("String is not stable")
		}
	})
}
