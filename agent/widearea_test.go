package agent

import (
	"strings"
	"testing"
)

// TestWideAreaConfig: the [wide-area] table decodes, and its mistakes
// name the file, the line and the key.
func TestWideAreaConfig(t *testing.T) {
	cfg := DefaultConfig()
	if err := DecodeConfig("agent.toml", []byte("speed = 2.0\n[wide-area]\ndomain = \"builders.example.org\"\ntsig-key = \"/k\"\nserver = \"[2001:db8::53]:5353\"\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if w := cfg.WideArea; w == nil || w.Domain != "builders.example.org" || w.TSIGKey != "/k" || w.Server != "[2001:db8::53]:5353" {
		t.Errorf("decoded %+v", cfg.WideArea)
	}
	for _, tc := range []struct{ text, want string }{
		{"[wide-area]\ndomain = \"example.org\"\ntsig-kye = \"/k\"\n", `agent.toml:3: wide-area.tsig-kye: unknown key (did you mean "tsig-key"?)`},
		{"[wide-area]\ntsig-key = \"/k\"\n", "agent.toml: wide-area.domain: missing"},
		{"[wide-area]\ndomain = \"example.org\"\n", "agent.toml: wide-area.tsig-key: missing"},
		{"[wide-area]\ndomain = 3\n", "agent.toml:2: wide-area.domain: must be a string, not an integer"},
		{"[wide-area]\ndomain = \"a b\"\ntsig-key = \"/k\"\n", `agent.toml:2: wide-area.domain: "a b" is not a DNS domain name`},
		{"[wide-area]\ndomain = \"example.org\"\ntsig-key = \"/k\"\nserver = \"ns1:http-nope\"\n", "agent.toml:4: wide-area.server:"},
		{"wide-area = \"example.org\"\n", "agent.toml:1: wide-area: must be a table"},
	} {
		cfg := DefaultConfig()
		err := DecodeConfig("agent.toml", []byte(tc.text), &cfg)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("DecodeConfig(%q) = %v; want %s…", tc.text, err, tc.want)
		}
	}
}
