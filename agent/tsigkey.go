package agent

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/miekg/dns"

	"github.com/guix-offload/guix-offload/internal/tomlconf"
)

// TSIGKey is a shared secret that signs DNS UPDATE messages (RFC 8945),
// as BIND's tsig-keygen writes it:
//
//	key "builders" {
//		algorithm hmac-sha256;
//		secret "base64…";
//	};
type TSIGKey struct {
	// Name is the key's name as a fully qualified, lower-case domain
	// name ("builders.").
	Name string
	// Algorithm is the algorithm's name in TSIG records
	// ("hmac-sha256.").
	Algorithm string
	// Secret is the secret, base64-encoded.
	Secret string
}

// tsigAlgorithms maps the names BIND's configuration uses to the names
// TSIG records carry.
var tsigAlgorithms = map[string]string{
	"hmac-md5":                 dns.HmacMD5,
	"hmac-md5.sig-alg.reg.int": dns.HmacMD5,
	"hmac-sha1":                dns.HmacSHA1,
	"hmac-sha224":              dns.HmacSHA224,
	"hmac-sha256":              dns.HmacSHA256,
	"hmac-sha384":              dns.HmacSHA384,
	"hmac-sha512":              dns.HmacSHA512,
}

// maxKeyFile bounds what ReadTSIGKey reads: a key file is a few lines.
const maxKeyFile = 64 << 10

// ReadTSIGKey reads the key file at path (see [ParseTSIGKey]).
func ReadTSIGKey(path string) (*TSIGKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read TSIG key: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read TSIG key %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, &tomlconf.Error{File: path, Err: fmt.Errorf("more than %d bytes: not a key file (make one with 'tsig-keygen NAME > FILE')", maxKeyFile)}
	}
	return ParseTSIGKey(path, data)
}

// tsigToken is one token of a BIND configuration file.
type tsigToken struct {
	text   string
	quoted bool
	line   int
}

// tokenizeBIND splits BIND configuration text into words, quoted
// strings and the punctuation "{", "}" and ";", dropping comments (#,
// // and /* */).
func tokenizeBIND(text string) ([]tsigToken, error) {
	var toks []tsigToken
	line := 1
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#' || c == '/' && i+1 < len(text) && text[i+1] == '/':
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(text) && text[i+1] == '*':
			start := line
			end := strings.Index(text[i+2:], "*/")
			if end < 0 {
				return nil, &tomlconf.Error{Line: start, Err: errors.New("comment /* is never closed")}
			}
			line += strings.Count(text[i:i+2+end], "\n")
			i += 2 + end + 2
		case c == '{' || c == '}' || c == ';':
			toks = append(toks, tsigToken{text: string(c), line: line})
			i++
		case c == '"':
			start := line
			j := i + 1
			var b strings.Builder
			for ; j < len(text) && text[j] != '"'; j++ {
				if text[j] == '\\' && j+1 < len(text) {
					j++
				}
				if text[j] == '\n' {
					line++
				}
				b.WriteByte(text[j])
			}
			if j >= len(text) {
				return nil, &tomlconf.Error{Line: start, Err: errors.New("quoted string is never closed")}
			}
			toks = append(toks, tsigToken{text: b.String(), quoted: true, line: start})
			i = j + 1
		default:
			j := i
			for j < len(text) && !strings.ContainsRune(" \t\r\n{};\"#", rune(text[j])) {
				if text[j] == '/' && j+1 < len(text) && (text[j+1] == '/' || text[j+1] == '*') {
					break
				}
				j++
			}
			if j == i { // a lone '/'
				j++
			}
			toks = append(toks, tsigToken{text: text[i:j], line: line})
			i = j
		}
	}
	return toks, nil
}

// ParseTSIGKey parses the text data of a TSIG key file (file names it
// in errors) in the format BIND's tsig-keygen and ddns-confgen write:
// one `key "NAME" { algorithm ALG; secret "BASE64"; };` statement, with
// comments allowed. A problem is a [*tomlconf.Error] naming the file,
// the line and the field.
func ParseTSIGKey(file string, data []byte) (*TSIGKey, error) {
	key, err := parseTSIGKey(string(data))
	if err != nil {
		var ce *tomlconf.Error
		if errors.As(err, &ce) {
			ce.File = file
		}
		return nil, err
	}
	return key, nil
}

