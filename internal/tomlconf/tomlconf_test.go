package tomlconf

import (
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestKeyLineAndOrder(t *testing.T) {
	text := "# comment\nb = 1\n\n  \"a\" = \"x\"\nc.d = true\n[e]\nf = 2\n'g' = []\n"
	for key, want := range map[string]int{"b": 2, "a": 4, "c": 5, "e": 6, "g": 8, "missing": 0, "bb": 0} {
		if got := KeyLine(text, key); got != want {
			t.Errorf("KeyLine(%q) = %d, want %d", key, got, want)
		}
	}
	var raw map[string]any
	if _, err := toml.Decode("z = 1\ny = 2\nx = 3\n", &raw); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(KeysInOrder("z = 1\ny = 2\nx = 3\n", raw), ","); got != "z,y,x" {
		t.Errorf("KeysInOrder = %s", got)
	}
}

func TestTypeName(t *testing.T) {
	for v, want := range map[any]string{"s": "a string", int64(1): "an integer", 1.5: "a float", true: "a boolean"} {
		if got := TypeName(v); got != want {
			t.Errorf("TypeName(%v) = %q", v, got)
		}
	}
	if TypeName([]any{}) != "a list" || TypeName(map[string]any{}) != "a table" || TypeName(time.Time{}) != "a date or time" {
		t.Error("list, table or time misnamed")
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"machines-file", "trust", "store"}
	for key, want := range map[string]string{
		"machine-file": ` (did you mean "machines-file"?)`,
		"Trust":        ` (did you mean "trust"?)`,
		"trusts":       ` (did you mean "trust"?)`,
		"everything":   "",
	} {
		if got := Suggest(key, known); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", key, got, want)
		}
	}
}
