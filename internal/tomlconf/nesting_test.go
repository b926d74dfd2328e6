package tomlconf

import (
	"strings"
	"testing"
)

// Issue 12, item 6: deeply nested inline tables (100 KB of them took
// 1.3 GB to decode) are refused before decoding, naming the line.
func TestDecodeRefusesDeepNesting(t *testing.T) {
	type cfg struct {
		Name string `toml:"name"`
	}
	keys := Keys{"name": String}
	deep := "name = \"x\"\n# { not counted\ns = \"[[[{{{\"\nt = '''\n[[[[\n'''\na = " + strings.Repeat("{b = ", 20000) + "1" + strings.Repeat("}", 20000) + "\n"
	err := keys.Decode("agent.toml", deep, &cfg{})
	if err == nil || !strings.Contains(err.Error(), "agent.toml:7:") || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("deep nesting: %v", err)
	}
	for _, text := range []string{
		"a = [[1, 2], [3, [4]]]\n",
		"[table]\nk = {a = {b = 1}}\n",
		"s = \"" + strings.Repeat("[", 100) + "\"\n",
		"s = \"\\\"" + strings.Repeat("{", 100) + "\"\n",
		"# " + strings.Repeat("[", 100) + "\n",
	} {
		if line, ok := tooDeep(text); !ok {
			t.Errorf("%q: too deep at line %d", text, line)
		}
	}
}

func FuzzTooDeep(f *testing.F) {
	f.Add("a = [[1, 2], {x = 1}]\n# [[[\ns = \"\\\"[[\"\n")
	f.Fuzz(func(t *testing.T, text string) {
		if line, ok := tooDeep(text); !ok && (line < 1 || line > strings.Count(text, "\n")+1) {
			t.Fatalf("line %d of a %d-line text", line, strings.Count(text, "\n")+1)
		}
	})
}