func parseTSIGKey(text string) (*TSIGKey, error) {
	toks, err := tokenizeBIND(text)
	if err != nil {
		return nil, err
	}
	pos := 0
	lastLine := 1
	if len(toks) > 0 {
		lastLine = toks[len(toks)-1].line
	}
	fail := func(field, format string, args ...any) error {
		line := lastLine
		if pos < len(toks) {
			line = toks[pos].line
		}
		return &tomlconf.Error{Line: line, Key: field, Err: fmt.Errorf(format, args...)}
	}
	next := func() (tsigToken, bool) {
		if pos >= len(toks) {
			return tsigToken{}, false
		}
		t := toks[pos]
		pos++
		return t, true
	}
	expect := func(field, want string) error {
		t, ok := next()
		if !ok {
			pos--
			return fail(field, "file ends where %q is expected", want)
		}
		if t.quoted || t.text != want {
			pos--
			return fail(field, "%q where %q is expected", truncated(t.text), want)
		}
		return nil
	}

	if len(toks) == 0 {
		return nil, fail("key", "no key statement (make one with 'tsig-keygen NAME > FILE')")
	}
	if t, _ := next(); t.quoted || t.text != "key" {
		pos--
		return nil, fail("key", "%q where a key statement (key \"NAME\" { … };) is expected", truncated(t.text))
	}
	nameTok, ok := next()
	if !ok || !nameTok.quoted && strings.ContainsAny(nameTok.text, "{};") {
		if ok {
			pos--
		}
		return nil, fail("key", "the key statement has no name")
	}
	name := strings.ToLower(dns.Fqdn(nameTok.text))
	if _, ok := dns.IsDomainName(name); !ok || name == "." {
		pos--
		return nil, fail("key", "%q is not a key name (a domain name)", truncated(nameTok.text))
	}
	if err := expect("key", "{"); err != nil {
		return nil, err
	}
	key := &TSIGKey{Name: name}
	for {
		t, ok := next()
		if !ok {
			return nil, fail("key", "the key statement is never closed with };")
		}
		if t.text == "}" && !t.quoted {
			break
		}
		field := strings.ToLower(t.text)
		switch {
		case t.quoted:
			pos--
			return nil, fail("key", "%q where algorithm or secret is expected", truncated(t.text))
		case field == "algorithm":
			if key.Algorithm != "" {
				pos--
				return nil, fail("algorithm", "appears twice")
			}
			v, ok := next()
			if !ok || !v.quoted && v.text == ";" {
				pos--
				return nil, fail("algorithm", "no algorithm named")
			}
			alg, known := tsigAlgorithms[strings.TrimSuffix(strings.ToLower(v.text), ".")]
			if !known {
				pos--
				return nil, fail("algorithm", "unknown algorithm %q (want hmac-sha256, or hmac-sha1, -sha224, -sha384, -sha512, -md5)", truncated(v.text))
			}
			key.Algorithm = alg
		case field == "secret":
			if key.Secret != "" {
				pos--
				return nil, fail("secret", "appears twice")
			}
			v, ok := next()
			if !ok || !v.quoted {
				if ok {
					pos--
				}
				return nil, fail("secret", "the secret must be a quoted base64 string")
			}
			raw, err := base64.StdEncoding.DecodeString(v.text)
			if err != nil || len(raw) == 0 {
				pos--
				return nil, fail("secret", "not base64 (copy the secret exactly as tsig-keygen wrote it)")
			}
			key.Secret = base64.StdEncoding.EncodeToString(raw)
		default:
			pos--
			return nil, fail("key", "unknown field %q (a key has algorithm and secret)", truncated(t.text))
		}
		if err := expect(field, ";"); err != nil {
			return nil, err
		}
	}
	if err := expect("key", ";"); err != nil {
		return nil, err
	}
	if key.Algorithm == "" {
		pos--
		return nil, fail("algorithm", "missing")
	}
	if key.Secret == "" {
		pos--
		return nil, fail("secret", "missing")
	}
	if pos < len(toks) {
		return nil, fail("key", "more than one statement: the file must hold one key only")
	}
	return key, nil
}

func truncated(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
