package transport

import (
	"strings"
	"testing"
)

func TestParseReplString(t *testing.T) {
	const item = "/gnu/store/883yjkl46dxw9mzykykmbs0yzwyxm17z-test"
	for _, tc := range []struct {
		name, out, want, err string
	}{
		{"value", "(repl-version 0 1 1)\n(values (value \"" + item + "\"))\n", item, ""},
		{"escapes", "(repl-version 0 1 1)\n(values (value \"a\\\"b\\\\c\\nd\"))\n", "a\"b\\c\nd", ""},
		{"exception", "(repl-version 0 1 1)\n(exception misc-error (value \"no daemon\"))\n", "", "raised"},
		{"two values", "(repl-version 0 1 1)\n(values (value \"a\") (value \"b\"))\n", "", "unexpected answer"},
		{"not a string", "(repl-version 0 1 1)\n(values (value 42))\n", "", "unexpected answer"},
		{"no greeting", "GNU Guile 3.0.9\nscheme@(guix-user)> ", "", "not Guix's machine REPL"},
		{"nothing", "(repl-version 0 1 1)\n", "", "answered nothing"},
		{"empty", "", "", "not Guix's machine REPL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseReplString([]byte(tc.out))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseReplString = %q, %v; want an error saying %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseReplString = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// What addTextExpr writes, the REPL's answer reads back.
func TestAddTextExprQuoting(t *testing.T) {
	for _, s := range []string{"plain", `with "quotes" and \ and` + "\nnewline\ttab"} {
		e := addTextExpr("x", s)
		lit := e[strings.Index(e, `"x" `)+4 : strings.LastIndex(e, ")))")]
		got, err := parseReplString([]byte("(repl-version 0 1 1)\n(values (value " + lit + "))\n"))
		if err != nil || got != s {
			t.Errorf("round trip of %q through %s: %q, %v", s, lit, got, err)
		}
		if strings.Count(e, "\n") != 1 {
			t.Errorf("expression %q is not one line", e)
		}
	}
}

func TestTextItem(t *testing.T) {
	const store = "/gnu/store"
	good := store + "/883yjkl46dxw9mzykykmbs0yzwyxm17z-test"
	if p, err := textItem(good, store, "test"); err != nil || p != good {
		t.Errorf("textItem(%q) = %q, %v", good, p, err)
	}
	for _, bad := range []string{"/etc/passwd", store + "/883yjkl46dxw9mzykykmbs0yzwyxm17z-other", store + "/x/../883yjkl46dxw9mzykykmbs0yzwyxm17z-test", store + "/short-test"} {
		if _, err := textItem(bad, store, "test"); err == nil {
			t.Errorf("textItem(%q) accepted", bad)
		}
	}
}

// FuzzParseReplString: whatever a machine answers, parsing neither
// panics nor returns a string with an error.
func FuzzParseReplString(f *testing.F) {
	f.Add([]byte("(repl-version 0 1 1)\n(values (value \"/gnu/store/883yjkl46dxw9mzykykmbs0yzwyxm17z-test\"))\n"))
	f.Add([]byte("(repl-version 0 1 1)\n(exception misc-error (value \"x\"))\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		s, err := parseReplString(out)
		if err != nil && s != "" {
			t.Fatalf("both %q and %v", s, err)
		}
		if err == nil {
			if _, err := textItem(s, "/gnu/store", "test"); err == nil && strings.ContainsAny(s, "\n\x00") {
				t.Fatalf("accepted item %q", s)
			}
		}
	})
}
